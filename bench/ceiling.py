"""The ceiling: the least work an aiohttp + uvloop process can do per request.

One route that answers every GET with the same prebuilt bytes and Content-Type. Whatever the proxy's hit
path costs on top of this is ours; what this costs is aiohttp's and the kernel's.

    python -m bench.ceiling --port N --body FILE
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from pathlib import Path

from aiohttp import web


def make_app(body: bytes) -> web.Application:
    headers = {"Content-Type": "application/json"}

    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=body, headers=headers)

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    return app


async def serve(host: str, port: int, body: bytes) -> None:
    runner = web.AppRunner(make_app(body), access_log=None, handle_signals=True)
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=1024).start()
    print(f"READY http://{host}:{port}", flush=True)
    try:
        await asyncio.Event().wait()  # until SIGTERM/SIGINT (GracefulExit) ends the runner
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body", type=Path, required=True, help="file whose bytes every response carries")
    args = parser.parse_args(argv)
    body = args.body.read_bytes()
    import uvloop

    with contextlib.suppress(KeyboardInterrupt, web.GracefulExit):
        uvloop.run(serve(args.host, args.port, body))


if __name__ == "__main__":
    main()
