"""The dashboard workload: what windows from buckets save. `python -m bench.dashboard`.

20 series (apps, half of them with a segment) x windows of 7, 14, 30, 60, 90, 100 days and 24, 48, 72 hours,
ending now and on several past days, each seen by one to three viewers, in a shuffled order, sent one at a
time alternately to two replicas that share one Redis. The same requests go to two replicas caching exact
questions, and to nginx (proxy_cache keyed on the URI). The stand-in counts the upstream calls of each; the
lower bound is the number of 100-bucket fetches that cover every window (per series and unit, a greedy cover
of the buckets asked).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp

from bench.nginx import Nginx
from bench.servers import replicas
from tests.support.procs import RedisServer, StandinProcess, free_port

PATH = "/sessions/data_series"
API_KEY = "bench-key"
DAY_LENGTHS = (7, 14, 30, 60, 90, 100)
HOUR_LENGTHS = (24, 48, 72)
DAYS_BACK = (0, 1, 2, 7, 30)  # 0: no ending_at ("now")
WIDE = 100


@dataclass(frozen=True)
class Asked:
    series: str  # app and segment filters
    unit: str
    length: int
    back: int  # buckets before the current one where the window ends

    def query(self, now: datetime) -> str:
        q = f"length={self.length}&unit={self.unit}&{self.series}"
        if self.back:
            step = timedelta(days=1) if self.unit == "day" else timedelta(hours=1)
            q += f"&ending_at={(now - self.back * step):%Y-%m-%dT%H:%M:%SZ}"
        return q


def workload(series_count: int, seed: int = 11) -> list[Asked]:
    rng = random.Random(seed)
    asked: list[Asked] = []
    for i in range(series_count):
        series = f"app_id=dash-{i}" + (f"&segment_id=seg-{i}" if i % 2 else "")
        for back in DAYS_BACK:
            asked += [Asked(series, "day", n, back) for n in DAY_LENGTHS]
            asked += [Asked(series, "hour", n, back * 24 if back else 0) for n in HOUR_LENGTHS]
    asked = [a for a in asked for _ in range(rng.randint(1, 3))]  # a panel seen by one to three viewers
    rng.shuffle(asked)
    return asked


def lower_bound(asked: list[Asked]) -> int:
    """The fewest 100-bucket fetches covering every window asked (greedy interval cover per series and unit)."""
    spans: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for a in asked:
        spans[(a.series, a.unit)].append((a.back, a.back + a.length - 1))  # buckets back from now
    fetches = 0
    for intervals in spans.values():
        covered_to = -1
        for low, high in sorted(intervals):
            while covered_to < high:  # a fetch ending at the first bucket not yet covered covers 100 from there
                start = max(low, covered_to + 1)
                covered_to = start + WIDE - 1
                fetches += 1
    return fetches


async def send(bases: list[str], queries: list[str]) -> dict[int, int]:
    statuses: dict[int, int] = defaultdict(int)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for i, query in enumerate(queries):  # arrival order, one at a time, alternating replicas
            async with session.get(f"{bases[i % len(bases)]}{PATH}?{query}") as response:
                await response.read()
                statuses[response.status] += 1
    return dict(statuses)


def calls_through(
    standin: StandinProcess, bases: list[str], queries: list[str], zone: str = "UTC"
) -> tuple[int, dict[int, int]]:
    standin.reset()
    standin.config(zone=zone)  # the workspace's zone: Braze cuts its days there
    statuses = asyncio.run(send(bases, queries))
    return int(standin.stats()["calls"]), statuses


def proxies(stack: ExitStack, standin: StandinProcess, redis: RedisServer, windows: bool, zone: str) -> list[str]:
    """Two replicas, with windows from buckets or caching exact questions; a budget filling never waits for."""
    flag = "true" if windows else "false"
    return replicas(
        stack,
        standin,
        redis,
        API_KEY,
        windows=flag,
        reporting_timezone=zone,
        rate_limit_per_hour="1000000000",
        rate_limit_burst="1000000",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__)
    parser.add_argument("--series", type=int, default=20, help="distinct series (1..200)")
    parser.add_argument("--zone", default="UTC", help="the reporting zone of the proxies and of the stand-in")
    args = parser.parse_args(argv)
    if not 1 <= args.series <= 200:
        parser.error("--series 1..200")
    asked = workload(args.series)
    now = datetime.now(UTC)
    queries = [a.query(now) for a in asked]
    distinct = len(set(asked))
    with ExitStack() as stack:
        redis_a = stack.enter_context(RedisServer())
        redis_b = stack.enter_context(RedisServer())
        standin = stack.enter_context(StandinProcess())
        zone = args.zone
        windows_calls, w_status = calls_through(standin, proxies(stack, standin, redis_a, True, zone), queries, zone)
        exact_calls, e_status = calls_through(standin, proxies(stack, standin, redis_b, False, zone), queries, zone)
        nginx = stack.enter_context(Nginx(free_port(), standin.port, API_KEY, None))
        nginx_calls, n_status = calls_through(standin, [f"http://127.0.0.1:{nginx.port}"], queries)
    bound = lower_bound(asked)
    print(
        f"dashboard workload: {len(queries)} requests, {distinct} distinct questions over {args.series} series"
        f" (zone {args.zone})\n"
        f"  lower bound (100-bucket fetches covering every window): {bound}\n"
        f"  windows from buckets, 2 replicas: {windows_calls} upstream calls {w_status}"
        f" ({windows_calls / max(1, exact_calls):.2f} of exact caching)\n"
        f"  exact-question caching, 2 replicas: {exact_calls} upstream calls {e_status}\n"
        f"  nginx proxy_cache: {nginx_calls} upstream calls {n_status}"
    )
    ok = windows_calls <= 0.6 * exact_calls and all(set(s) == {200} for s in (w_status, e_status))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
