"""The typed keys of the app's state (aiohttp AppKeys), shared by the main app, the ops app and the admin API."""

from __future__ import annotations

from collections.abc import Callable
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
# A GET's path -> its hit path (DataSeriesHandler.hit): served before aiohttp's router (hooks.HitDispatch).
Hit = Callable[[web.BaseRequest], web.Response | None]
HITS: web.AppKey[dict[str, Hit]] = web.AppKey("hits")
