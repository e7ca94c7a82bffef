"""Answers as responses (made as bytes where they can be: rendered.py), and the one place errors become
Braze-style JSON answers (the middleware)."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web

from proxy.core.cache_status import BYPASS, CacheStatus
from proxy.core.cache_status import HEADER as CACHE_STATUS
from proxy.core.errors import MethodNotAllowed, NotFound, ProxyError
from proxy.core.lookup import Answer
from proxy.http.access_log import REQUEST_ID
from proxy.http.hooks import SERVER
from proxy.http.rendered import RenderedResponse, head_for, rendered_for

log = logging.getLogger("braze_proxy.web")

JSON_TYPE = "application/json"
MAX_REQUEST_BODY = 16 * 1024  # the proxied endpoints are GET: any body is refused past this
INTERNAL = CacheStatus("error", detail="internal")


def json_response(status: int, payload: object, cache_status: CacheStatus | None = None) -> web.Response:
    headers = {"Content-Type": JSON_TYPE, "Server": SERVER}
    if cache_status is not None:
        headers["Cache-Status"] = cache_status.render()
    return web.Response(body=json.dumps(payload, separators=(",", ":")).encode(), status=status, headers=headers)


def error_response(error: ProxyError) -> web.Response:
    headers = {
        "Content-Type": JSON_TYPE,
        "Server": SERVER,
        "Cache-Status": error.cache_status().render(),
        **error.headers(),
    }
    return web.Response(body=error.body(), status=error.status, headers=headers)


def series_headers(content_type: str, cache_status: str, age: int | None) -> dict[str, str]:
    """A series answer's own headers (istr names: aiohttp folds no case for them)."""
    headers: dict[str, str] = {hdrs.CONTENT_TYPE: content_type, hdrs.SERVER: SERVER, CACHE_STATUS: cache_status}
    if age is not None:
        headers[hdrs.AGE] = str(age)
    return headers


def answer_headers(answer: Answer) -> dict[str, str]:
    return series_headers(answer.content_type, answer.cache_status.render(), answer.age)


def answer_response(answer: Answer) -> web.Response:
    return web.Response(body=answer.body, status=answer.status, headers=answer_headers(answer))


def respond(
    request: web.BaseRequest, status: int, body: bytes, headers: dict[str, str], rid: str, second: int
) -> web.StreamResponse:
    """An answer with `headers` and its request id, dated `second`: made as bytes (rendered.py) where it can
    be, else aiohttp's."""
    if rendered_for(request) and (head := head_for(status, headers.items(), len(body), second)) is not None:
        return RenderedResponse(status, head, rid, body)
    return web.Response(body=body, status=status, headers={**headers, REQUEST_ID: rid})


@web.middleware
async def errors_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every failure becomes a Braze-style JSON body with a Cache-Status; nothing internal reaches a client."""
    try:
        return await handler(request)
    except ProxyError as error:
        return error_response(error)
    except web.HTTPMethodNotAllowed as exc:
        return error_response(MethodNotAllowed(", ".join(sorted(exc.allowed_methods))))
    except web.HTTPException as exc:
        if exc.status == 404:
            return error_response(NotFound())
        if exc.status >= 400:
            return json_response(exc.status, {"message": exc.reason}, BYPASS)
        raise
    except Exception:
        log.exception("unexpected error", extra={"path": request.path})
        return json_response(500, {"message": "Internal error"}, INTERNAL)
