"""The typed keys of the app's state (aiohttp AppKeys), shared by the main app, the ops app and the admin API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from proxy.components import Components
from proxy.lifecycle import Lifecycle
from proxy.metrics import Metrics
from proxy.settings import Settings

if TYPE_CHECKING:
    from proxy.ops_web import Sampler

COMPONENTS = web.AppKey("components", Components)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
METRICS = web.AppKey("metrics", Metrics)
SETTINGS = web.AppKey("settings", Settings)
SAMPLER: web.AppKey[Sampler] = web.AppKey("sampler")
