"""The typed keys of the app's state (aiohttp AppKeys), shared by the main app, the ops app and the admin API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from proxy.components import Components
from proxy.http.lifecycle import Lifecycle
from proxy.obs.metrics import Metrics
from proxy.settings.model import Settings

if TYPE_CHECKING:
    from proxy.http.ops import Sampler

COMPONENTS = web.AppKey("components", Components)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
METRICS = web.AppKey("metrics", Metrics)
SETTINGS = web.AppKey("settings", Settings)
SAMPLER: web.AppKey[Sampler] = web.AppKey("sampler")
# A series path -> its handler, for a GET: served before aiohttp's router and middlewares (hooks.SeriesDispatch).
Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
SERIES: web.AppKey[dict[str, Handler]] = web.AppKey("series")
