"""How long after the entry exists a collapsed answer arrives on another replica. `python -m bench.collapse`.

Two proxies share one Redis; the stand-in takes `--latency` seconds per call. Each trial asks a new question of
replica A (it takes the fill lock and calls Braze) and, `--lag` seconds later, of replica B (it finds the lock and
waits for A's fill). The figure is B's answer time minus A's: what waiting across replicas adds to a collapsed
answer. It runs twice: waiters woken by pub/sub (the default) and waiters that only poll
(`BRAZE_PROXY_REDIS_FILL_WAKEUPS=false`, the behaviour before wake-ups). Every trial must cost one upstream call
and B's answer must say `collapsed`, or the run fails.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass

import aiohttp

from bench.servers import replicas
from tests.support.procs import RedisServer, StandinProcess

PATH = "/sessions/data_series"
API_KEY = "bench-key"


@dataclass(frozen=True)
class Trials:
    name: str
    added_ms: list[float]  # B's answer time minus A's, per trial
    calls: int  # upstream calls for all trials
    collapsed: int  # B answers whose Cache-Status said collapsed

    def line(self) -> str:
        added = sorted(self.added_ms)
        p95 = added[min(len(added) - 1, round(0.95 * (len(added) - 1)))]
        return (
            f"  {self.name}: added latency median {statistics.median(added):.1f} ms, p95 {p95:.1f} ms,"
            f" max {added[-1]:.1f} ms; {self.calls} upstream calls, {self.collapsed} collapsed, {len(added)} trials"
        )


async def timed(session: aiohttp.ClientSession, url: str, delay: float) -> tuple[float, str]:
    await asyncio.sleep(delay)
    async with session.get(url) as response:
        await response.read()
        assert response.status == 200, response.status
        return time.perf_counter(), response.headers.get("Cache-Status", "")


async def run_trials(bases: list[str], trials: int, lag: float, tag: str) -> tuple[list[float], int]:
    added: list[float] = []
    collapsed = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        for i in range(trials):
            query = f"length=7&ending_at=2022-0{1 + i % 9}-1{i % 10}&app_id=collapse-{tag}-{i}"
            (a_done, _), (b_done, b_status) = await asyncio.gather(
                timed(session, f"{bases[0]}{PATH}?{query}", 0.0),
                timed(session, f"{bases[1]}{PATH}?{query}", lag),
            )
            added.append((b_done - a_done) * 1000)
            collapsed += "collapsed" in b_status
    return added, collapsed


def measure(
    standin: StandinProcess, redis: RedisServer, wakeups: bool, trials: int, lag: float, latency: float
) -> Trials:
    with ExitStack() as stack:
        bases = replicas(
            stack,
            standin,
            redis,
            API_KEY,
            redis_fill_wakeups="true" if wakeups else "false",
            windows="false",  # one exact question per trial: no label probe, no widening
            access_log="false",
        )
        standin.reset()
        standin.config(latency=latency)
        tag = "pubsub" if wakeups else "polling"
        added, collapsed = asyncio.run(run_trials(bases, trials, lag, tag))
        calls = int(standin.stats()["calls"])
    return Trials("woken by pub/sub" if wakeups else "polling only (before)", added, calls, collapsed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.collapse", description=__doc__)
    parser.add_argument("--trials", type=int, default=40, help="questions per mode (1..500)")
    parser.add_argument("--latency", type=float, default=0.2, help="the stand-in's seconds per call")
    parser.add_argument("--lag", type=float, default=0.03, help="seconds between A's request and B's")
    args = parser.parse_args(argv)
    if not 1 <= args.trials <= 500 or not 0 < args.lag < args.latency <= 5:
        parser.error("--trials 1..500 and 0 < --lag < --latency <= 5")
    with ExitStack() as stack:
        redis = stack.enter_context(RedisServer())
        standin = stack.enter_context(StandinProcess())
        results = [measure(standin, redis, wakeups, args.trials, args.lag, args.latency) for wakeups in (False, True)]
    print(
        f"collapsed answers across 2 replicas (upstream latency {args.latency * 1000:.0f} ms,"
        f" B asks {args.lag * 1000:.0f} ms after A):"
    )
    for result in results:
        print(result.line())
    ok = all(r.calls == args.trials and r.collapsed == args.trials for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
