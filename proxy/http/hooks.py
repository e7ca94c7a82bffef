"""The one place that reaches into aiohttp's internals, fenced in and checked at import.

aiohttp has no public hook for what its HTTP parser refuses (aiohttp#3287): its own plain-text 400 quotes
the offending request line, which may hold the sender's credential. `ProxyRunner` makes its connections
answer those with a Braze-style JSON body that echoes nothing.

Nor has it one for serving a request before its router and middleware chain, which cost as much as a whole
cache hit: `ProxyRunner` hands each request to `HitDispatch` first, which answers a GET on a series path whose
answer the process holds (DataSeriesHandler.hit) and passes everything else to the app as before.

If an aiohttp release moves the hooks this relies on, importing this module (or starting the runner) fails
loudly instead of silently bringing the echo back (the version is also bounded in pyproject.toml).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web, web_protocol

from proxy.http.keys import HITS, Hit

log = logging.getLogger("braze_proxy.web")

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


class HitDispatch:
    """A connection's first stop: a GET whose path has a hit path (the app's HITS) and whose answer that path
    holds is answered there; everything else, and a hit path that fails, goes to the app's router."""

    def __init__(self, hits: Mapping[str, Hit], app: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]):
        self._hits = dict(hits)
        self._app = app

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.method == "GET":
            hit = self._hits.get(request.rel_url.raw_path)  # the raw path: an encoded one goes the long way
            if hit is not None:
                try:
                    response = hit(request)
                except Exception:  # a bug: the long way answers (and reports) it
                    log.exception("the hit path failed; answering the long way")
                    response = None
                if response is not None:
                    return response
        return await self._app(request)


class ProxyRunner(web.AppRunner):
    """An AppRunner whose connections answer parse errors with JSON (see JsonErrorRequestHandler) and hand
    each request to the hit dispatch first (see HitDispatch)."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        if not hasattr(server, "_kwargs") or not hasattr(server, "_loop"):  # pragma: no cover
            raise RuntimeError("aiohttp's Server no longer keeps _kwargs/_loop: proxy.aiohttp_hooks needs updating")
        if not callable(getattr(server, "request_handler", None)):  # pragma: no cover
            raise RuntimeError("aiohttp's Server no longer has request_handler: proxy.http.hooks needs updating")
        server.__class__ = JsonErrorServer  # the same server; only how it makes connection handlers differs
        hits = self.app.get(HITS)
        if hits:
            server.request_handler = HitDispatch(hits, server.request_handler)
        return server
