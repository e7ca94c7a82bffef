"""The hot path end to end: a remembered request served from the L1, never past the entry's freshness, and
counted in /metrics although its counts are batched."""

from __future__ import annotations

import re
import time
import urllib.request

import pytest
import redis

from tests.conftest import ProxyFactory
from tests.procs import RedisServer, StandinProcess

PATH = "/sessions/data_series"
QUERY = "length=3&ending_at=2020-01-01T00:00:00Z"  # settled: the TTL is BRAZE_PROXY_TTL_SETTLED


def cache_status(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        return str(response.headers["Cache-Status"])


def scrape(url: str) -> str:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        return str(response.read().decode())


def sample(text: str, pattern: str) -> float:
    found = re.search(pattern + r" ([0-9.e+]+)$", text, re.MULTILINE)
    return float(found[1]) if found else 0.0


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_hits_stop_when_the_entry_stops_being_fresh(
    store: str, start_proxy: ProxyFactory, standin: StandinProcess, request: pytest.FixtureRequest
) -> None:
    settings = {"API_KEY": "k", "TTL_SETTLED": "3", "STALE_WHILE_REVALIDATE_SECONDS": "0"}
    if store == "redis":
        request.getfixturevalue("redis_client")  # flushed
        settings["REDIS_URL"] = request.getfixturevalue("redis_server").url
    proxy = start_proxy(**settings)
    url = f"{proxy.url}{PATH}?{QUERY}"
    asked = time.monotonic()
    assert "fwd=miss" in cache_status(url)
    hits = 0
    while time.monotonic() < asked + 1.0:  # the remembered request, answered from this process
        assert cache_status(url).startswith("braze-proxy; hit; ttl=")
        hits += 1
    time.sleep(max(0.0, asked + 3.5 - time.monotonic()))  # past fresh_until: neither the L1 nor the memo may answer
    assert "hit" not in cache_status(url).split(";")[1]
    assert standin.stats()["calls"] == 2
    text = scrape(proxy.url)
    assert sample(text, r'braze_proxy_requests_total\{cache="hit",code="200",endpoint="sessions"\}') == hits


def test_redis_hits_fill_the_l1(
    start_proxy: ProxyFactory, standin: StandinProcess, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    first = start_proxy(API_KEY="k", REDIS_URL=redis_server.url)
    second = start_proxy(API_KEY="k", REDIS_URL=redis_server.url)
    query = "length=4&ending_at=2020-02-01T00:00:00Z"
    assert "fwd=miss" in cache_status(f"{first.url}{PATH}?{query}")
    for _ in range(3):  # from Redis first, then from its own L1
        assert cache_status(f"{second.url}{PATH}?{query}").startswith("braze-proxy; hit;")
    assert standin.stats()["calls"] == 1
    text = scrape(second.url)
    assert sample(text, r'braze_proxy_cache_operations_total\{op="get",result="hit",store="redis"\}') == 1
    assert sample(text, r'braze_proxy_cache_operations_total\{op="get",result="hit",store="l1"\}') == 2
