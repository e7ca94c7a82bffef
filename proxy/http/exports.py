"""The HTTP shell of the rest of the export surface (exports.py), of writes and of paths the proxy does not serve.

- GET of an export row: validated and authenticated, then the service answers (kept by the row's class, or only
  coalesced); Braze's `Link` header goes with the body, pointed at the proxy when Braze wrote it absolute.
- Any other method on any path: a Braze-style 405 with `Allow: GET, HEAD`, never forwarded (managed-key mode above
  all: a team token must never spend the managed key on a write), logged and counted.
- A GET to a path the proxy does not serve: a JSON 404 naming the path (never the query), logged and counted
  under the one label `braze_endpoint="unserved"`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from aiohttp import web

from proxy.core.endpoints import SERVED
from proxy.core.errors import ClientError, InvalidRequest, ProxyError
from proxy.core.export_query import parse_export
from proxy.core.exports import EXPORTS, Export, route_of
from proxy.core.links import rewrite
from proxy.core.lookup import Answer
from proxy.core.query import LEGACY_KEY_PARAM, check_encoding
from proxy.http.access_log import REQUEST_ID, TRACEPARENT, AccessLog, request_id
from proxy.http.keys import COMPONENTS
from proxy.http.lifecycle import Lifecycle
from proxy.http.responses import INTERNAL, MAX_REQUEST_BODY, answer_response, error_response, json_response
from proxy.obs import tracing
from proxy.obs.metrics import Metrics

log = logging.getLogger("braze_proxy.web")

UNSERVED = "unserved"  # the one label value of every path the proxy does not serve (never the raw path)
WRITES_REFUSED = (
    "Method not allowed: braze-proxy serves Braze's read-only export API (GET); send writes to Braze directly"
)


class Refused(ClientError):
    """A write (or any method but GET) to a Braze path: never forwarded."""

    status = 405

    def headers(self) -> dict[str, str]:
        return {"Allow": "GET, HEAD"}


class Unserved(ClientError):
    status = 404


@dataclass(frozen=True, slots=True)
class Seen:
    """What the access line and the counters say about one answer."""

    name: str  # the `braze_endpoint` label: a row's name, or "unserved"
    cache: str
    started: float  # perf_counter() when the request came in
    team: str | None = None
    fwd_status: int | None = None


class Outcome:
    """Counts and logs one answer of this module's routes: the requests counter, the duration, an access line."""

    def __init__(self, metrics: Metrics, access: AccessLog) -> None:
        self._metrics = metrics
        self._access = access
        self.inflight = metrics.in_flight

    def record(self, request: web.Request, rid: str, response: web.StreamResponse, seen: Seen) -> None:
        seconds = time.perf_counter() - seen.started
        self._metrics.requests.labels(seen.name, seen.cache, str(response.status)).inc()
        self._metrics.request_duration.labels(seen.name, seen.cache).observe(seconds)
        response.headers[REQUEST_ID] = rid
        if self._access.enabled:
            outcome = (seen.team, seen.name, response.status, seen.cache, seen.fwd_status)
            self._access.write(rid, request.headers.get(TRACEPARENT), outcome, seconds)


class ExportHandler:
    """GET <export.path>: validate, authenticate, ask the service, answer with Cache-Status (and Link)."""

    def __init__(self, export: Export, outcome: Outcome, lifecycle: Lifecycle, max_query: int, upstream: str) -> None:
        self._export = export
        self._outcome = outcome
        self._lifecycle = lifecycle
        self._max_query = max_query
        self._upstream = upstream

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        rid = request_id(request.headers.get(REQUEST_ID))
        team: list[str] = []
        fwd: int | None = None
        task = asyncio.current_task()
        if task is not None:  # a drain waits for it
            self._lifecycle.handling.add(task)
        self._outcome.inflight.inc()
        try:
            with tracing.request_span(f"GET {self._export.path}", request.headers) as current:
                response, cache, fwd = await self._respond(request, team, rid)
                tracing.annotate(current, {"http.response.status_code": response.status, "cache": cache})
        finally:
            self._outcome.inflight.dec()
            if task is not None:
                self._lifecycle.handling.discard(task)
        seen = Seen(self._export.name, cache, started, team[0] if team else None, fwd)
        self._outcome.record(request, rid, response, seen)
        return response

    async def _respond(self, request: web.Request, team: list[str], rid: str) -> tuple[web.Response, str, int | None]:
        try:
            answer = await self._answer(request, team)
        except ProxyError as error:
            return error_response(error), error.cache_status().kind, error.upstream_status
        except Exception:  # a bug: still a JSON answer, counted, logged with its traceback (never sent)
            log.exception("unexpected error answering a request", extra={"request_id": rid})
            return json_response(500, {"message": "Internal error"}, INTERNAL), "error", None
        response = answer_response(answer)
        if answer.link:
            response.headers["Link"] = rewrite(answer.link, self._upstream, _base_of(request))
        return response, answer.cache_status.kind, answer.cache_status.fwd_status

    async def _answer(self, request: web.Request, team: list[str]) -> Answer:
        components = request.app[COMPONENTS]
        if len(request.query_string) > self._max_query:
            raise InvalidRequest(f"Invalid request: the query string is longer than {self._max_query} bytes")
        check_encoding(request.rel_url.raw_query_string)
        if request.body_exists and (request.content_length or 0) > MAX_REQUEST_BODY:
            raise InvalidRequest("Invalid request: this endpoint takes no request body")
        query = request.query
        credential = components.auth.resolve(request.headers.get("Authorization"), query.get(LEGACY_KEY_PARAM))
        team.append(credential.team_label)
        values = [request.match_info[name] for name in self._export.path_params]
        question = parse_export(self._export, values, query.items())
        return await components.service.answer_export(question, credential, question.cache_key(credential.scope))


def _base_of(request: web.Request) -> str:
    """The proxy's base URL as this client reached it."""
    return f"{request.scheme}://{request.host}"


class Fallback:
    """Every request no route took: a refused write (405) or an unserved path (404), never an upstream call."""

    def __init__(self, outcome: Outcome) -> None:
        self._outcome = outcome
        self._routes = (*(e.path for e in SERVED), *(e.path for e in EXPORTS))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        rid = request_id(request.headers.get(REQUEST_ID))
        route = route_of(request.path, self._routes)
        name = _name_of(route) if route is not None else UNSERVED
        error: ProxyError
        admin = request.path.startswith("/admin/")  # the admin API's, not Braze's: absent, it is a 404 for every method
        if request.method != "GET" and not admin and (route is not None or request.method != "HEAD"):
            error = Refused(WRITES_REFUSED)
        else:
            path = _shown(request.path)
            error = Unserved(
                f"Not found: braze-proxy does not serve {request.method} {path}", [f"unserved path '{path}'"]
            )
        response = error_response(error)
        self._outcome.record(request, rid, response, Seen(name, "bypass", started))
        return response


def _name_of(route: str) -> str:
    names = {**{e.path: e.name for e in SERVED}, **{e.path: e.name for e in EXPORTS}}
    return names.get(route, UNSERVED)


def _shown(path: str, limit: int = 200) -> str:
    clean = "".join(ch if ch.isprintable() else "?" for ch in path[:limit])
    return clean + ("..." if len(path) > limit else "")


def add_export_routes(
    app: web.Application, metrics: Metrics, lifecycle: Lifecycle, access: AccessLog, max_query: int, upstream: str
) -> None:
    """The export rows' GET routes, then the fallback for everything else: call it after every other route."""
    outcome = Outcome(metrics, access)
    for export in EXPORTS:
        handler = ExportHandler(export, outcome, lifecycle, max_query, upstream)
        app.router.add_get(export.path, handler.handle)  # HEAD too: the same answer without its body
    app.router.add_route("*", "/{tail:.*}", Fallback(outcome).handle)
