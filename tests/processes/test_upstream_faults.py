"""Upstream faults, injected for real in the stand-in process: every one ends in a bounded-time answer
(stale where an entry allows, else 502/504/429 with a Braze-style JSON body), nothing malformed is stored,
and stand-in call counts show there is no retry storm.

One proxy serves the module; each test uses its own credential, hence its own cache entries. Braze's 429
blocks a whole workspace, so the 429 tests use keys mapped to workspaces of their own. Windows are off: the
calls counted here are the exact path's (tests/inprocess/test_windows.py covers faults on the windows path).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import time
from collections.abc import Iterator

import aiohttp
import pytest

from tests.support.load import PATH, Outcome, bearer, data_query, get, metric, scrape
from tests.support.procs import ProxyProcess, StandinProcess

UPSTREAM_TIMEOUT = 1.0
TTL = 0.5  # a settled series is fresh this long, then only stale (kept an hour for stale-if-error)
RETRIES = 2
_keys = itertools.count()
STORM_KEY, STALE_KEY = "faults-429-storm", "faults-429-stale"  # each the one key of a workspace of its own


@pytest.fixture(scope="module")
def proxy_proc(standin_process: StandinProcess) -> Iterator[ProxyProcess]:
    env = {
        "BRAZE_PROXY_UPSTREAM_URL": standin_process.url,
        "BRAZE_PROXY_UPSTREAM_TIMEOUT": str(UPSTREAM_TIMEOUT),
        "BRAZE_PROXY_UPSTREAM_RETRIES": str(RETRIES),
        "BRAZE_PROXY_TTL_SETTLED": str(TTL),
        "BRAZE_PROXY_STALE_SECONDS": "3600",
        "BRAZE_PROXY_STALE_WHILE_REVALIDATE_SECONDS": "0",  # past freshness, always ask upstream first
        "BRAZE_PROXY_WINDOWS": "false",
        # The module counts every call the stand-in sees; an earlier test's entry refreshed ahead would be one.
        "BRAZE_PROXY_REFRESH_AHEAD": "false",
        "BRAZE_PROXY_WORKSPACES": json.dumps(
            {
                name: {"key_sha256": [hashlib.sha256(key.encode()).hexdigest()]}
                for name, key in (("storm", STORM_KEY), ("stale", STALE_KEY))
            }
        ),
    }
    with ProxyProcess(env) as process:
        yield process


@pytest.fixture
def key() -> str:
    """A credential of this test's own: its own cache entries and its own budget."""
    return f"faults-{next(_keys)}"


async def ask(proxy_proc: ProxyProcess, key: str, query: str | None = None) -> Outcome:
    async with aiohttp.ClientSession() as session:
        return await get(session, f"{proxy_proc.url}{PATH}?{query or data_query()}", bearer(key), timeout=30)


async def ask_many(proxy_proc: ProxyProcess, key: str, queries: list[str]) -> list[Outcome]:
    async with aiohttp.ClientSession() as session:
        return list(
            await asyncio.gather(*(get(session, f"{proxy_proc.url}{PATH}?{q}", bearer(key), 30) for q in queries))
        )


def calls(standin_proc: StandinProcess) -> int:
    return int(standin_proc.stats()["calls"])


def assert_error(outcome: Outcome, status: int, message_start: str) -> None:
    assert outcome.status == status, outcome
    assert outcome.headers["Content-Type"].startswith("application/json")
    body = json.loads(outcome.body)
    assert body["message"].startswith(message_start), body
    assert b"Traceback" not in outcome.body


async def prime_then_expire(proxy_proc: ProxyProcess, standin_proc: StandinProcess, key: str) -> Outcome:
    """Store an entry, then wait until it is no longer fresh (still kept to be served stale)."""
    first = await ask(proxy_proc, key)
    assert first.status == 200 and "stored" in first.cache_status, first
    await asyncio.sleep(TTL + 0.1)
    return first


def assert_stale(outcome: Outcome, first: Outcome, seconds: float) -> None:
    assert outcome.status == 200, outcome
    assert outcome.body == first.body
    assert "fwd=stale" in outcome.cache_status and "detail=stale-if-error" in outcome.cache_status, outcome
    assert outcome.seconds < seconds, outcome.seconds


async def test_hanging_upstream_is_a_bounded_504(
    proxy_proc: ProxyProcess, standin_proc: StandinProcess, key: str
) -> None:
    standin_proc.config(mode="hang")
    outcome = await ask(proxy_proc, key)
    assert_error(outcome, 504, "Gateway timeout")
    assert outcome.seconds < UPSTREAM_TIMEOUT + 0.8
    assert "detail=timeout" in outcome.cache_status
    assert calls(standin_proc) == 1  # a timeout is not retried: the upstream is already slow


async def test_hanging_upstream_serves_stale(proxy_proc: ProxyProcess, standin_proc: StandinProcess, key: str) -> None:
    first = await prime_then_expire(proxy_proc, standin_proc, key)
    standin_proc.config(mode="hang")
    assert_stale(await ask(proxy_proc, key), first, UPSTREAM_TIMEOUT + 0.8)
    async with aiohttp.ClientSession() as session:
        text = await scrape(session, proxy_proc.url)
    assert (metric(text, "braze_proxy_stale_served_total", reason="timeout") or 0) >= 1
    assert (metric(text, "braze_proxy_upstream_requests_total", code="timeout") or 0) >= 1


async def test_connection_reset_is_a_502_after_bounded_retries(
    proxy_proc: ProxyProcess, standin_proc: StandinProcess, key: str
) -> None:
    standin_proc.config(mode="reset")
    outcome = await ask(proxy_proc, key)
    assert_error(outcome, 502, "Bad gateway")
    assert outcome.seconds < 2.0
    # Our attempts are 1 + RETRIES; aiohttp's client resends an idempotent request once when the server
    # closes the connection without answering (RFC 9112 §9.3.1), so Braze may see each attempt twice.
    assert 1 + RETRIES <= calls(standin_proc) <= 2 * (1 + RETRIES)


async def test_slow_body_past_the_timeout_is_a_504(
    proxy_proc: ProxyProcess, standin_proc: StandinProcess, key: str
) -> None:
    standin_proc.config(mode="slow_body", slow_seconds=10.0)
    outcome = await ask(proxy_proc, key)
    assert_error(outcome, 504, "Gateway timeout")
    assert outcome.seconds < UPSTREAM_TIMEOUT + 0.8


async def test_slow_body_within_the_timeout_is_served(
    proxy_proc: ProxyProcess, standin_proc: StandinProcess, key: str
) -> None:
    standin_proc.config(mode="slow_body", slow_seconds=0.4)
    outcome = await ask(proxy_proc, key)
    assert outcome.status == 200 and json.loads(outcome.body)["message"] == "success"
    assert "stored" in outcome.cache_status


async def test_malformed_json_is_a_502_and_never_stored(
    proxy_proc: ProxyProcess, standin_proc: StandinProcess, key: str
) -> None:
    standin_proc.config(mode="malformed")
    for _ in range(2):
        assert_error(await ask(proxy_proc, key), 502, "Bad gateway: the Braze API sent a malformed answer")
    assert calls(standin_proc) == 2  # asked again each time: nothing was stored
    standin_proc.config(mode="normal")
    fresh = await ask(proxy_proc, key)
    assert fresh.status == 200 and "fwd=miss" in fresh.cache_status
    assert "hit" in (await ask(proxy_proc, key)).cache_status


async def test_unsuccessful_200_is_passed_on_and_never_stored(
    proxy_proc: ProxyProcess, standin_proc: StandinProcess, key: str
) -> None:
    standin_proc.config(mode="not_success")
    answers = [await ask(proxy_proc, key) for _ in range(2)]
    for outcome in answers:
        assert outcome.status == 200
        assert json.loads(outcome.body)["message"].startswith("Internal processing error")
        assert "stored" not in outcome.cache_status
    assert calls(standin_proc) == 2


async def test_oversized_body_is_a_502_without_retries(
    proxy_proc: ProxyProcess, standin_proc: StandinProcess, key: str
) -> None:
    standin_proc.config(mode="huge", huge_bytes=3 * 1024 * 1024)  # the proxy's cap is 1 MiB
    outcome = await ask(proxy_proc, key)
    assert_error(outcome, 502, "Bad gateway: the Braze API answer is too large")
    assert calls(standin_proc) == 1  # the same question would get the same oversized answer


async def test_5xx_burst_is_absorbed_by_retries(
    proxy_proc: ProxyProcess, standin_proc: StandinProcess, key: str
) -> None:
    standin_proc.config(fail_status=500, fail_count=RETRIES)
    outcome = await ask(proxy_proc, key)
    assert outcome.status == 200 and "stored" in outcome.cache_status
    assert calls(standin_proc) == 1 + RETRIES


async def test_persistent_5xx_costs_one_bounded_fill_per_question(
    proxy_proc: ProxyProcess, standin_proc: StandinProcess, key: str
) -> None:
    standin_proc.config(fail_status=503, fail_count=-1)
    started = time.perf_counter()
    answers = await ask_many(proxy_proc, key, [data_query(length=7)] * 20)  # 20 clients, one question
    for outcome in answers:
        assert_error(outcome, 502, "Bad gateway")
        assert "fwd-status=503" in outcome.cache_status
    assert time.perf_counter() - started < 2.5
    assert calls(standin_proc) == 1 + RETRIES  # one fill for all 20, retried within its bounds


async def test_persistent_5xx_serves_stale(proxy_proc: ProxyProcess, standin_proc: StandinProcess, key: str) -> None:
    first = await prime_then_expire(proxy_proc, standin_proc, key)
    standin_proc.config(fail_status=503, fail_count=-1)
    stale = await ask(proxy_proc, key)
    assert_stale(stale, first, 2.5)
    assert "fwd-status=503" in stale.cache_status


async def test_429_storm_makes_no_retry_storm(proxy_proc: ProxyProcess, standin_proc: StandinProcess) -> None:
    key = STORM_KEY
    standin_proc.config(force_429_for=60, retry_after=True)
    waves: list[list[Outcome]] = []
    calls_per_wave = []
    for wave in range(5):  # 5 waves of 10 clients, each asking a question of its own
        before = calls(standin_proc)
        waves.append(await ask_many(proxy_proc, key, [data_query(length=1 + wave * 10 + i) for i in range(10)]))
        calls_per_wave.append(calls(standin_proc) - before)
    for outcome in itertools.chain.from_iterable(waves):
        assert_error(outcome, 429, "Rate limit exceeded")
        assert int(outcome.headers["Retry-After"]) >= 1
    # The first wave's calls were already on their way; after Braze's 429 the proxy stops calling it.
    assert calls_per_wave[0] <= 10
    assert calls_per_wave[1:] == [0, 0, 0, 0], calls_per_wave


async def test_429_serves_stale(proxy_proc: ProxyProcess, standin_proc: StandinProcess) -> None:
    key = STALE_KEY
    first = await prime_then_expire(proxy_proc, standin_proc, key)
    standin_proc.config(force_429_for=60, retry_after=True)
    assert_stale(await ask(proxy_proc, key), first, 1.0)
    assert_stale(await ask(proxy_proc, key), first, 1.0)  # served stale again, without asking Braze again
    assert calls(standin_proc) == 2  # the priming call and one 429
