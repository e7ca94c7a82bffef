"""Alignment verdicts as values and in Redis: one hash per zone, credential scope and unit, a field per
checkpoint, each value carrying its own expiry (Redis hashes have no per-field expiry before 7.4)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from proxy.core.errors import StoreError
from proxy.redis.connection import RedisConnection
from proxy.redis.health import Health

HOLD_SECONDS = 3600.0  # how long a verdict (either way) stands before Braze is asked again


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether Braze has a bucket boundary at a checkpoint, until when that stands, and what was seen."""

    holds: bool
    until: float
    expected: str = ""
    got: str = ""

    def encode(self) -> bytes:
        return f"{int(self.holds)}|{self.until:.3f}|{self.expected}|{self.got}".encode()

    @staticmethod
    def decode(data: bytes | str | None) -> Verdict | None:
        if not data:
            return None
        text = data if isinstance(data, str) else data.decode(errors="replace")
        parts = text.split("|", 3)
        if len(parts) != 4 or parts[0] not in ("0", "1"):
            return None
        try:
            return Verdict(parts[0] == "1", float(parts[1]), parts[2], parts[3])
        except ValueError:
            return None


class SharedVerdicts:
    """The verdicts in Redis: one hash per zone, credential scope and unit, a field per checkpoint. A Redis failure
    is Redis health's to know (then nobody waits on it) and only means this replica checks for itself."""

    def __init__(self, conn: RedisConnection, prefix: str, timeout: float, health: Health) -> None:
        self._conn = conn
        self._prefix = prefix
        self._timeout = timeout
        self._health = health

    def _key(self, table: str) -> str:
        return f"{self._prefix}{{align2:{table}}}"

    async def read(self, table: str, names: Sequence[str]) -> list[Verdict | None]:
        if not self._health.readable:
            return [None] * len(names)
        try:
            async with self._conn.translated(self._timeout):
                values = await self._conn.client.hmget(self._key(table), list(names))
        except StoreError as error:
            self._health.failed(error)
            return [None] * len(names)
        return [Verdict.decode(v) for v in values]

    async def write(self, table: str, name: str, verdict: Verdict) -> None:
        if not self._health.writable:
            return
        try:
            async with self._conn.translated(self._timeout):
                key = self._key(table)
                await self._conn.client.hset(key, name, verdict.encode())
                await self._conn.client.pexpire(key, int(HOLD_SECONDS * 1000))
        except StoreError as error:
            self._health.failed(error)
