"""One fill per key across replicas: a short Redis lease (SET NX) its live holder extends while the call runs, so a
holder that dies is replaced within seconds; a fill that ends without storing anything leaves a short-lived marker
saying how it ended (Braze's answer to pass on, or the error), so the replicas that waited answer the same instead
of each calling Braze. A budget refusal in a marker names the team refused: only that team's callers take it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from importlib import resources
from typing import Literal

from proxy.redis.connection import RedisConnection

LEASE_SECONDS = 3.0  # a fill lock's life unless its holder extends it: how long a dead holder stalls the others
_MAGIC = b"M2|"
MAX_MARKER_SECONDS = 60.0  # a marker outlives its waiters' poll by far, and never a broken Retry-After


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
