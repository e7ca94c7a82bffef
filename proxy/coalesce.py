"""One upstream call per key: in-process shared tasks, and a short Redis lock across replicas.

Inside a process, concurrent misses for one key await one task (shielded, so a client that hangs up
does not cancel the call for the others). Across replicas, the first to SET NX the key's lock fetches;
the others poll (MGET of entry, lock and failure marker: one round trip, one hash slot) until a fresh
entry appears, the holder posts a failure marker, or the lock disappears and they may take it.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import redis.asyncio as aioredis

from proxy.entry import Entry, decode, encode
from proxy.redis_store import entry_key, translated

T = TypeVar("T")

# Taking the lock also clears the previous fill's failure marker: its waiters have had it, and a waiter
# on this new fill must not be handed an error from a fill that already ended.
_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Flights(Generic[T]):
    """At most one running task per key in this process."""

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Task[T]] = {}

    def __len__(self) -> int:
        return len(self._running)

    def running(self, key: str) -> bool:
        """Whether a task for `key` is under way in this process."""
        return key in self._running

    async def run(self, key: str, make: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """The result of the one task for `key`, and whether this caller joined an existing one."""
        task = self._running.get(key)
        joined = task is not None
        if task is None:
            task = asyncio.ensure_future(make())
            self._running[key] = task
            task.add_done_callback(lambda _: self._running.pop(key, None))
        return await asyncio.shield(task), joined

    def tasks(self) -> list[asyncio.Task[T]]:
        return list(self._running.values())


class ClusterLock:
    """A per-key fill lock in Redis, plus a short-lived marker carrying a failed fill's answer."""

    def __init__(self, client: aioredis.Redis, prefix: str, timeout: float, lock_seconds: float) -> None:
        self._client = client
        self._prefix = prefix
        self._timeout = timeout
        self._lock_ms = int(lock_seconds * 1000)
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)

    async def acquire(self, key: str) -> str | None:
        """A token if this replica now holds the fill lock for `key`, else None."""
        token = secrets.token_hex(8)
        base = entry_key(self._prefix, key)
        async with translated(self._timeout):
            got = await self._acquire(keys=[base + ":lock", base + ":fail"], args=[token, self._lock_ms])
        return token if got else None

    async def release(self, key: str, token: str) -> None:
        async with translated(self._timeout):
            await self._release(keys=[entry_key(self._prefix, key) + ":lock"], args=[token])

    async def post_failure(self, key: str, answer: Entry, seconds: float) -> None:
        """Tell waiting replicas how the fill ended, so they answer the same instead of retrying."""
        async with translated(self._timeout):
            await self._client.set(entry_key(self._prefix, key) + ":fail", encode(answer), px=int(seconds * 1000))

    async def peek(self, key: str) -> tuple[Entry | None, bool, Entry | None]:
        """(entry, lock held, failure marker) for `key`, in one round trip."""
        base = entry_key(self._prefix, key)
        async with translated(self._timeout):
            entry, lock, fail = await self._client.mget(base, base + ":lock", base + ":fail")
        return (
            decode(entry) if entry is not None else None,
            lock is not None,
            decode(fail) if fail is not None else None,
        )
