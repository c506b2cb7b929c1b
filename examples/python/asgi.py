"""An ASGI application for baton's uvicorn recipe (docs/workers/uvicorn.md).

uvicorn never sends READY=1 itself, so the application does, from the ASGI
lifespan startup handler: by then the application is imported and its
startup work is done. The same handler starts the watchdog pings, which
come from the event loop and so stop when the loop is blocked.

GET /               "hello from worker N generation G pid P"
GET /sleep?ms=N     answers after N milliseconds; &flush=1 sends the headers
                    and a first line at once

Run under baton: python3 examples/python/uvicorn_baton.py --app-dir examples/python asgi:app
(or python3 -m uvicorn --fd 3 --lifespan on ..., whose drain drops a few
connections: see uvicorn_baton.py)
"""

import asyncio
import os
from urllib.parse import parse_qs

from systemd import daemon  # python3-systemd; sd_notify(3) for Python


def _whoami():
    return "worker %s generation %s pid %d" % (
        os.environ.get("BATON_WORKER", "-"),
        os.environ.get("BATON_GENERATION", "-"),
        os.getpid(),
    )


def _watchdog_interval():
    """sd_watchdog_enabled(3): the interval when pings are wanted from this
    process, else None."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and int(pid) != os.getpid()):
        return None
    return int(usec) / 1e6


async def _watchdog(interval):
    while True:
        daemon.notify("WATCHDOG=1")
        await asyncio.sleep(interval / 3)


async def _lifespan(receive, send):
    pinger = None
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            # Open database pools, load models, ... here: a failure is
            # reported as lifespan.startup.failed, uvicorn exits, and baton
            # counts a worker that never became ready.
            interval = _watchdog_interval()
            if interval:
                pinger = asyncio.create_task(_watchdog(interval))
            daemon.notify("READY=1\nSTATUS=serving")
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if pinger:
                pinger.cancel()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _text(send, status, body, more=False):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body.encode(), "more_body": more})


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/":
        await _text(send, 200, "hello from %s\n" % _whoami())
        return
    if path == "/sleep":
        query = parse_qs(scope["query_string"].decode())
        try:
            ms = int(query.get("ms", [""])[0])
        except ValueError:
            ms = -1
        if ms < 0:
            await _text(send, 400, "want ?ms=N\n")
            return
        flush = query.get("flush") == ["1"]
        if flush:
            await _text(send, 200, "sleeping\n", more=True)
        await asyncio.sleep(ms / 1000)
        body = "slept %dms in %s\n" % (ms, _whoami())
        if flush:
            await send({"type": "http.response.body", "body": body.encode()})
        else:
            await _text(send, 200, body)
        return
    await _text(send, 404, "not found\n")
