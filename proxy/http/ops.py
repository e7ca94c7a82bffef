"""The operations routes: /healthz, /readyz, /metrics and /openapi.json, on the main port or on their own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources

from aiohttp import web

from proxy.core.errors import StoreError
from proxy.day2.admin import add_admin_routes
from proxy.http.hooks import SERVER
from proxy.http.keys import COMPONENTS, LIFECYCLE, METRICS, SAMPLER, SETTINGS
from proxy.http.lifecycle import ReadinessInputs, readiness
from proxy.http.responses import JSON_TYPE, errors_middleware, json_response


async def healthz(request: web.Request) -> web.Response:
    return json_response(200, {"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    app = request.app
    lifecycle = app[LIFECYCLE]
    components = app.get(COMPONENTS)
    if components is None:
        return json_response(*readiness(ReadinessInputs.not_started(lifecycle.draining)))
    health = components.health
    if health.state == "up" and not lifecycle.draining:  # an idle replica still notices an outage
        try:
            await components.ping()
        except StoreError as error:
            health.failed(error)
    inputs = ReadinessInputs(
        started=True,
        draining=lifecycle.draining,
        store=components.store,
        redis=health.state,
        redis_seen=health.seen,
        fail_open=components.fail_open,
        details={} if components.alignment is None else {"windows": components.alignment.details()},
    )
    return json_response(*readiness(inputs))


class Sampler:
    """Reads the gauges that are sampled rather than kept (entries, bytes, evictions of the in-process cache)
    and folds the hot path's batched counts in: before a scrape, and every second (--workers)."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._evicted = 0

    def __call__(self) -> None:
        metrics = self._app[METRICS]
        components = self._app.get(COMPONENTS)
        local = components.cache.local if components is not None else None
        if components is not None and local is not None:
            store = "l1" if components.store == "redis" else "memory"
            metrics.cache_entries.labels(store).set(len(local))
            metrics.cache_bytes.labels(store).set(local.bytes)
            if local.evictions > self._evicted:
                metrics.cache_evictions.labels(store).inc(local.evictions - self._evicted)
                self._evicted = local.evictions
        metrics.flush()


async def metrics_route(request: web.Request) -> web.Response:
    request.app[SAMPLER]()
    body, content_type = request.app[METRICS].exposition()
    return web.Response(body=body, headers={"Content-Type": content_type, "Server": SERVER})


def openapi_route() -> Callable[[web.Request], Awaitable[web.Response]]:
    """GET /openapi.json: the shipped description, read once."""
    spec = resources.files("proxy").joinpath("openapi.json").read_bytes()

    async def openapi(request: web.Request) -> web.Response:
        return web.Response(body=spec, headers={"Content-Type": JSON_TYPE, "Server": SERVER})

    return openapi


def add_ops_routes(app: web.Application) -> None:
    # add_get answers HEAD on every route too (RFC 9110 §9.3.2): aiohttp sends the headers and drops the body.
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_route)


def create_ops_app(main: web.Application) -> web.Application:
    """/metrics, /healthz, /readyz on their own port, reading the main app's state."""
    app = web.Application(middlewares=[errors_middleware])
    app[SETTINGS] = main[SETTINGS]
    app[METRICS] = main[METRICS]
    app[LIFECYCLE] = main[LIFECYCLE]
    app[SAMPLER] = main[SAMPLER]

    async def share(ops: web.Application) -> AsyncIterator[None]:
        ops[COMPONENTS] = main[COMPONENTS]
        yield

    app.cleanup_ctx.append(share)
    add_ops_routes(app)
    add_admin_routes(app, app[SETTINGS].admin_token, app[METRICS], lambda request: request.app[COMPONENTS].day2)
    return app
