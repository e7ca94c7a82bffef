"""One upstream call per key: in-process shared tasks, and a Redis lease across replicas.

Inside a process, concurrent misses for one key await one task (shielded, so a client that hangs up
does not cancel the call for the others). Across replicas, the first to SET NX the key's lock fills; the lock
is a short lease its live holder extends while the call runs, so a holder that dies is replaced within
seconds. A fill that ends without storing anything leaves a short-lived marker saying how it ended (Braze's
answer to pass on, or the error), so the replicas that waited answer the same instead of each calling Braze.

A refusal by the proxy's budget belongs to the team refused (its share, not the question, decided it): it is
handed only to callers of that team; a caller of another team who joined the fill decides with its own share.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from importlib import resources
from typing import Any, Generic, Literal, TypeVar

from proxy.core.errors import ProxyError, team_tag
from proxy.redis.connection import RedisConnection

T = TypeVar("T")

LEASE_SECONDS = 3.0  # a fill lock's life unless its holder extends it: how long a dead holder stalls the others
_MAGIC = b"M2|"
MAX_MARKER_SECONDS = 60.0  # a marker outlives its waiters' poll by far, and never a broken Retry-After


class Flights(Generic[T]):
    """At most one running task per key in this process."""

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Task[T]] = {}

    def __len__(self) -> int:
        return len(self._running)

    def running(self, key: str) -> bool:
        """Whether a task for `key` is under way in this process."""
        return key in self._running

    def run(self, key: str, make: Callable[[], Awaitable[T]]) -> Coroutine[Any, Any, tuple[T, bool]]:
        """The result of the one task for `key`, and whether this caller joined an existing one.

        The task is started (or joined) when `run` is called, not when its result is first awaited: a caller
        that wraps the call in a task of its own (a background refresh) is one flight from that moment on."""
        task = self._running.get(key)
        joined = task is not None
        if task is None:
            task = asyncio.ensure_future(make())
            self._running[key] = task
            task.add_done_callback(lambda _: self._running.pop(key, None))
        return _shielded(task, joined)

    def tasks(self) -> list[asyncio.Task[T]]:
        return list(self._running.values())

    async def run_for(self, key: str, team: str, make: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """`run` for a caller of `team`: a fill it joined that another team's budget refused is not its answer;
        it then runs its own (once, shared with its own team's callers), where its own share decides."""
        try:
            return await self.run(key, make)
        except ProxyError as error:
            tag = team_tag(team)
            if error.team is None or error.team == tag:
                raise
        return await self.run(f"{key}\x00team:{tag}", make)


async def _shielded(task: asyncio.Future[T], joined: bool) -> tuple[T, bool]:
    return await asyncio.shield(task), joined


@dataclass(frozen=True, slots=True)
class Marker:
    """How a fill that stored nothing ended, for the replicas that waited on it."""

    kind: Literal["passed_on", "error"]  # Braze's answer (passed on as it is), or the proxy's error answer
    status: int
    body: bytes
    content_type: str = "application/json"
    retry_after: float | None = None  # a 429's, in seconds from when the marker was posted
    team: str = ""  # the tag of the team whose budget refused the fill (errors.team_tag; "": everyone's answer)


def encode_marker(marker: Marker) -> bytes:
    retry = "" if marker.retry_after is None else f"{marker.retry_after:.3f}"
    header = f"{marker.kind}|{marker.status}|{retry}|{marker.team}|{marker.content_type}\n".encode()
    return _MAGIC + header + marker.body


def decode_marker(data: bytes) -> Marker | None:
    """The marker, or None for bytes not written by encode_marker."""
    if not data.startswith(_MAGIC) or (newline := data.find(b"\n")) < 0:
        return None
    try:
        kind, status, retry, team, ctype = data[len(_MAGIC) : newline].decode().split("|", 4)
        if kind not in ("passed_on", "error"):
            return None
        body = data[newline + 1 :]
        return Marker(kind, int(status), body, ctype, float(retry) if retry else None, team)  # type: ignore[arg-type]
    except ValueError:
        return None


def _lua(name: str) -> str:
    return resources.files("proxy").joinpath("lua", name).read_text()


class ClusterLock:
    """Per-fill locks (leases) in Redis and the markers of fills that stored nothing. `base` is a Redis key
    whose hash tag the lock and marker share (one Cluster slot)."""

    def __init__(self, conn: RedisConnection, timeout: float, lock_seconds: float = LEASE_SECONDS) -> None:
        self._conn = conn
        self._timeout = timeout
        self.lease = lock_seconds
        self._lock_ms = max(1, int(lock_seconds * 1000))
        self._acquire = conn.script(_lua("lock_acquire.lua"))
        self._extend = conn.script(_lua("lock_extend.lua"))
        self._release = conn.script(_lua("lock_release.lua"))

    async def acquire(self, base: str) -> str | None:
        """A token if this replica now holds the fill lock of `base`, else None."""
        token = secrets.token_hex(8)
        async with self._conn.translated(self._timeout):
            got = await self._acquire([base + ":lock", base + ":fail"], [token, self._lock_ms])
        return token if got else None

    async def extend(self, base: str, token: str) -> bool:
        """Renew the lease of the lock this replica holds; False when it is no longer this replica's."""
        async with self._conn.translated(self._timeout):
            return bool(await self._extend([base + ":lock"], [token, self._lock_ms]))

    async def release(self, base: str, token: str) -> None:
        async with self._conn.translated(self._timeout):
            await self._release([base + ":lock"], [token])

    async def post(self, base: str, marker: Marker, seconds: float) -> None:
        """Tell the replicas waiting on this fill how it ended, so they answer the same instead of retrying."""
        keep_ms = max(1, int(min(seconds, MAX_MARKER_SECONDS) * 1000))
        async with self._conn.translated(self._timeout):
            await self._conn.client.set(base + ":fail", encode_marker(marker), px=keep_ms)

    async def peek(self, base: str) -> tuple[bool, Marker | None]:
        """(lock held, marker) of `base`, in one round trip."""
        async with self._conn.translated(self._timeout):
            lock, marker = await self._conn.client.mget(base + ":lock", base + ":fail")
        return lock is not None, decode_marker(marker) if isinstance(marker, bytes) else None
