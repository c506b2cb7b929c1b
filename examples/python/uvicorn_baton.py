"""uvicorn for baton: `python3 -m uvicorn --fd 3 MODULE:APP`, with a drain
that drops no connection (docs/workers/uvicorn.md).

    python3 uvicorn_baton.py [--app-dir DIR] [--fd 3] [--backlog N] [--lifespan on] MODULE:APP

On SIGTERM, uvicorn 0.17 (Debian 12) stops accepting and, in the same step,
closes every connection that has no request in progress: also those it
accepted a moment before whose request has not arrived yet. Their clients
see the connection closed unanswered. Under baton the other workers would
have served them, and during a reload under load a few requests in a
thousand fail this way. This server stops accepting first, waits until
every connection it accepted has sent its request (at most
FIRST_REQUEST_GRACE, as a header timeout would), then shuts down as uvicorn
does: requests in progress finish, idle keep-alive connections close.
"""

import argparse
import asyncio
import logging
import sys
import time

import uvicorn

FIRST_REQUEST_GRACE = 10.0  # seconds

logger = logging.getLogger("uvicorn.error")


class DrainingServer(uvicorn.Server):
    async def shutdown(self, sockets=None):
        for server in self.servers:
            server.close()  # the socket's queue stays with the other workers
        fresh = [c for c in self.server_state.connections if getattr(c, "cycle", False) is None]
        logger.info("Draining: stopped accepting; %d connections have not sent a request yet", len(fresh))
        deadline = time.monotonic() + FIRST_REQUEST_GRACE
        while time.monotonic() < deadline and any(getattr(c, "cycle", False) is None for c in self.server_state.connections):
            await asyncio.sleep(0.05)
        await super().shutdown(sockets)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("app", help="MODULE:APP, as for uvicorn")
    parser.add_argument("--app-dir", default=".", help="where MODULE is (default: .)")
    parser.add_argument("--fd", type=int, default=3, help="the listening socket (default: 3, the first baton passes)")
    parser.add_argument("--backlog", type=int, default=2048,
                        help="uvicorn calls listen() again with this; keep it equal to baton's")
    # "on", not uvicorn's "auto": under auto, a startup handler that raises
    # makes uvicorn decide the application has no lifespan support and
    # serve without it, so READY=1 never comes.
    parser.add_argument("--lifespan", default="on", choices=["on", "auto", "off"])
    args = parser.parse_args()
    sys.path.insert(0, args.app_dir)
    DrainingServer(uvicorn.Config(args.app, fd=args.fd, backlog=args.backlog, lifespan=args.lifespan)).run()


if __name__ == "__main__":
    main()
