"""The aiohttp shell: the app factory, routes, the one place errors become responses, resource wiring.

`create_app(settings)` builds everything from Settings; resources (HTTP pool, Redis pool, service)
open and close in `cleanup_ctx`. Handlers only translate HTTP to a Question and an Answer back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web, web_protocol

from proxy import __version__
from proxy.bucket import BucketParams
from proxy.budget import Budget, MemoryBudget, RedisBudget
from proxy.cache import MemoryLRU, MemoryStore, Store
from proxy.coalesce import ClusterLock
from proxy.credentials import Authenticator
from proxy.endpoints import SERVED, Endpoint
from proxy.errors import InvalidRequest, MethodNotAllowed, NotFound, ProxyError, StoreError, Unauthorized
from proxy.freshness import FreshnessPolicy
from proxy.health import RedisHealth
from proxy.memo import QuestionMemo, Resolved
from proxy.metrics import Metrics
from proxy.query import LEGACY_KEY_PARAM, KeyRules, check_encoding, parse_query
from proxy.redis_store import RedisStore, connect
from proxy.service import Answer, Service, ServiceConfig, error_cache_status
from proxy.settings import Settings
from proxy.upstream import UpstreamClient, close_session

log = logging.getLogger("braze_proxy.web")

JSON_TYPE = "application/json"
MAX_REQUEST_BODY = 16 * 1024  # the proxied endpoint is GET: any body is refused past this
HEALTH_PROBE_SECONDS = 1.0


@dataclass
class Runtime:
    """What the handlers share: built in `resources`, read on every request."""

    settings: Settings
    metrics: Metrics
    auth: Authenticator
    rules: KeyRules
    service: Service | None = None
    store: Store | None = None
    l1: MemoryLRU | None = None
    health: RedisHealth | None = None
    redis_seen: bool = False  # Redis answered at least once (readiness waits for it)
    draining: bool = False
    workers: int = 1  # processes sharing this host's port (--workers): in-process budgets are split among them
    handling: set[asyncio.Task[Any]] = field(default_factory=set)  # requests being answered (that await)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @classmethod
    def from_settings(cls, settings: Settings, metrics: Metrics, workers: int = 1) -> Runtime:
        api_key = settings.api_key.get_secret_value() if settings.api_key else None
        auth = Authenticator(api_key, settings.client_token_map())
        rules = KeyRules(ZoneInfo(settings.reporting_timezone), settings.floor_ending_at)
        return cls(settings, metrics, auth, rules, workers=workers)

    async def resources(self, app: web.Application) -> AsyncIterator[None]:
        """cleanup_ctx: open the pools and the service, yield while serving, close in reverse."""
        s = self.settings
        self.metrics.budget_per_hour.set(s.rate_limit_per_hour)
        connector = aiohttp.TCPConnector(limit=s.upstream_max_connections, ttl_dns_cache=300)
        session = aiohttp.ClientSession(connector=connector, auto_decompress=True, trust_env=False)
        upstream = UpstreamClient(
            session, s.upstream_url, s.upstream_timeout, s.upstream_connect_timeout,
            s.upstream_max_body_bytes, f"braze-proxy/{__version__}",
        )  # fmt: skip
        params = BucketParams.per_hour(s.rate_limit_per_hour, s.rate_limit_burst, s.rate_limit_max_wait_seconds)
        # An in-process bucket holds this process's share: of the whole budget without Redis (one share per
        # --workers process), of a replica's share while Redis is down (replicas x workers shares).
        local_share = self.workers if s.redis_url is None else s.expected_replicas * self.workers
        local_params = BucketParams.per_hour(
            s.rate_limit_per_hour / local_share,
            max(1, s.rate_limit_burst // local_share),
            s.rate_limit_max_wait_seconds,
        )
        budget: Budget
        lock: ClusterLock | None = None
        if s.redis_url is None:
            store: Store = MemoryStore(s.memory_max_entries, s.memory_max_bytes, time.time)
            budget = fallback = MemoryBudget(local_params, time.time)
            self.metrics.redis_up.set(1)  # the memory store is always reachable
        else:
            client = connect(s.redis_url, s.redis_timeout, s.redis_max_connections)
            redis_store = RedisStore(client, s.redis_key_prefix, s.redis_timeout)
            store = redis_store
            self.closers.append(redis_store.close)
            budget = RedisBudget(client, s.redis_key_prefix, params, s.redis_timeout)
            fallback = MemoryBudget(local_params, time.time)
            # A fill lock outlives the longest fill: every attempt and backoff within the retry budget.
            lock_seconds = s.upstream_retry_budget_seconds + s.upstream_timeout + 2
            lock = ClusterLock(client, s.redis_key_prefix, s.redis_timeout, lock_seconds)
            if s.l1_enabled:
                self.l1 = MemoryLRU(s.l1_max_entries, s.l1_max_bytes)
            self.health = await self._watch_redis(redis_store)
        self.store = store
        policy = FreshnessPolicy(
            self.rules.zone, s.ttl_open_hour, s.ttl_open_day, s.settle_window_hour, s.settle_window_day,
            s.ttl_recent_hour, s.ttl_recent_day, s.ttl_settled, s.stale_seconds,
        )  # fmt: skip
        config = ServiceConfig(
            zone=self.rules.zone,
            swr_seconds=min(s.stale_while_revalidate_seconds, s.stale_seconds),
            retries=s.upstream_retries,
            retry_budget=s.upstream_retry_budget_seconds,
            coalesce_wait=s.coalesce_wait_seconds,
            fail_open=s.redis_outage_policy == "open",
        )
        self.service = Service(
            store=store, l1=self.l1, budget=budget, fallback_budget=fallback, lock=lock, health=self.health,
            upstream=upstream, policy=policy, metrics=self.metrics, config=config,
        )  # fmt: skip
        mode = "managed" if self.auth.managed else "pass-through"
        log.info(
            "proxy ready",
            extra={"store": store.name, "l1": self.l1 is not None, "mode": mode, "upstream": s.upstream_url},
        )
        yield
        await self.service.close(timeout=1.0)
        if self.health is not None:
            await self.health.close()
        for close in reversed(self.closers):
            await close()
        await close_session(session)

    async def _watch_redis(self, redis_store: RedisStore) -> RedisHealth:
        def changed(up: bool) -> None:
            self.metrics.redis_up.set(1 if up else 0)
            if up and self.health is not None:  # a recovery, not the constructor's initial call
                self.redis_seen = True

        health = RedisHealth(redis_store.ping, changed, HEALTH_PROBE_SECONDS, redis_store.reconnect)
        try:
            await redis_store.ping()
            self.redis_seen = True
        except StoreError as error:
            health.failed(error)  # start answering anyway; the probe restores Redis when it answers
        return health

    async def drain(self, grace: float) -> int:
        """Wait up to `grace` seconds for the requests being answered, then cancel what is left (their clients
        get no answer: the one loss the grace period allows). Returns how many were cancelled.

        aiohttp's own shutdown would wait its timeout twice for a hung handler (once before cancelling it, once
        after); doing it here makes `grace` the bound.
        """
        deadline = time.monotonic() + grace
        while self.handling and (left := deadline - time.monotonic()) > 0:
            await asyncio.wait(list(self.handling), timeout=left)
        late = list(self.handling)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=1.0)
        return len(late)

    async def readiness(self) -> tuple[int, dict[str, str]]:
        """(status, body) of /readyz; pings Redis so an idle replica still notices an outage."""
        if self.draining:
            return 503, {"status": "draining"}
        if self.health is None or self.store is None:
            return (200, {"status": "ready", "store": "memory"}) if self.service else (503, {"status": "starting"})
        if self.health.up:
            try:
                await self.store.ping()
                self.redis_seen = True
            except StoreError as error:
                self.health.failed(error)
        if self.health.up:
            return 200, {"status": "ready", "store": "redis"}
        if not self.redis_seen:
            return 503, {"status": "starting", "redis": "unreachable"}
        if self.settings.redis_outage_policy == "open":
            return 200, {"status": "degraded", "redis": "unreachable"}
        return 503, {"status": "unavailable", "redis": "unreachable"}


RUNTIME = web.AppKey("runtime", Runtime)


def json_response(status: int, payload: object, headers: dict[str, str] | None = None) -> web.Response:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return web.Response(body=body, status=status, content_type=JSON_TYPE, headers=headers)


def error_response(error: ProxyError, cache_status: str | None = None) -> web.Response:
    headers = {"Content-Type": JSON_TYPE, **error.headers()}
    if cache_status is not None:
        headers["Cache-Status"] = cache_status
    return web.Response(body=error.body(), status=error.status, headers=headers)


@web.middleware
async def errors_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every failure becomes a Braze-style JSON body; nothing internal reaches a client."""
    try:
        return await handler(request)
    except ProxyError as error:
        return error_response(error)
    except web.HTTPException as exc:
        if exc.status == 404:
            return error_response(NotFound())
        if exc.status == 405:
            return error_response(MethodNotAllowed(), None)
        if exc.status >= 400:
            return json_response(exc.status, {"message": exc.reason})
        raise
    except Exception:
        log.exception("unexpected error", extra={"path": request.path})
        return json_response(500, {"message": "Internal error"})


class DataSeriesHandler:
    """GET <endpoint.path>: validate, authenticate, ask the service, answer with Cache-Status.

    The hot path (`handle`'s first half) serves a request it has resolved before from the entry this process
    holds, without parsing, hashing or awaiting; everything else goes through `_answer` and the service.
    """

    def __init__(self, runtime: Runtime, endpoint: Endpoint) -> None:
        self._rt = runtime
        self._endpoint = endpoint
        self._max_query = runtime.settings.max_query_bytes
        self._memo = QuestionMemo()
        m = runtime.metrics
        self._requests = m.requests
        self._duration = m.request_duration
        self._inflight = m.inflight
        self._metrics = m
        # Label children bound once per (cache, code), batched: no label lookup and no lock on the hot path.
        self._counters: dict[tuple[str, int], Callable[[], None]] = {}
        self._timers: dict[str, Callable[[float], None]] = {}
        self._hit_metrics: dict[int, tuple[Callable[[], None], Callable[[float], None]]] = {}

    async def handle(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        now = time.time()
        service = self._rt.service
        assert service is not None  # routes are served only after resources() built it
        resolved = None
        if not request.body_exists:  # a request with a body goes the long way, which refuses it
            raw_query = request.rel_url.raw_query_string
            resolved = self._memo.get(raw_query, request.headers.get("Authorization"), now)
            entry = service.hit(resolved.key, now) if resolved is not None else None
            if entry is not None:
                assert resolved is not None
                # Never awaited, so never "in flight": the inflight gauge is left alone.
                ttl, age = int(entry.fresh_until - now), int(now - entry.stored_at)
                rendered = resolved.rendered
                if rendered is not None and rendered[0] is entry and rendered[1] == ttl and rendered[2] == age:
                    headers = rendered[3]  # the same answer as the last one, to the second: reuse its headers
                else:
                    headers = {
                        "Content-Type": entry.content_type,
                        "Cache-Status": f"braze-proxy; hit; ttl={ttl}",
                        "Age": str(max(0, age)),
                    }
                    resolved.rendered = (entry, ttl, age, headers)
                response = web.Response(body=entry.body, status=entry.status, headers=headers)
                bound = self._hit_metrics.get(entry.status)
                if bound is None:
                    bound = self._hit_metrics[entry.status] = self._bind("hit", entry.status)
                count, observe = bound
                count()
                observe(time.perf_counter() - started)
                return response
        self._inflight.inc()
        task = asyncio.current_task()
        if task is not None:
            self._rt.handling.add(task)
        try:
            answer = await self._answer(request, service, resolved)
            response = self._response(answer)
            cache = answer.cache
        except ProxyError as error:
            cache = "bypass" if isinstance(error, InvalidRequest | Unauthorized) else "error"
            status = "braze-proxy; fwd=bypass" if cache == "bypass" else error_cache_status(error)
            response = error_response(error, status)
        except Exception:  # a bug: still a JSON answer, counted, and logged with its traceback (never sent)
            log.exception("unexpected error answering a request")
            cache, response = "error", json_response(500, {"message": "Internal error"})
        finally:
            self._inflight.dec()
            if task is not None:
                self._rt.handling.discard(task)
        self._record(cache, response.status, time.perf_counter() - started)
        return response

    async def _answer(self, request: web.Request, service: Service, resolved: Resolved | None) -> Answer:
        if resolved is not None:  # validated and authenticated before; only the cache missed
            return await service.answer(resolved.question, resolved.credential, resolved.key)
        if len(request.query_string) > self._max_query:
            raise InvalidRequest(f"Invalid request: the query string is longer than {self._max_query} bytes")
        check_encoding(request.rel_url.raw_query_string)
        if request.body_exists and (request.content_length or 0) > MAX_REQUEST_BODY:
            raise InvalidRequest("Invalid request: this endpoint takes no request body")
        now = time.time()
        query = request.query
        authorization = request.headers.get("Authorization")
        credential = self._rt.auth.resolve(authorization, query.get(LEGACY_KEY_PARAM))
        parsed = parse_query(query.items(), self._endpoint, self._rt.rules, datetime.fromtimestamp(now, UTC))
        key = parsed.question.cache_key(credential.scope)
        if not request.body_exists:
            resolved = Resolved(key, parsed.question, credential, parsed.valid_until)
            self._memo.put(request.rel_url.raw_query_string, authorization, resolved, now)
        return await service.answer(parsed.question, credential, key)

    @staticmethod
    def _response(answer: Answer) -> web.Response:
        headers = {"Content-Type": answer.content_type, "Cache-Status": answer.cache_status}
        if answer.age is not None:
            headers["Age"] = str(answer.age)
        headers.update(answer.extra)
        return web.Response(body=answer.body, status=answer.status, headers=headers)

    def _bind(self, cache: str, code: int) -> tuple[Callable[[], None], Callable[[float], None]]:
        """The (batched) request counter and duration histogram for this outcome, bound on first use."""
        count = self._counters.get((cache, code))
        if count is None:
            child = self._requests.labels(self._endpoint.name, cache, str(code))
            count = self._counters[(cache, code)] = self._metrics.batched_counter(child).inc
        observe = self._timers.get(cache)
        if observe is None:
            child_ = self._duration.labels(self._endpoint.name, cache)
            observe = self._timers[cache] = self._metrics.batched_histogram(child_).observe
        return count, observe

    def _record(self, cache: str, code: int, seconds: float) -> None:
        count, observe = self._bind(cache, code)
        count()
        observe(seconds)


async def healthz(request: web.Request) -> web.Response:
    return json_response(200, {"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    status, body = await request.app[RUNTIME].readiness()
    return json_response(status, body)


def sample_metrics(rt: Runtime) -> None:
    """Read the gauges that are sampled rather than kept, and fold the hot path's batched counts in."""
    if rt.l1 is not None:
        rt.metrics.cache_entries.labels("l1").set(len(rt.l1))
    if isinstance(rt.store, MemoryStore):
        rt.metrics.cache_entries.labels("memory").set(len(rt.store))
    rt.metrics.flush()


async def metrics_route(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    sample_metrics(rt)
    body, content_type = rt.metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": content_type})


def openapi_route() -> Callable[[web.Request], Awaitable[web.Response]]:
    """GET /openapi.json: the shipped description, read once."""
    spec = resources.files("proxy").joinpath("openapi.json").read_bytes()

    async def openapi(request: web.Request) -> web.Response:
        return web.Response(body=spec, content_type=JSON_TYPE)

    return openapi


def add_ops_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz, allow_head=True)
    app.router.add_get("/readyz", readyz, allow_head=True)
    app.router.add_get("/metrics", metrics_route)


def create_app(settings: Settings, metrics: Metrics | None = None, workers: int = 1) -> web.Application:
    """The proxy app (one of `workers` processes). With `metrics_port` set, /metrics and the health routes
    live on `create_ops_app`."""
    runtime = Runtime.from_settings(settings, metrics or Metrics(), workers)
    app = web.Application(middlewares=[errors_middleware], client_max_size=MAX_REQUEST_BODY)
    app[RUNTIME] = runtime
    app.cleanup_ctx.append(runtime.resources)
    for endpoint in SERVED:
        app.router.add_get(endpoint.path, DataSeriesHandler(runtime, endpoint).handle, allow_head=False)
    app.router.add_get("/openapi.json", openapi_route())
    if settings.metrics_port is None:
        add_ops_routes(app)
    return app


def create_ops_app(main: web.Application) -> web.Application:
    """/metrics, /healthz, /readyz on their own port, sharing the main app's runtime."""
    app = web.Application(middlewares=[errors_middleware])
    app[RUNTIME] = main[RUNTIME]
    add_ops_routes(app)
    return app


PARSE_ERROR = "Bad request: the HTTP request could not be parsed (a line too long, too many headers, a forbidden byte)"


class JsonErrorRequestHandler(web_protocol.RequestHandler):
    """aiohttp's connection handler, except that what its HTTP parser refuses (before any route or middleware
    runs) gets a Braze-style JSON body. aiohttp's own plain-text body quotes the offending line, which may hold
    the sender's credential; ours never echoes a byte of the request."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        refused = super().handle_error(request, status, exc, message)  # logs (the kind only: logs.py)
        payload = {"message": PARSE_ERROR if refused.status < 500 else "Internal error"}
        response = json_response(refused.status, payload)
        response.force_close()
        return response


class JsonErrorServer(web.Server):
    def __call__(self) -> web_protocol.RequestHandler:
        return JsonErrorRequestHandler(self, loop=self._loop, **self._kwargs)


class ProxyRunner(web.AppRunner):
    """An AppRunner whose connections answer parse errors with JSON (see JsonErrorRequestHandler)."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = JsonErrorServer  # the same server; only how it makes connection handlers differs
        return server


def make_runner(app: web.Application, settings: Settings | None = None) -> web.AppRunner:
    """A runner with bounded request line and headers, graceful shutdown, no access log and JSON parse errors.

    Without settings (the ops app): aiohttp's default bounds, no grace period of its own.
    """
    if settings is None:
        return ProxyRunner(app, handle_signals=False, access_log=None)
    return ProxyRunner(
        app,
        handle_signals=False,
        access_log=None,
        shutdown_timeout=settings.shutdown_grace_seconds,
        # The request line holds the path and the query. Up to this size an overlong query gets the handler's
        # 400 naming the limit; past it, the HTTP parser refuses the line itself (PARSE_ERROR).
        max_line_size=max(8190, settings.max_query_bytes + 1024),
        max_field_size=settings.max_header_bytes,
        max_headers=64,
        keepalive_timeout=75.0,
    )
