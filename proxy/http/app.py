"""The aiohttp shell: the app factory, routes, the one place errors become responses.

`create_app(settings)` declares the routes; the components (composition root: components.py) open and
close in `cleanup_ctx` and are set as one typed AppKey. Handlers only translate HTTP into a question and
an answer back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime

from aiohttp import web
from aiohttp.hdrs import AUTHORIZATION

from proxy.budget.spending import RateHeaders
from proxy.components import NO_ENVIRON, Clock, Components, Sleep, open_components
from proxy.core.credentials import Credential
from proxy.core.endpoints import SERVED, Endpoint
from proxy.core.errors import InvalidRequest, ProxyError
from proxy.core.lookup import Answer
from proxy.core.query import LEGACY_KEY_PARAM, check_encoding, parse_query
from proxy.day2.admin import add_admin_routes
from proxy.http.access_log import REQUEST_ID, TRACEPARENT, AccessLog, request_id, trace_json
from proxy.http.exports import add_export_routes
from proxy.http.keys import COMPONENTS, LIFECYCLE, METRICS, SAMPLER, SERIES, SETTINGS, Handler
from proxy.http.lifecycle import Lifecycle
from proxy.http.memo import QuestionMemo, Resolved
from proxy.http.ops import Sampler, add_ops_routes, create_ops_app, openapi_route
from proxy.http.rendered import RenderedResponse, rendered_for
from proxy.http.responses import (
    INTERNAL,
    MAX_REQUEST_BODY,
    answer_headers,
    error_response,
    errors_middleware,
    json_response,
    respond,
)
from proxy.obs import tracing
from proxy.obs.metrics import MULTIPROC_ENV, BatchedCounter, Metrics
from proxy.settings.model import Settings

log = logging.getLogger("braze_proxy.web")

NO_RATES: dict[str, str] = {}


HitMetrics = tuple[Callable[[], None], Callable[[float], None]]


class DataSeriesHandler:
    """GET <endpoint.path>: validate, authenticate, ask the service, answer with Cache-Status.

    The hot path (`_hit`) serves a request it has resolved before from the entry this process holds, without
    parsing, hashing or awaiting; everything else goes through `_answer` and the service.
    """

    def __init__(
        self,
        app: web.Application,
        endpoint: Endpoint,
        metrics: Metrics,
        lifecycle: Lifecycle,
        max_query: int,
        clock: Clock,
        access: AccessLog | None = None,
    ) -> None:
        self._app = app  # its components are set at start-up; a hit reads them before any route is matched
        self._endpoint = endpoint
        self._span = f"GET {endpoint.path}"  # the trace span's name, made once
        self._access = access or AccessLog(enabled=False)
        self._metrics = metrics
        self._lifecycle = lifecycle
        self._max_query = max_query
        self._clock = clock
        self._memo = QuestionMemo()
        self._rates: RateHeaders | None = None  # the teams' X-RateLimit-* headers for this endpoint (spending.py)
        self._inflight = metrics.in_flight
        # Label children bound once per (cache, code), batched: no label lookup and no lock on the hot path.
        self._bound: dict[tuple[str, int], HitMetrics] = {}
        self._teams: dict[str, tuple[BatchedCounter, BatchedCounter]] = {}

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """The answer, always (errors included: a JSON body). Needs no route match nor middleware: a GET comes
        straight from the series dispatch (hooks.py)."""
        started = time.perf_counter()
        now = self._clock()
        components = self._app[COMPONENTS]
        resolved = None
        if not request.body_exists:  # a request with a body goes the long way, which refuses it
            resolved = self._memo.get(request.rel_url.raw_query_string, request.headers.get(AUTHORIZATION), now)
            if resolved is not None and (hit := self._hit(request, components, resolved, started, now)) is not None:
                return hit
        rid = request_id(request.headers.get(REQUEST_ID))
        self._inflight.inc()
        task = asyncio.current_task()
        if task is not None:
            self._lifecycle.handling.add(task)
        asked: list[Resolved] = [resolved] if resolved is not None else []
        fwd_status: int | None = None
        traced = tracing.request_span(self._span, request.headers)
        current = traced.__enter__()
        answer: Answer | None = None
        response: web.StreamResponse | None = None  # an error's; an answer's is made last (with the share)
        try:
            answer = await self._answer(request, components, asked, now)
            outcome = answer.cache_status
            cache, fwd_status = outcome.kind, outcome.fwd_status
        except ProxyError as error:
            refused = error.cache_status()
            response, cache, fwd_status = error_response(error), refused.kind, refused.fwd_status
        except Exception:  # a bug: still a JSON answer, counted, and logged with its traceback (never sent)
            log.exception("unexpected error answering a request", extra={"request_id": rid})
            response, cache = json_response(500, {"message": "Internal error"}, INTERNAL), "error"
        except BaseException:  # cancelled: the span ends with it
            traced.__exit__(None, None, None)
            raise
        finally:
            self._inflight.dec()
            if task is not None:
                self._lifecycle.handling.discard(task)
        status = answer.status if answer is not None else response.status if response is not None else 500
        tracing.annotate(current, {"http.response.status_code": status, "cache": cache})
        traced.__exit__(None, None, None)
        count, observe = self._bind(cache, status)
        count()
        if asked and asked[0].team is not None:
            requests, hits = asked[0].team
            requests.inc()
            if cache in ("hit", "stale", "collapsed"):  # answered without an upstream call of its own
                hits.inc()
        observe(time.perf_counter() - started)
        share = self._share(components, asked[0].credential) if asked else NO_RATES  # the caller's, as on a hit
        if answer is not None:
            headers = {**answer_headers(answer), **share}
            response = respond(request, answer.status, answer.body, headers, rid, int(self._clock()))
        else:
            assert response is not None  # every except above that does not raise sets it
            response.headers[REQUEST_ID] = rid
            response.headers.update(share)
        if self._access.enabled:
            self._log(request, rid, asked[0] if asked else None, status, cache, fwd_status, started)
        return response

    def _hit(
        self, request: web.BaseRequest, components: Components, resolved: Resolved, started: float, now: float
    ) -> web.StreamResponse | None:
        """The answer from the entry this process holds for a request resolved before, else None (the long way).

        No parsing, hashing or awaiting; never "in flight", so the inflight gauge is left alone.
        """
        entry = components.service.hit(resolved.key, now)
        if entry is None:
            return None
        headers = request.headers
        rid = request_id(headers.get(REQUEST_ID))
        c = resolved.credential
        rates = self._share(components, c)
        response: web.StreamResponse
        if rendered_for(request) and (head := resolved.head(entry, now, rates, int(now))) is not None:
            response = RenderedResponse(entry.status, head, rid, entry.body)
        else:
            own = {**resolved.headers(entry, now), **rates}
            response = respond(request, entry.status, entry.body, own, rid, int(now))
        if (ahead := components.day2.ahead) is not None:
            ahead.seen(resolved.key, resolved.question, c, entry)
        count, observe = self._bind("hit", entry.status)
        count()
        if resolved.team is not None:
            resolved.team[0].inc()
            resolved.team[1].inc()
        seconds = time.perf_counter() - started
        observe(seconds)
        if self._access.enabled:
            trace = None if (traceparent := headers.get(TRACEPARENT)) is None else trace_json(traceparent)
            self._access.record((now, rid, trace, resolved.hit_outcome(entry.status), seconds))
        if tracing.enabled():
            with tracing.request_span(self._span, headers) as current:
                tracing.annotate(current, {"http.response.status_code": entry.status, "cache": "hit"})
        return response

    def _share(self, components: Components, c: Credential) -> dict[str, str]:
        """The caller's X-RateLimit-* (spending.py, updated in place); once bound, new teams empty the memo."""
        if self._rates is None:
            components.day2.on_teams.append(lambda: setattr(self, "_memo", QuestionMemo()))
            self._rates = components.day2.spending.headers_for(self._endpoint)
        return self._rates.get((c.workspace, c.team_label), NO_RATES)

    def _log(
        self,
        request: web.BaseRequest,
        rid: str,
        resolved: Resolved | None,
        status: int,
        cache: str,
        fwd_status: int | None,
        started: float,
    ) -> None:
        team = resolved.credential.team_label if resolved is not None else None
        outcome = (team, self._endpoint.name, status, cache, fwd_status)
        self._access.write(rid, request.headers.get(TRACEPARENT), outcome, time.perf_counter() - started)

    async def _answer(
        self, request: web.BaseRequest, components: Components, asked: list[Resolved], now: float
    ) -> Answer:
        """The answer; `asked` gets the request's resolution as soon as it is known (for the team counters)."""
        if asked:  # validated and authenticated before; only the cache missed
            resolved = asked[0]
            return await components.service.answer(
                resolved.question, resolved.credential, resolved.key, resolved.instant
            )
        if len(request.query_string) > self._max_query:
            raise InvalidRequest(f"Invalid request: the query string is longer than {self._max_query} bytes")
        check_encoding(request.rel_url.raw_query_string)
        if request.body_exists and (request.content_length or 0) > MAX_REQUEST_BODY:
            raise InvalidRequest("Invalid request: this endpoint takes no request body")
        query = request.query
        authorization = request.headers.get("Authorization")
        credential = components.auth.resolve(authorization, query.get(LEGACY_KEY_PARAM))
        parsed = parse_query(query.items(), self._endpoint, components.rules, datetime.fromtimestamp(now, UTC))
        key = parsed.question.cache_key(credential.scope)
        instant = parsed.instant
        resolved = Resolved(key, parsed.question, credential, parsed.valid_until, instant, team=self._team(credential))
        asked.append(resolved)
        if not request.body_exists:
            self._memo.put(request.rel_url.raw_query_string, authorization, resolved, now)
        return await components.service.answer(parsed.question, credential, key, instant)

    def _team(self, credential: Credential) -> tuple[BatchedCounter, BatchedCounter]:
        """The team's batched (requests, hits) counters, bound once per team label."""
        label = credential.team_label
        bound = self._teams.get(label)
        if bound is None:
            m = self._metrics
            bound = (m.batched_counter(m.team_requests.labels(label)), m.batched_counter(m.team_hits.labels(label)))
            self._teams[label] = bound
        return bound

    def _bind(self, cache: str, code: int) -> HitMetrics:
        """The (batched) request counter and duration histogram of this outcome, bound on first use."""
        bound = self._bound.get((cache, code))
        if bound is None:
            m = self._metrics
            count = m.batched_counter(m.requests.labels(self._endpoint.name, cache, str(code))).inc
            observe = m.batched_histogram(m.request_duration.labels(self._endpoint.name, cache)).observe
            bound = self._bound[(cache, code)] = (count, observe)
        return bound


def create_app(
    settings: Settings,
    metrics: Metrics | None = None,
    *,
    workers: int = 1,
    clock: Clock = time.time,
    sleep: Sleep = asyncio.sleep,
    environ: Mapping[str, str] = NO_ENVIRON,
) -> web.Application:
    """The proxy app (one of `workers` processes). With `metrics_port` set, /metrics and the health routes
    live on `create_ops_app`. `environ`: the process environment as the CLI read it (tracing's OTEL_*, the
    egress proxy's variables, Prometheus's multiprocess directory); none by default."""
    metrics = metrics or Metrics(multiprocess_dir=environ.get(MULTIPROC_ENV))
    lifecycle = Lifecycle()
    app = web.Application(middlewares=[errors_middleware], client_max_size=MAX_REQUEST_BODY)
    app[SETTINGS] = settings
    app[METRICS] = metrics
    app[LIFECYCLE] = lifecycle
    app[SAMPLER] = Sampler(app)

    async def components(app: web.Application) -> AsyncIterator[None]:
        async with open_components(
            settings, metrics, workers=workers, clock=clock, sleep=sleep, environ=environ
        ) as built:
            app[COMPONENTS] = built
            yield

    # First in, last out: the access log's last lines are written after every request and component is done.
    access = AccessLog(settings.access_log, metrics.access_log_dropped.inc)
    app.cleanup_ctx.append(access_log_ctx(access))
    app.cleanup_ctx.append(components)
    if tracing.configure(environ):
        app.on_cleanup.append(lambda _: asyncio.to_thread(tracing.shutdown))
    series: dict[str, Handler] = {}
    for endpoint in SERVED:
        handler = DataSeriesHandler(app, endpoint, metrics, lifecycle, settings.max_query_bytes, clock, access)
        app.router.add_get(endpoint.path, handler.handle)  # HEAD too: the same answer without its body
        series[endpoint.path] = handler.handle
    app[SERIES] = series  # a GET goes straight here (hooks.SeriesDispatch): no route match, no middleware
    app.router.add_get("/openapi.json", openapi_route())
    if settings.metrics_port is None:
        add_ops_routes(app)
        add_admin_routes(app, settings.admin_token, metrics, lambda request: request.app[COMPONENTS].day2)
    add_export_routes(  # last: its fallback takes every other path
        app, metrics, lifecycle, access, settings.max_query_bytes, settings.upstream_url
    )
    return app


def access_log_ctx(access: AccessLog) -> Callable[[web.Application], AsyncIterator[None]]:
    """The access log's writer runs while the app does; at the end it writes what waits (off the event loop)."""

    async def running(_app: web.Application) -> AsyncIterator[None]:
        access.start()
        try:
            yield
        finally:
            if not await asyncio.to_thread(access.close):
                log.warning("access-log lines were still waiting at exit (stderr blocked?)")

    return running


__all__ = ["COMPONENTS", "LIFECYCLE", "METRICS", "SAMPLER", "SETTINGS", "create_app", "create_ops_app", "json_response"]
