"""Helpers for the fault, shutdown, security and soak tests: a client that records every outcome instead of
raising, bounded concurrent load, raw HTTP over a socket, Prometheus text parsing and /proc readings.

Everything talks to 127.0.0.1 only, and every loop is bounded in count and in time.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

HOST = "127.0.0.1"
PATH = "/sessions/data_series"
OLD_DAY = "2024-01-01"  # far in the past: a settled series (the longest TTL)


def data_query(length: int = 3, ending_at: str | None = OLD_DAY, unit: str = "day", **filters: str) -> str:
    """A valid query string for the proxied endpoint."""
    params: dict[str, str] = {"length": str(length), "unit": unit}
    if ending_at is not None:
        params["ending_at"] = ending_at
    params.update(filters)
    return urlencode(params)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass(frozen=True, slots=True)
class Outcome:
    """One request's end: an HTTP status, or the name of the exception that stood in for one."""

    status: int | None
    body: bytes
    headers: Mapping[str, str]
    seconds: float
    error: str | None = None

    @property
    def label(self) -> str:
        return str(self.status) if self.status is not None else str(self.error)

    @property
    def cache_status(self) -> str:
        return self.headers.get("Cache-Status", "")


async def get(
    session: aiohttp.ClientSession,
    url: str,
    headers: Mapping[str, str] | None = None,
    timeout: float = 15.0,
) -> Outcome:
    """GET `url`; network failures and timeouts come back as an Outcome with `error` set, never raised."""
    started = time.perf_counter()
    try:
        async with session.get(
            url, headers=dict(headers or {}), timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=False
        ) as response:
            body = await response.read()
            return Outcome(response.status, body, dict(response.headers), time.perf_counter() - started)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return Outcome(None, b"", {}, time.perf_counter() - started, type(exc).__name__)


@dataclass
class Tally:
    """Outcomes of a load run, counted by label, with their latencies."""

    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    cache: collections.Counter[str] = field(default_factory=collections.Counter)
    latencies: list[float] = field(default_factory=list)
    samples: dict[str, bytes] = field(default_factory=dict)  # the first body seen per label

    def add(self, outcome: Outcome) -> None:
        self.counts[outcome.label] += 1
        self.latencies.append(outcome.seconds)
        self.samples.setdefault(outcome.label, outcome.body[:300])
        word = outcome.cache_status.split(";")[1].strip() if ";" in outcome.cache_status else "-"
        self.cache[word] += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def failures(self, ok: frozenset[str] = frozenset({"200"})) -> int:
        return sum(n for label, n in self.counts.items() if label not in ok)

    def max_latency(self) -> float:
        return max(self.latencies, default=0.0)

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


Request = tuple[str, Mapping[str, str]]  # (url, headers)


async def run_load(
    make_request: Callable[[int], Request],
    *,
    workers: int,
    seconds: float,
    max_requests: int = 100_000,
    stop: asyncio.Event | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
    pause: float = 0.0,
    timeout: float = 15.0,
) -> Tally:
    """`workers` concurrent loops, each on its own keep-alive session, until `seconds` pass, `stop` is set
    or `max_requests` were sent. `make_request(i)` gives the i-th request."""
    tally = Tally()
    deadline = time.monotonic() + seconds
    issued = 0

    async def worker() -> None:
        nonlocal issued
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
            while time.monotonic() < deadline and issued < max_requests and not (stop and stop.is_set()):
                index = issued
                issued += 1
                url, headers = make_request(index)
                outcome = await get(session, url, headers, timeout)
                tally.add(outcome)
                if on_outcome is not None:
                    on_outcome(outcome)
                if pause:
                    await asyncio.sleep(pause)

    await asyncio.gather(*(worker() for _ in range(workers)))
    return tally


async def wait_for(check: Callable[[], Awaitable[bool]], timeout: float, interval: float = 0.05) -> bool:
    """Poll `check` until it is true (True) or `timeout` passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(interval)
    return await check()


# --- raw HTTP ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RawAnswer:
    status: int | None  # None: the connection closed without an answer
    headers: dict[str, str]
    body: bytes


def raw_request(port: int, data: bytes, timeout: float = 5.0) -> RawAnswer:
    """Send `data` as is on a fresh connection and read the whole answer (the request should close it)."""
    chunks: list[bytes] = []
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        with contextlib.suppress(OSError):  # the server may refuse before it read everything: read its answer
            sock.sendall(data)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return parse_raw(b"".join(chunks))


def parse_raw(raw: bytes) -> RawAnswer:
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return RawAnswer(None, {}, raw)
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawAnswer(status, headers, body)


def raw_get(port: int, target: str | bytes, headers: Mapping[str, str | bytes] | None = None) -> RawAnswer:
    """`GET <target> HTTP/1.1` with `headers` (Host added unless given), closing the connection."""
    lines = [b"GET " + (target.encode("latin-1") if isinstance(target, str) else target) + b" HTTP/1.1"]
    given = {name.lower() for name in headers or {}}
    if "host" not in given:
        lines.append(f"Host: {HOST}:{port}".encode())
    for name, value in (headers or {}).items():
        lines.append(name.encode("latin-1") + b": " + (value.encode("latin-1") if isinstance(value, str) else value))
    lines.append(b"Connection: close")
    return raw_request(port, b"\r\n".join(lines) + b"\r\n\r\n")


# --- Prometheus text --------------------------------------------------------------------------------------------


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of sample `name` whose labels include `labels`, summed over the rest; None if absent."""
    found = None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                found = (found or 0.0) + sample.value
    return found


async def scrape(session: aiohttp.ClientSession, base_url: str) -> str:
    async with session.get(f"{base_url}/metrics", timeout=aiohttp.ClientTimeout(total=5)) as response:
        assert response.status == 200
        return await response.text()


# --- /proc ------------------------------------------------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    """Resident set size of `pid`."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def tcp_connections(pid: int, remote_port: int) -> int:
    """Established TCP connections of `pid` to 127.0.0.1:`remote_port` (IPv4)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()  # by inode: the table is read in chunks while it changes, so a row may come twice
    with open("/proc/net/tcp") as table:
        next(table)
        for row in table:
            cols = row.split()
            remote, state, inode = cols[2], cols[3], cols[9]
            if state == "01" and inode in inodes and int(remote.split(":")[1], 16) == remote_port:
                found.add(inode)
    return len(found)
