"""The process's lifecycle state (serving, draining, the requests in flight) and readiness.

`readiness` is a pure function of that state and of the store's health; the /readyz handler only gathers
the inputs.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from proxy.redis.health import State


@dataclass
class Lifecycle:
    draining: bool = False
    handling: set[asyncio.Task[Any]] = field(default_factory=set)  # requests being answered (that await)

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


@dataclass(frozen=True, slots=True)
class ReadinessInputs:
    started: bool  # the components are built
    draining: bool
    store: str  # "memory" or "redis"
    redis: State
    redis_seen: bool  # Redis answered at least once since start-up
    fail_open: bool  # the outage policy keeps answering without Redis
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def not_started(cls, draining: bool) -> ReadinessInputs:
        return cls(started=False, draining=draining, store="memory", redis="down", redis_seen=False, fail_open=False)


_VERDICT_KEYS = frozenset({"status", "store", "redis"})


def readiness(i: ReadinessInputs) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) of /readyz."""
    if i.draining:
        return 503, {"status": "draining"}
    if not i.started:
        return 503, {"status": "starting"}
    # details add to the verdict, never replace it: a detail named like one of its keys is left out
    body: dict[str, Any] = {"store": i.store, **{k: v for k, v in i.details.items() if k not in _VERDICT_KEYS}}
    if i.store == "memory":
        return 200, {"status": "ready", **body}
    body["redis"] = i.redis
    if i.redis == "up":
        return 200, {"status": "ready", **body}
    if i.redis == "degraded_writes":  # reads work: serving, degraded
        return 200, {"status": "degraded", **body}
    if not i.redis_seen:
        return 503, {"status": "starting", **body}
    if i.fail_open:
        return 200, {"status": "degraded", **body}
    return 503, {"status": "unavailable", **body}
