# The benchmark's WSGI app, the same under gunicorn, uWSGI and baton: it
# sleeps 50 ms per request. At import it reads the mode file named by
# APP_MODE_FILE: "slow" boots in 2 s, "broken" fails to import, as a
# deploy of a slow or broken release would.
import os
import time

_path = os.environ.get("APP_MODE_FILE")
mode = open(_path).read().strip() if _path else "fast"
if mode == "slow":
    time.sleep(2)
elif mode == "broken":
    raise RuntimeError("app.py: broken on purpose (the mode file says broken)")


def app(environ, start_response):
    time.sleep(0.05)
    body = b"hello from pid %d\n" % os.getpid()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
