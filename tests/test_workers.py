"""`--workers N`: processes share the port, and /metrics adds up every worker's counts."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.conftest import ProxyFactory
from tests.procs import StandinProcess

PATH = "/sessions/data_series"
QUERY = "length=5&ending_at=2020-03-01T00:00:00Z"
REQUESTS = 40


def children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def get(url: str) -> str:
    """One request on its own connection (so the kernel picks a worker each time); the Cache-Status."""
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        return str(response.headers["Cache-Status"])


def counter(text: str, cache: str) -> float:
    pattern = rf'^braze_proxy_requests_total\{{cache="{cache}",code="200",endpoint="sessions"\}} ([0-9.e+]+)$'
    found = re.search(pattern, text, re.MULTILINE)
    return float(found[1]) if found else 0.0


def entries(text: str) -> float:
    found = re.search(r'^braze_proxy_cache_entries\{store="memory"\} ([0-9.e+]+)$', text, re.MULTILINE)
    return float(found[1]) if found else 0.0


def test_two_workers_serve_and_metrics_add_up(start_proxy: ProxyFactory, standin: StandinProcess) -> None:
    proxy = start_proxy(API_KEY="k", args=("--workers", "2"))  # memory store: each worker has its own
    deadline = time.monotonic() + 15
    while proxy.logs().count('"listening"') < 2 and time.monotonic() < deadline:  # both have bound the port
        time.sleep(0.05)
    workers = children(proxy.pid)
    assert len(workers) == 2
    assert proxy.logs().count('"listening"') == 2
    metrics_dir = Path(
        next(
            line.split("=", 1)[1]
            for line in Path(f"/proc/{workers[0]}/environ").read_bytes().decode().split("\0")
            if line.startswith("PROMETHEUS_MULTIPROC_DIR=")
        )
    )
    assert metrics_dir.is_dir()

    outcomes = [get(f"{proxy.url}{PATH}?{QUERY}") for _ in range(REQUESTS)]
    misses = sum("fwd=miss" in outcome for outcome in outcomes)
    # One miss per worker: both took connections (40 connections all landing on one is a 2**-39 chance).
    assert misses == 2
    assert standin.stats()["calls"] == 2

    # The worker that answers the scrape folds its own figures in at once, the other within a second.
    deadline = time.monotonic() + 10
    while True:
        with urllib.request.urlopen(f"{proxy.url}/metrics", timeout=10) as response:
            text = response.read().decode()
        done = counter(text, "miss") + counter(text, "hit") == REQUESTS and entries(text) == 2
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert counter(text, "miss") == 2
    assert counter(text, "hit") == REQUESTS - 2
    assert entries(text) == 2  # one in each worker's memory store, summed over the live workers
    assert re.search(r"^braze_proxy_build_info\{.*\} 1\.0$", text, re.MULTILINE)

    assert proxy.terminate() == 0
    assert not metrics_dir.exists()


def test_workers_without_redis_split_the_budget(start_proxy: ProxyFactory, standin: StandinProcess) -> None:
    """Each worker's in-process bucket holds its share: two workers together never spend more than the burst."""
    proxy = start_proxy(
        API_KEY="k", RATE_LIMIT_PER_HOUR=36, RATE_LIMIT_BURST=4, RATE_LIMIT_MAX_WAIT_SECONDS=0, args=("--workers", "2")
    )
    deadline = time.monotonic() + 15
    while proxy.logs().count('"listening"') < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    statuses: list[int] = []
    for day in range(1, 21):  # 20 distinct questions, each on its own connection: both workers take some
        url = f"{proxy.url}{PATH}?length=1&ending_at=2020-03-{day:02d}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                statuses.append(response.status)
        except urllib.error.HTTPError as error:
            statuses.append(error.code)
    # Burst 4 split in two: 2 per worker (each process's full burst would have allowed up to 8).
    assert standin.stats()["calls"] <= 4
    assert statuses.count(200) == standin.stats()["calls"]
    assert statuses.count(429) == 20 - statuses.count(200)
