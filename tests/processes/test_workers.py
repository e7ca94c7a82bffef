"""`--workers N`: processes share the port, and /metrics adds up every worker's counts."""

from __future__ import annotations

import itertools
import os
import resource
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.load import metric, rss_bytes
from tests.support.procs import ProxyFactory, StandinProcess

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
    return metric(text, "braze_proxy_requests_total", braze_endpoint="sessions", cache=cache, code="200") or 0.0


def entries(text: str) -> float:
    return metric(text, "braze_proxy_cache_entries", store="memory") or 0.0


def test_two_workers_serve_and_metrics_add_up(start_proxy: ProxyFactory, standin_proc: StandinProcess) -> None:
    proxy = start_proxy(
        API_KEY="k", ALLOW_ANONYMOUS="true", args=("--workers", "2")
    )  # memory store: each worker has its own
    deadline = time.monotonic() + 15
    while proxy.logs().count('"proxy ready"') < 2 and time.monotonic() < deadline:  # both have bound the port
        time.sleep(0.05)
    workers = children(proxy.pid)
    assert len(workers) == 2
    assert proxy.logs().count('"proxy ready"') == 2
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
    assert standin_proc.stats()["calls"] == 2

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
    assert metric(text, "braze_proxy_build_info") == 1

    assert proxy.terminate() == 0
    assert not metrics_dir.exists()


def test_workers_without_redis_split_the_budget(start_proxy: ProxyFactory, standin_proc: StandinProcess) -> None:
    """Each worker's in-process bucket holds its share: two workers together never spend more than the burst."""
    proxy = start_proxy(
        API_KEY="k",
        ALLOW_ANONYMOUS="true",
        RATE_LIMIT_PER_HOUR=36,
        RATE_LIMIT_BURST=4,
        RATE_LIMIT_MAX_WAIT_SECONDS=0,
        args=("--workers", "2"),
    )
    deadline = time.monotonic() + 15
    while proxy.logs().count('"proxy ready"') < 2 and time.monotonic() < deadline:
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
    assert 2 <= standin_proc.stats()["calls"] <= 4  # each worker spent what it had (a fill refused outright is 0)
    assert statuses.count(200) == standin_proc.stats()["calls"]
    assert statuses.count(429) == 20 - statuses.count(200)


def test_budget_and_team_metrics_are_whole_under_two_workers(
    start_proxy: ProxyFactory, standin_proc: StandinProcess
) -> None:
    """Issue 24 (and 23): gauges of configuration are the configured values, not one per worker added up; the
    upstream calls of both workers add up by workspace and group to what the stand-in saw."""
    proxy = start_proxy(
        API_KEY="k-managed-0123456789",
        CLIENT_TOKENS="alpha:tok-alpha-0123456789:3,beta:tok-beta-0123456789",
        RATE_LIMIT_PER_HOUR=7200,
        args=("--workers", "2"),
    )
    deadline = time.monotonic() + 15
    while proxy.logs().count('"proxy ready"') < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    for day in range(1, 9):  # each on its own connection: both workers take some
        request = urllib.request.Request(
            f"{proxy.url}{PATH}?length=1&ending_at=2020-03-{day:02d}",
            headers={"Authorization": "Bearer tok-alpha-0123456789"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
    with urllib.request.urlopen(f"{proxy.url}/metrics", timeout=10) as response:
        text = response.read().decode()
    calls = standin_proc.stats()["calls"]
    labels = {"braze_endpoint": "sessions", "workspace": "default", "group": "default", "code": "200"}
    assert metric(text, "braze_proxy_upstream_requests_total", **labels) == calls == 8
    assert metric(text, "braze_proxy_budget_calls_per_second", workspace="default", group="default") == 2.0
    assert metric(text, "braze_proxy_team_weight", team="alpha") == 3.0
    assert metric(text, "braze_proxy_team_weight", team="beta") == 1.0
    assert metric(text, "braze_proxy_team_upstream_calls_total", team="alpha") == 8
    assert metric(text, "braze_proxy_managed_key_refusals_total", workspace="default") == 0


def samples(text: str, name: str) -> dict[str, float]:
    """pid -> value of the `name` samples in `text`."""
    return {
        sample.labels["pid"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def generations(text: str, name: str) -> dict[str, float]:
    """generation -> value of the `name` samples in `text`."""
    return {
        sample.labels["generation"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def test_process_metrics_cover_every_process_under_two_workers(
    start_proxy: ProxyFactory, standin_proc: StandinProcess
) -> None:
    """process_* by pid for the supervisor and each worker, whichever worker answers; python_info once; GC summed."""
    proxy = start_proxy(API_KEY="k", ALLOW_ANONYMOUS="true", args=("--workers", "2"))
    deadline = time.monotonic() + 15
    while proxy.logs().count('"proxy ready"') < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = children(proxy.pid)
    assert len(workers) == 2
    expected = {str(pid) for pid in [proxy.pid, *workers]}
    texts = []
    for _ in range(6):  # on their own connections: both workers answer some (all six on one: 1 in 32)
        with urllib.request.urlopen(f"{proxy.url}/metrics", timeout=10) as response:
            texts.append(response.read().decode())
    for text in texts:
        for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes",
                     "process_start_time_seconds", "process_open_fds", "process_max_fds"):  # fmt: skip
            assert set(samples(text, name)) == expected, name
        assert metric(text, "python_info") == 1
    # GC counts are every worker's added up: they never go back, whichever worker answers.
    gc_collections = [generations(text, "python_gc_collections_total") for text in texts]
    assert all(set(counts) == {"0", "1", "2"} for counts in gc_collections)
    assert gc_collections[0]["0"] > 0
    for earlier, later in itertools.pairwise(gc_collections):
        assert all(later[g] >= earlier[g] for g in earlier), (earlier, later)
    # The figures are each process's own, as the kernel reports them now.
    text = texts[-1]
    for pid in expected:
        assert samples(text, "process_resident_memory_bytes")[pid] == pytest.approx(rss_bytes(int(pid)), rel=0.25)
        started = samples(text, "process_start_time_seconds")[pid]
        assert time.time() - 120 < started <= time.time()
        open_fds = len(os.listdir(f"/proc/{pid}/fd"))
        assert abs(samples(text, "process_open_fds")[pid] - open_fds) <= 4
        assert samples(text, "process_max_fds")[pid] == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    # Workers have done more than the idle supervisor, which has only started them and waits.
    cpu = samples(text, "process_cpu_seconds_total")
    assert all(cpu[str(pid)] > 0 for pid in workers)
    assert proxy.terminate() == 0
