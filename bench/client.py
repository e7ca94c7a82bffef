"""A small concurrent HTTP client for the bench's set-up phases (filling caches, the spellings workload)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence

import aiohttp


async def _get_all(base: str, queries: Sequence[str], concurrency: int) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    pending = iter(queries)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def worker() -> None:
            for query in pending:  # a shared iterator: each query is sent once, by whichever worker is free
                async with session.get(f"{base}?{query}") as response:
                    await response.read()
                    outcomes[f"{response.status} {outcome(response.headers.get('Cache-Status', ''))}"] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcomes


def outcome(cache_status: str) -> str:
    """hit, collapsed (answered by another request's upstream call), miss, stale or '-' from a Cache-Status."""
    params = [part.strip() for part in cache_status.split(";")[1:]]
    for name in ("hit", "collapsed"):
        if name in params:
            return name
    if "fwd=miss" in params:
        return "miss"
    return "stale" if "fwd=stale" in params else "-"


def get_all(base: str, queries: Sequence[str], concurrency: int = 32) -> Counter[str]:
    """GET `base?query` for every query, `concurrency` at a time; counts of '<status> <cache outcome>'."""
    return asyncio.run(_get_all(base, queries, concurrency))
