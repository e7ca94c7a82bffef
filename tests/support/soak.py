"""Soak: mixed load and injected faults against real processes, reporting RSS growth and error counts.

    python -m tests.support.soak --seconds 300

starts its own redis-server, Braze stand-in and proxy on free loopback ports, sends a mix of repeated
questions (hits), new ones (misses, many distinct keys), a second credential and invalid queries, and cycles
through faults: a Redis restart, a 5xx burst, a hanging upstream, a 429 storm and a slow body. It prints one
summary and exits 1 if any request got an answer it should not have (see `classify`) or RSS kept growing.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import json
import random
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp

from tests.support.load import PATH, Outcome, bearer, data_query, get, open_fds, rss_bytes
from tests.support.procs import ProxyProcess, RedisServer, StandinProcess

MiB = 1024 * 1024
HOT = 50  # questions asked over and over
FAULT_ANSWERS = frozenset({429, 502, 504})  # what a client may see while the upstream misbehaves
INVALID = [
    "length=0",
    "length=abc",
    "unit=week&length=3",
    "length=3&bogus=1",
    "length=3&length=4",
    "ending_at=x&length=2",
]


@dataclass
class SoakReport:
    seconds: float
    requests: int = 0
    by_status: collections.Counter[str] = field(default_factory=collections.Counter)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)  # answers that should not be
    faults: collections.Counter[str] = field(default_factory=collections.Counter)
    rss_samples: list[tuple[float, int]] = field(default_factory=list)  # (seconds into the run, bytes)
    rss_start: int = 0  # after the warm-up
    rss_end: int = 0
    rss_max: int = 0
    fds_start: int = 0
    fds_end: int = 0

    @property
    def rss_growth(self) -> int:
        return self.rss_end - self.rss_start

    @property
    def rss_growth_last_half(self) -> int:
        """Growth over the second half of the samples: near zero once the caches are full."""
        if len(self.rss_samples) < 2:
            return 0
        middle = self.rss_samples[len(self.rss_samples) // 2][1]
        return self.rss_samples[-1][1] - middle

    def summary(self) -> str:
        return json.dumps(
            {
                "seconds": round(self.seconds, 1),
                "requests": self.requests,
                "by_status": dict(self.by_status),
                "errors": dict(self.errors),
                "faults_injected": dict(self.faults),
                "rss_mib": {
                    "after_warmup": round(self.rss_start / MiB, 1),
                    "end": round(self.rss_end / MiB, 1),
                    "max": round(self.rss_max / MiB, 1),
                    "growth": round(self.rss_growth / MiB, 1),
                    "growth_last_half": round(self.rss_growth_last_half / MiB, 1),
                    "samples": [f"{t:.0f}s:{b / MiB:.1f}" for t, b in self.rss_samples],
                },
                "open_fds": {"after_warmup": self.fds_start, "end": self.fds_end},
            },
            indent=2,
        )


def classify(kind: str, outcome: Outcome) -> str | None:
    """Why `outcome` is wrong for a request of `kind` (valid, invalid), or None if it is fine."""
    if outcome.status is None:
        return f"no answer ({outcome.error})"
    if kind == "invalid":
        return None if outcome.status == 400 else f"invalid query answered {outcome.status}"
    if outcome.status == 200 or outcome.status in FAULT_ANSWERS:
        return None
    return f"valid query answered {outcome.status}"


class Mix:
    """The i-th request of the soak: 60% hot questions, 30% new ones, 5% a second key, 5% invalid."""

    def __init__(self, base_url: str, seed: int = 7) -> None:
        self._base = base_url
        self._random = random.Random(seed)

    def __call__(self, i: int) -> tuple[str, dict[str, str], str]:
        """(url, headers, kind) where kind is "valid" or "invalid"."""
        roll = self._random.random()
        key = "soak-key-a"
        if roll < 0.60:
            query, kind = question(self._random.randrange(HOT)), "valid"
        elif roll < 0.90:
            query, kind = question(HOT + i), "valid"
        elif roll < 0.95:
            query, kind, key = question(self._random.randrange(HOT)), "valid", "soak-key-b"
        else:
            query, kind = self._random.choice(INVALID), "invalid"
        return f"{self._base}{PATH}?{query}", bearer(key), kind


def question(i: int) -> str:
    """The i-th distinct question: 100 lengths x 365 days x 2 units."""
    day = time.strftime("%Y-%m-%d", time.gmtime(1672531200 + 86400 * ((i // 100) % 365)))  # days of 2023
    return data_query(length=1 + i % 100, ending_at=day, unit="hour" if (i // 36500) % 2 else "day")


Fault = Callable[[], Awaitable[None]]


def faults(redis_server: RedisServer, standin: StandinProcess) -> list[tuple[str, Fault]]:
    async def redis_restart() -> None:
        await asyncio.to_thread(redis_server.stop)  # in a thread: the clients keep sending meanwhile
        await asyncio.sleep(1.0)
        await asyncio.to_thread(redis_server.start)

    async def upstream(seconds: float, **settings: object) -> None:
        standin.config(**settings)
        await asyncio.sleep(seconds)
        standin.config(mode="normal", fail_status=None, force_429_for=0)

    return [
        ("redis restart", redis_restart),
        ("upstream 5xx burst", lambda: upstream(1.0, fail_status=503, fail_count=-1)),
        ("upstream hang", lambda: upstream(1.5, mode="hang")),
        ("upstream 429 storm", lambda: upstream(1.0, force_429_for=1.0, retry_after=True)),
        ("upstream slow body", lambda: upstream(1.5, mode="slow_body", slow_seconds=3.0)),
    ]


async def soak(seconds: float, workers: int = 8, log: Callable[[str], None] = print) -> SoakReport:
    """Run the soak for `seconds` (at least 10) and return what it saw."""
    seconds = max(10.0, seconds)
    with RedisServer() as redis_server, StandinProcess() as standin:
        env = {
            "BRAZE_PROXY_UPSTREAM_URL": standin.url,
            "BRAZE_PROXY_REDIS_URL": redis_server.url,
            "BRAZE_PROXY_UPSTREAM_TIMEOUT": "1.0",
            "BRAZE_PROXY_MEMORY_MAX_ENTRIES": "2000",  # the L1 in front of Redis: full within the warm-up
            "BRAZE_PROXY_MEMORY_MAX_BYTES": str(8 * MiB),
            "BRAZE_PROXY_TTL_SETTLED": "5",  # entries go stale during the run, so stale answers are exercised
            "BRAZE_PROXY_RATE_LIMIT_BURST": "1000000",
            "BRAZE_PROXY_LOG_LEVEL": "WARNING",
        }
        with ProxyProcess(env) as proxy:
            return await _drive(proxy, redis_server, standin, seconds, workers, log)


async def _drive(
    proxy: ProxyProcess,
    redis_server: RedisServer,
    standin: StandinProcess,
    seconds: float,
    workers: int,
    log: Callable[[str], None],
) -> SoakReport:
    report = SoakReport(seconds)
    mix = Mix(proxy.url)
    numbers = itertools.count()
    stop = asyncio.Event()
    started = time.monotonic()

    async def client() -> None:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
            while not stop.is_set():
                url, headers, kind = mix(next(numbers))
                outcome = await get(session, url, headers, timeout=10)
                report.requests += 1
                report.by_status[outcome.label] += 1
                problem = classify(kind, outcome)
                if problem is not None:
                    report.errors[problem] += 1

    clients = [asyncio.create_task(client()) for _ in range(workers)]
    schedule = faults(redis_server, standin)
    await asyncio.sleep(min(5.0, seconds / 4))  # warm-up: the caches fill, the pools open
    report.rss_start = report.rss_max = rss_bytes(proxy.pid)
    report.rss_samples.append((time.monotonic() - started, report.rss_start))
    report.fds_start = open_fds(proxy.pid)
    for name, fault in itertools.cycle(schedule):
        left = seconds - (time.monotonic() - started)
        if left < 4.0:
            await asyncio.sleep(max(0.0, left))
            break
        report.faults[name] += 1
        await fault()
        await asyncio.sleep(2.0)  # recovery, under load
        rss = rss_bytes(proxy.pid)
        report.rss_samples.append((time.monotonic() - started, rss))
        report.rss_max = max(report.rss_max, rss)
    stop.set()
    await asyncio.gather(*clients)
    report.rss_end = rss_bytes(proxy.pid)
    report.rss_samples.append((time.monotonic() - started, report.rss_end))
    report.rss_max = max(report.rss_max, report.rss_end)
    report.fds_end = open_fds(proxy.pid)
    report.seconds = time.monotonic() - started
    log(report.summary())
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="how long to run (at least 10)")
    parser.add_argument("--workers", type=int, default=8, help="concurrent clients")
    parser.add_argument("--max-rss-growth-mib", type=float, default=20.0, help="fail past this RSS growth")
    args = parser.parse_args(argv)
    report = asyncio.run(soak(args.seconds, args.workers))
    ok = not report.errors and report.rss_growth <= args.max_rss_growth_mib * MiB
    print(f"soak: {'ok' if ok else 'FAILED'}: {report.requests} requests, {sum(report.errors.values())} errors, "
          f"RSS growth {report.rss_growth / MiB:.1f} MiB ({report.rss_growth_last_half / MiB:.1f} MiB in the "
          "second half)")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
