"""gateway from Python: `gateway.run()` blocks like the command (and starts worker processes
when asked to), `gateway.serve()` runs on an event loop you already have, next to other work.

    python examples/deploy/embed.py             # serve() inside a running loop
    python examples/deploy/embed.py --workers   # run() with two worker processes
"""

from __future__ import annotations

import asyncio
import sys

import gateway


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"embedded\n"})


async def main() -> None:
    config = gateway.Config(bind=["127.0.0.1:8000"], access_log=False)
    # serve() returns when the server stops: on SIGINT/SIGTERM, or when this task is cancelled.
    await gateway.serve(app, config)


if __name__ == "__main__":
    if "--workers" in sys.argv:
        # Worker processes import the app by name, so it is given as "module:attribute".
        sys.path.insert(0, ".")
        gateway.run("examples.deploy.embed:app", workers=2, bind=["127.0.0.1:8000"])
    else:
        asyncio.run(main())
