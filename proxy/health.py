"""Redis health: a flag the request path reads for free, and a probe that restores it.

While Redis is marked down, requests skip it entirely (no request waits on a dead Redis); one
background probe pings it every `interval` seconds and flips the flag back when it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from proxy.errors import StoreError

log = logging.getLogger("braze_proxy.health")


class RedisHealth:
    def __init__(
        self,
        ping: Callable[[], Awaitable[None]],
        on_change: Callable[[bool], None],
        interval: float = 1.0,
        reconnect: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.up = True
        self._ping = ping
        self._reconnect = reconnect
        self._on_change = on_change
        self._interval = interval
        self._probe: asyncio.Task[None] | None = None
        on_change(True)

    def failed(self, error: StoreError) -> None:
        """Mark Redis down after a failed call and start probing (once)."""
        if not self.up:
            return
        self.up = False
        self._on_change(False)
        log.warning("redis unreachable, degrading to in-process cache and budget", extra={"error": str(error)})
        self._probe = asyncio.get_running_loop().create_task(self._recover())

    async def _recover(self) -> None:
        while not self.up:
            await asyncio.sleep(self._interval)
            try:
                await self._ping()
                if self._reconnect is not None:
                    await self._reconnect()  # before anyone else uses the pool again
            except StoreError:
                continue
            self.up = True
            self._on_change(True)
            log.info("redis reachable again")

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
