"""One fill across replicas: take the lock or wait for the replica that holds it, with a typed outcome.

- The replica that takes the lock reads the cache again first (another replica may have stored and
  released just before), then produces; a result it could not store leaves a marker for the waiters.
- The holder extends its lock's lease while it produces: a holder that dies (SIGKILL, a lost host) leaves
  a lock that expires within one lease, and a waiter takes it over.
- The others wait, woken when the fill ends (polling as the fallback), and take what the holder stored,
  the marker it left, or the lock once it is free. A marker of another team's budget refusal is not theirs:
  they take the lock and fill with their own share.
Without Redis, or while Redis refuses writes or is unreachable, every fill runs unlocked (the in-process
coalescing in front of this still holds).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Protocol, TypeVar

from proxy.core.entry import Entry
from proxy.core.errors import ProxyError, RelayedError, StoreError, UpstreamTimeout, team_tag
from proxy.core.outcomes import Filled, Found, Made, PassedOn
from proxy.fill.lock import ClusterLock, Marker
from proxy.redis.health import Health

log = logging.getLogger("braze_proxy.filler")

T = TypeVar("T")
FIRST_POLL = 0.005
LAST_POLL = 0.1
MARKER_SECONDS = 3.0  # how long waiters that poll late still find how a fill ended


@dataclass(frozen=True, slots=True)
class Locked:
    """The peer's lock came free and this replica took it: it fills now, holding `token`."""

    token: str


class Watch(Protocol):
    async def wait(self, timeout: float) -> None:
        """Return when the fill watched ends (as far as this replica can tell), or after `timeout`."""


class Wakeups(Protocol):
    def watch(self, base: str) -> AbstractContextManager[Watch]:
        """Listen for the end of the fill of `base` from now on (so that no wake-up falls between two waits)."""

    async def notify(self, base: str) -> None:
        """Tell the waiting replicas that the fill of `base` ended. Raises StoreError."""


class _Sleep:
    async def wait(self, timeout: float) -> None:
        await asyncio.sleep(timeout)


class Polling:
    """No wake-ups: waiters poll (the fallback when pub/sub is not available, and the bench's baseline)."""

    @contextmanager
    def watch(self, base: str) -> Iterator[Watch]:
        yield _Sleep()

    async def notify(self, base: str) -> None:
        return None


class Filler:
    def __init__(
        self,
        *,
        lock: ClusterLock | None,
        health: Health,
        wakeups: Wakeups,
        wait_seconds: float,
        on_peer: Callable[[], None],
        key_prefix: str,
    ) -> None:
        self._lock = lock
        self._health = health
        self._wakeups = wakeups
        self._wait_seconds = wait_seconds  # on the event loop's clock: a bound on waiting, not a freshness
        self._on_peer = on_peer  # counts an answer made by another replica's call
        self._prefix = key_prefix  # of the lock's and the markers' Redis keys

    async def fill(
        self,
        name: str,
        produce: Callable[[], Awaitable[T | PassedOn]],
        recheck: Callable[[], Awaitable[T | None]],
        team: str = "",
    ) -> Filled[T]:
        """Produce the value of `name` once across replicas for a caller of `team`; raises what `produce` raised
        (or a peer's error, relayed: never another team's budget refusal), UpstreamTimeout when the peer holding
        the lock takes longer than the wait allows."""
        base = self._prefix + name
        token: str | None = None
        if self._lock is not None and self._health.writable:
            try:
                token = await self._lock.acquire(base)
                if token is None:
                    waited = await self._wait_for_peer(self._lock, base, recheck, team_tag(team))
                    if not isinstance(waited, Locked):
                        return waited
                    token = waited.token
            except StoreError as error:
                self._health.failed(error)
                token = None
        if token is None or self._lock is None:
            return _made(await produce())
        return await self._fill_locked(self._lock, base, token, produce, recheck)

    async def _fill_locked(
        self,
        lock: ClusterLock,
        base: str,
        token: str,
        produce: Callable[[], Awaitable[T | PassedOn]],
        recheck: Callable[[], Awaitable[T | None]],
    ) -> Filled[T]:
        lease = asyncio.ensure_future(self._keep_lease(lock, base, token))
        try:
            again = await recheck()  # a peer may have stored and released between our miss and our lock
            if again is not None:
                return Found(again)
            produced = await produce()
            if isinstance(produced, PassedOn):
                e = produced.entry
                await self._post(lock, base, Marker("passed_on", e.status, e.body, e.content_type), MARKER_SECONDS)
            return _made(produced)
        except ProxyError as error:
            marker = Marker("error", error.status, error.body(), retry_after=error.retry_after, team=error.team or "")
            await self._post(lock, base, marker, max(MARKER_SECONDS, error.retry_after or 0.0))
            raise
        finally:
            lease.cancel()
            try:
                await lock.release(base, token)
            except StoreError as error:
                self._health.failed(error)
            try:
                await self._wakeups.notify(base)
            except StoreError as error:
                self._health.failed(error)

    async def _keep_lease(self, lock: ClusterLock, base: str, token: str) -> None:
        """Extend the lock's lease while this fill runs (cancelled when it ends). A failed renewal is retried
        at the next beat; a lease lost (expired while this replica stalled) leaves the lock to its new holder."""
        while True:
            await asyncio.sleep(lock.lease / 3)
            try:
                if not await lock.extend(base, token):
                    log.warning("fill lock lost before the fill ended", extra={"lease_seconds": lock.lease})
                    return
            except StoreError as error:
                self._health.failed(error)

    async def _post(self, lock: ClusterLock, base: str, marker: Marker, seconds: float) -> None:
        try:
            await lock.post(base, marker, seconds)
        except StoreError as error:
            self._health.failed(error)

    async def _wait_for_peer(
        self, lock: ClusterLock, base: str, recheck: Callable[[], Awaitable[T | None]], team: str
    ) -> Found[T] | PassedOn | Locked:
        """Wait (bounded) for the replica holding the lock: its value, its marker, or the lock itself.
        Raises StoreError when Redis fails meanwhile (the caller then fills unlocked)."""
        with self._wakeups.watch(base) as watch:
            return await self._poll(lock, base, recheck, watch, team)

    async def _poll(
        self, lock: ClusterLock, base: str, recheck: Callable[[], Awaitable[T | None]], watch: Watch, team: str
    ) -> Found[T] | PassedOn | Locked:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait_seconds
        delay = FIRST_POLL
        while True:
            await watch.wait(delay)
            delay = min(delay * 2, LAST_POLL)
            value = await recheck()
            if value is not None:
                self._on_peer()
                return Found(value)
            locked, marker = await lock.peek(base)
            if marker is not None and marker.team not in ("", team):
                marker = None  # another team's budget refused that fill: this caller's own share decides
            if marker is not None:
                self._on_peer()
                if marker.kind == "passed_on":
                    entry = Entry(marker.body, marker.status, marker.content_type, 0.0, 0.0, 0.0)  # never stored
                    return PassedOn(entry, by_peer=True)
                raise RelayedError(marker.status, marker.body, marker.retry_after, marker.team)
            if not locked:
                token = await lock.acquire(base)
                if token is not None:
                    return Locked(token)
            if loop.time() >= deadline:
                raise UpstreamTimeout("Gateway timeout: another replica's call to the Braze API took too long")


def _made(produced: T | PassedOn) -> Made[T] | PassedOn:
    return produced if isinstance(produced, PassedOn) else Made(produced)
