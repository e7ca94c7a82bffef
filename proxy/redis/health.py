"""Redis health: up / degraded-writes / down, read for free on the request path, restored by one probe.

- down: Redis cannot be reached; requests skip it entirely (no request waits on a dead Redis).
- degraded-writes: Redis answers but refuses writes (out of memory, a demoted master's READONLY); reads
  still go to it, writes (entries, locks, the shared budget) are skipped.
- up: both work.
A failed call moves the state down at once; coming back takes `recover_after` probes in a row that
succeed (a PING, and for `up` a small write too), so one lucky PING does not flip it back (hysteresis).
The transitions are pure functions; `RedisHealth` is their thin async shell.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Literal, Protocol

from proxy.core.errors import StoreError

log = logging.getLogger("braze_proxy.health")

State = Literal["up", "degraded_writes", "down"]
STATES: tuple[State, ...] = ("up", "degraded_writes", "down")
RECOVER_AFTER = 3  # probes in a row
PROBE_SECONDS = 1.0


def after_failure(state: State, refused_write: bool) -> State:
    """The state after a call failed: a refused write only degrades writes; anything else is down."""
    if not refused_write:
        return "down"
    return "down" if state == "down" else "degraded_writes"


def after_probe(state: State, streak: int, reachable: bool, writable: bool, needed: int) -> tuple[State, int]:
    """The state and the run of good probes after one probe (reachable: PING answered; writable: a write
    went through too). A state improves only after `needed` good probes in a row."""
    if not reachable:
        return "down", 0
    target: State = "up" if writable else "degraded_writes"
    if target == state:
        return state, 0
    if STATES.index(target) > STATES.index(state):  # worse: at once
        return target, 0
    streak += 1
    if streak >= needed:
        return target, 0
    return state, streak


class RedisHealth:
    def __init__(
        self,
        ping: Callable[[], Awaitable[None]],
        probe_write: Callable[[], Awaitable[None]],
        on_change: Callable[[State], None],
        *,
        reconnect: Callable[[], Awaitable[None]] | None = None,
        interval: float = PROBE_SECONDS,
        recover_after: int = RECOVER_AFTER,
    ) -> None:
        self.state: State = "up"
        self.seen = False  # Redis answered at least once (readiness waits for it)
        self._ping = ping
        self._probe_write = probe_write
        self._reconnect = reconnect
        self._on_change = on_change
        self._interval = interval
        self._needed = recover_after
        self._probe: asyncio.Task[None] | None = None
        on_change(self.state)

    @property
    def readable(self) -> bool:
        return self.state != "down"

    @property
    def writable(self) -> bool:
        return self.state == "up"

    async def start(self) -> None:
        """Check Redis once before serving: start degraded rather than not at all."""
        try:
            await self._ping()
            self.seen = True
            await self._probe_write()
        except StoreError as error:
            self.failed(error)

    def failed(self, error: StoreError) -> None:
        """Record a failed call and start probing (once). A call that never reached Redis (this process's
        connections all busy) says nothing about Redis: the state stays."""
        if error.busy:
            return
        state = after_failure(self.state, error.refused_write)
        if state != self.state:
            self._set(state, str(error))
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._recover())

    def _set(self, state: State, error: str | None = None) -> None:
        before, self.state = self.state, state
        self._on_change(state)
        if state == "up":
            log.info("redis healthy again", extra={"redis": state, "was": before})
        elif state == "down":
            log.warning("redis unreachable, degrading to in-process cache and budget", extra={"error": error})
        else:
            log.warning("redis refuses writes, serving reads from it and keeping writes in process",
                        extra={"redis": state, "was": before, "error": error})  # fmt: skip

    async def _recover(self) -> None:
        streak = 0
        while self.state != "up":
            await asyncio.sleep(self._interval)
            reachable = writable = False
            try:
                await self._ping()
                reachable = True
                self.seen = True
                await self._probe_write()
                writable = True
            except StoreError:
                pass
            state, streak = after_probe(self.state, streak, reachable, writable, self._needed)
            if state != self.state:
                if self.state == "down" and self._reconnect is not None:
                    with contextlib.suppress(StoreError):
                        await self._reconnect()  # pooled connections may be dead: drop them before use
                self._set(state)

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe


class Health(Protocol):
    """What the request path reads of a store's health, and how it reports a failure."""

    @property
    def state(self) -> State: ...
    @property
    def seen(self) -> bool: ...
    @property
    def readable(self) -> bool: ...
    @property
    def writable(self) -> bool: ...
    def failed(self, error: StoreError) -> None: ...


class AlwaysUp:
    """The health of the in-process memory store: it cannot fail."""

    state: State = "up"
    seen = True
    readable = True
    writable = True

    def failed(self, error: StoreError) -> None:
        return None
