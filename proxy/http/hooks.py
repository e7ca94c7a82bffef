"""The one place that reaches into aiohttp's internals, fenced in and checked at import.

aiohttp has no public hook for what its HTTP parser refuses (aiohttp#3287): its own plain-text 400 quotes
the offending request line, which may hold the sender's credential. `ProxyRunner` makes its connections
answer those with a Braze-style JSON body that echoes nothing.

Nor has it one for serving a request before its router and middleware chain, which cost as much as a whole
cache hit: `ProxyRunner` hands each request to `SeriesDispatch` first, which sends a GET on a series path
straight to its handler (DataSeriesHandler.handle) and everything else to the app as before.

If an aiohttp release moves the hooks this relies on, importing this module (or starting the runner) fails
loudly instead of silently bringing the echo back (the version is also bounded in pyproject.toml).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from aiohttp import web, web_protocol

from proxy.http.keys import SERIES, Handler

PARSE_ERROR = "Bad request: the HTTP request could not be parsed (a line too long, too many headers, a forbidden byte)"
SERVER = "braze-proxy"  # the Server header: no Python or aiohttp version for a scanner to read

for _owner, _name in (
    (web.AppRunner, "_make_server"),
    (web_protocol.RequestHandler, "handle_error"),
    (web.Application, "_handle"),
):
    if not callable(getattr(_owner, _name, None)):  # pragma: no cover - only on an aiohttp that moved it
        raise ImportError(f"aiohttp {_owner.__name__}.{_name} is gone: proxy.aiohttp_hooks needs updating")


class JsonErrorRequestHandler(web_protocol.RequestHandler):
    """aiohttp's connection handler, except that what its HTTP parser refuses (before any route or middleware
    runs) gets a Braze-style JSON body."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        refused = super().handle_error(request, status, exc, message)  # logs (the kind only: logs.py)
        payload = {"message": PARSE_ERROR if refused.status < 500 else "Internal error"}
        response = web.Response(
            body=json.dumps(payload, separators=(",", ":")).encode(),
            status=refused.status,
            headers={
                "Content-Type": "application/json",
                "Server": SERVER,
                "Cache-Status": "braze-proxy; fwd=bypass; detail=unparsable-request",
            },
        )
        response.force_close()
        return response


class JsonErrorServer(web.Server):
    def __call__(self) -> web_protocol.RequestHandler:
        return JsonErrorRequestHandler(self, loop=self._loop, **self._kwargs)


class SeriesDispatch:
    """A connection's first stop: a GET on a series path goes straight to its handler (the app's SERIES), which
    turns every failure into a JSON answer itself; everything else goes to the app's router and middlewares."""

    def __init__(self, routes: Mapping[str, Handler], app: Handler) -> None:
        self._routes = dict(routes)
        self._app = app

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.method == "GET":
            handle = self._routes.get(request.rel_url.raw_path)  # the raw path: an encoded one takes the router
            if handle is not None:
                return await handle(request)
        return await self._app(request)


class ProxyRunner(web.AppRunner):
    """An AppRunner whose connections answer parse errors with JSON (see JsonErrorRequestHandler) and hand
    each request to the series dispatch first (see SeriesDispatch)."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        if not hasattr(server, "_kwargs") or not hasattr(server, "_loop"):  # pragma: no cover
            raise RuntimeError("aiohttp's Server no longer keeps _kwargs/_loop: proxy.aiohttp_hooks needs updating")
        if not callable(getattr(server, "request_handler", None)):  # pragma: no cover
            raise RuntimeError("aiohttp's Server no longer has request_handler: proxy.http.hooks needs updating")
        server.__class__ = JsonErrorServer  # the same server; only how it makes connection handlers differs
        routes = self.app.get(SERIES)
        if routes:
            server.request_handler = SeriesDispatch(routes, server.request_handler)
        return server
