"""gunicorn's settings for running under baton (docs/workers/gunicorn.md).

    gunicorn -c examples/python/gunicorn.conf.py --chdir examples/python app:app

baton is the process manager: it runs N copies of gunicorn, hands each the
listening sockets (LISTEN_FDS) and rolls them one by one on `systemctl
reload`. Each copy is a gunicorn arbiter with one worker process.
"""

import faulthandler
import os
import time

# Not "daemon": gunicorn reads every top-level name here as a setting,
# and daemon is one.
from systemd import daemon as sd  # python3-systemd: sd_notify(3)

# One gunicorn worker per baton worker: baton's `workers` is the number of
# processes. For concurrency inside one, use threads (the gthread worker).
workers = 1
# threads = 4

# Import the application before the arbiter tells baton READY=1. Without it,
# gunicorn says READY=1 first and imports the application in its worker
# afterwards, so a release that cannot import looks ready and then exits.
preload_app = True

# No bind: gunicorn takes baton's sockets from LISTEN_FDS itself (and
# crashes with EBADF if also told --bind fd://3). It calls listen() on them
# again with this backlog, which replaces baton's: keep the two equal.
backlog = 2048

# gunicorn's own hang detector for its worker: a worker silent this long gets
# SIGABRT (worker_abort below dumps its stacks), then SIGKILL, and a new one.
# An idle worker checks in every timeout/2 seconds, so baton's
# watchdog-timeout must be longer than that; make it longer than timeout,
# so that gunicorn handles a hung request first, with its stack dump.
timeout = 30

# Below baton's graceful-timeout (30s by default), so that gunicorn's
# arbiter, not baton's SIGKILL, ends a drain that takes too long.
graceful_timeout = 25

# Recycling: baton replaces a worker before stopping it (max-lifetime,
# max-memory, or X_BATON_RECYCLE=1 sent after RECYCLE_AFTER requests below);
# gunicorn's max_requests restarts the worker in place instead. 0 is off.
RECYCLE_AFTER = int(os.environ.get("RECYCLE_AFTER", "0"))


def _watchdog_interval():
    # WATCHDOG_PID is the arbiter's pid (the process baton started); the
    # pings come from its worker, a descendant, which baton also accepts.
    usec = os.environ.get("WATCHDOG_USEC")
    return int(usec) / 1e6 if usec else None


def post_worker_init(worker):
    """Forward gunicorn's own heartbeat to baton as WATCHDOG=1: the worker
    calls notify() from its main loop, so the pings stop when the loop
    does (a hung request in a sync worker, a stuck gthread loop)."""
    interval = _watchdog_interval()
    if not interval:
        return
    beat = worker.notify
    last = [0.0]

    def notify():
        beat()
        now = time.monotonic()
        if now - last[0] >= min(1.0, interval / 4):
            last[0] = now
            sd.notify("WATCHDOG=1")

    worker.notify = notify


def worker_abort(worker):
    """gunicorn's timeout fired (SIGABRT): say where the worker was stuck."""
    faulthandler.dump_traceback(all_threads=True)


def post_request(worker, req, environ, resp):
    """After RECYCLE_AFTER requests, ask baton for a replacement: it starts
    a new worker, waits for its READY=1, then stops this one gracefully."""
    if not RECYCLE_AFTER:
        return
    worker.baton_requests = getattr(worker, "baton_requests", 0) + 1
    if worker.baton_requests == RECYCLE_AFTER:
        sd.notify("X_BATON_RECYCLE=1")
