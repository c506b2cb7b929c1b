"""A WSGI application for baton's gunicorn recipe (docs/workers/gunicorn.md).

GET /               "hello from worker N generation G pid P": which worker
                    answered, so that tests can tell workers apart
GET /sleep?ms=N     answers after N milliseconds; with &flush=1 the headers
                    and a first line go out at once, so a client knows a
                    worker holds its request before it finishes

Run under baton: gunicorn -c examples/python/gunicorn.conf.py app:app
"""

import os
import time
from urllib.parse import parse_qs


def _whoami():
    return "worker %s generation %s pid %d" % (
        os.environ.get("BATON_WORKER", "-"),
        os.environ.get("BATON_GENERATION", "-"),
        os.getpid(),
    )


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/":
        body = ("hello from %s\n" % _whoami()).encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/sleep":
        query = parse_qs(environ.get("QUERY_STRING", ""))
        try:
            ms = int(query.get("ms", [""])[0])
        except ValueError:
            ms = -1
        if ms < 0:
            start_response("400 Bad Request", [("Content-Type", "text/plain")])
            return [b"want ?ms=N\n"]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _sleep(ms, query.get("flush") == ["1"])
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found\n"]


def _sleep(ms, flush):
    # A generator: gunicorn sends the headers with the first chunk, so a
    # first chunk before the sleep tells the client a worker holds it.
    if flush:
        yield b"sleeping\n"
    time.sleep(ms / 1000)
    yield ("slept %dms in %s\n" % (ms, _whoami())).encode()
