"""Braze's 401 and 403, remembered for a while per credential: an invented or revoked key then costs one
upstream call a minute, not one a request.

A 401 (an invalid key) holds for every endpoint; a 403 (a key without the endpoint's permission) for that
endpoint only. Kept in process (bounded) and, with Redis, for every replica (a key per credential scope,
expiring on its own). Redis failures here only mean the replica remembers alone.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from proxy.core.entry import Entry, decode, encode
from proxy.core.errors import StoreError
from proxy.redis.connection import RedisConnection
from proxy.redis.health import Health

REMEMBER_SECONDS = 60.0
MAX_REMEMBERED = 10_000
REMEMBERED = (401, 403)
ALL_ENDPOINTS = "*"


def field_of(status: int, endpoint: str) -> str:
    return ALL_ENDPOINTS if status == 401 else endpoint


class SharedRefusals:
    """The refusals in Redis, for every replica: a key per credential scope and field, expiring on its own.
    A Redis failure is Redis health's to know and only means this replica remembers alone."""

    def __init__(self, conn: RedisConnection, prefix: str, timeout: float, health: Health) -> None:
        self._conn = conn
        self._prefix = prefix
        self._timeout = timeout
        self._health = health

    def _keys(self, scope: str, endpoint: str) -> list[str]:
        base = f"{self._prefix}{{refusal:{scope}}}"  # one hash tag: both fields in one slot
        return [f"{base}:{ALL_ENDPOINTS}", f"{base}:{endpoint}"]

    async def get(self, scope: str, endpoint: str, now: float) -> Entry | None:
        if not self._health.readable:
            return None
        try:
            async with self._conn.translated(self._timeout):
                found = await self._conn.client.mget(*self._keys(scope, endpoint))
        except StoreError as error:
            self._health.failed(error)
            return None
        for raw in found:
            entry = decode(raw) if isinstance(raw, bytes) else None
            if entry is not None and entry.is_usable(now):
                return entry
        return None

    async def put(self, scope: str, endpoint: str, name: str, kept: Entry) -> None:
        if not self._health.writable:
            return
        key = self._keys(scope, endpoint)[0 if name == ALL_ENDPOINTS else 1]
        try:
            async with self._conn.translated(self._timeout):
                await self._conn.client.set(key, encode(kept), px=int(REMEMBER_SECONDS * 1000))
        except StoreError as error:
            self._health.failed(error)


class Refusals:
    """The refusals this process remembers (bounded), and with Redis those of every replica."""

    def __init__(self, *, clock: Callable[[], float], shared: SharedRefusals | None = None) -> None:
        self._clock = clock
        self._shared = shared
        self._local: OrderedDict[tuple[str, str], Entry] = OrderedDict()

    async def get(self, scope: str, endpoint: str) -> Entry | None:
        """Braze's remembered refusal of this credential for this endpoint, if any."""
        now = self._clock()
        for name in (ALL_ENDPOINTS, endpoint):
            entry = self._local.get((scope, name))
            if entry is not None and entry.is_usable(now):
                return entry
        return None if self._shared is None else await self._shared.get(scope, endpoint, now)

    async def remember(self, scope: str, endpoint: str, entry: Entry) -> None:
        """Keep Braze's 401/403 answer to this credential for REMEMBER_SECONDS."""
        if entry.status not in REMEMBERED:
            return
        now = self._clock()
        kept = Entry(entry.body, entry.status, entry.content_type, now, now, now + REMEMBER_SECONDS)
        name = field_of(entry.status, endpoint)
        self._local[(scope, name)] = kept
        self._local.move_to_end((scope, name))
        while len(self._local) > MAX_REMEMBERED:
            self._local.popitem(last=False)
        if self._shared is not None:
            await self._shared.put(scope, endpoint, name, kept)
