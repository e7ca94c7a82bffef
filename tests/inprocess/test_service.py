"""The request path in process: the real app and components, the stand-in in the same loop, a clock the test moves.

TTLs, stale-while-revalidate, stale-if-error, retries and the budget are checked without waiting for them.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.braze_standin import StandinServer
from tests.support.harness import InProcessProxy, ManualClock, proxy_in_process, standin_in_process
from tests.support.procs import RedisServer

OLD = "length=3&ending_at=2020-02-01T00:00:00Z"  # settled long ago: TTL_SETTLED applies
TTL = 60.0


@pytest.fixture
async def standin_server() -> AsyncIterator[StandinServer]:
    async with standin_in_process() as server:
        yield server


@pytest.fixture
async def proxy_app(standin_server: StandinServer) -> AsyncIterator[InProcessProxy]:
    async with proxy_in_process(
        standin_server.url, ttl_settled=TTL, stale_seconds=3600, stale_while_revalidate_seconds=0, upstream_retries=2
    ) as p:
        yield p


async def test_a_miss_is_stored_then_hits_count_down_their_ttl(
    proxy_app: InProcessProxy, standin_server: StandinServer
) -> None:
    first = await proxy_app.get(OLD)
    assert first.status == 200
    assert first.cache_status == "braze-proxy; fwd=miss; fwd-status=200; stored"
    assert "Age" not in first.headers
    proxy_app.clock.advance(20.4)
    second = await proxy_app.get(OLD)
    assert second.body == first.body
    assert second.cache_status == "braze-proxy; hit; ttl=39"
    assert second.headers["Age"] == "20"
    assert standin_server.state.calls == 1


async def test_past_its_ttl_an_entry_is_fetched_again(proxy_app: InProcessProxy, standin_server: StandinServer) -> None:
    await proxy_app.get(OLD)
    proxy_app.clock.advance(TTL - 0.5)
    assert (await proxy_app.get(OLD)).cache_status.startswith("braze-proxy; hit;")
    proxy_app.clock.advance(1.0)
    again = await proxy_app.get(OLD)
    assert again.cache_status == "braze-proxy; fwd=stale; fwd-status=200; stored"
    assert standin_server.state.calls == 2


async def test_stale_while_revalidate_answers_at_once_and_refreshes_once(standin_server: StandinServer) -> None:
    async with proxy_in_process(standin_server.url, ttl_settled=TTL, stale_while_revalidate_seconds=30) as proxy_app:
        await proxy_app.get(OLD)
        proxy_app.clock.advance(TTL + 5)
        stale = await asyncio.gather(*(proxy_app.get(OLD) for _ in range(5)))
        assert {r.status for r in stale} == {200}
        assert all("detail=stale-while-revalidate" in r.cache_status for r in stale), [r.cache_status for r in stale]
        assert all(r.cache_status.startswith("braze-proxy; fwd=stale; ttl=-5") for r in stale)
        await proxy_app.settle()
        assert standin_server.state.calls == 2  # one refresh for the five
        assert (await proxy_app.get(OLD)).cache_status.startswith("braze-proxy; hit; ttl=")
        assert await proxy_app.metric("braze_proxy_background_refreshes_total", result="ok") == 1
        assert await proxy_app.metric("braze_proxy_stale_served_total", reason="revalidate") == 5
        # Past the revalidation window the entry is no longer served at once: the client waits for Braze.
        proxy_app.clock.advance(TTL + 31)
        assert (await proxy_app.get(OLD)).cache_status == "braze-proxy; fwd=stale; fwd-status=200; stored"


@pytest.mark.parametrize(
    ("fault", "reason", "fwd_status"),
    [
        ({"fail_status": 500, "fail_count": -1}, "upstream_error", "fwd-status=500; "),
        ({"mode": "malformed"}, "upstream_error", "fwd-status=200; "),
        ({"force_429_for": 30}, "rate_limited", "fwd-status=429; "),
        ({"mode": "reset"}, "upstream_error", ""),
    ],
)
async def test_a_failed_refetch_is_answered_from_the_stale_entry(
    proxy_app: InProcessProxy, standin_server: StandinServer, fault: dict[str, object], reason: str, fwd_status: str
) -> None:
    first = await proxy_app.get(OLD)
    proxy_app.clock.advance(TTL + 10)
    assert standin_server.state.configure(fault, standin_server.state.reset_at - standin_server.state.reset_in) == []
    stale = await proxy_app.get(OLD)
    assert stale.status == 200 and stale.body == first.body
    assert stale.cache_status == f"braze-proxy; fwd=stale; {fwd_status}ttl=-10; detail=stale-if-error"
    assert stale.headers["Age"] == "70"
    assert await proxy_app.metric("braze_proxy_stale_served_total", reason=reason) == 1


async def test_without_a_stale_entry_a_failure_is_a_braze_style_error(
    proxy_app: InProcessProxy, standin_server: StandinServer
) -> None:
    standin_server.state.configure({"fail_status": 503, "fail_count": -1}, 0)
    reply = await proxy_app.get(OLD)
    assert reply.status == 502
    assert reply.json()["message"].startswith("Bad gateway")
    assert reply.cache_status == "braze-proxy; fwd=miss; fwd-status=503"
    assert standin_server.state.calls == 3  # the first attempt and two retries


async def test_retries_back_off_and_count(proxy_app: InProcessProxy, standin_server: StandinServer) -> None:
    standin_server.state.configure({"fail_status": 500, "fail_count": 2}, 0)
    reply = await proxy_app.get(OLD)
    assert reply.status == 200
    assert standin_server.state.calls == 3
    backoffs = proxy_app.clock.slept
    assert len(backoffs) == 2 and 0.05 <= backoffs[0] <= 0.1 and 0.1 <= backoffs[1] <= 0.2, backoffs
    assert await proxy_app.metric("braze_proxy_upstream_retries_total", braze_endpoint="sessions") == 2


async def test_retries_stop_at_the_retry_time_budget(standin_server: StandinServer) -> None:
    clock = ManualClock()
    async with proxy_in_process(
        standin_server.url, clock, upstream_retries=5, upstream_retry_budget_seconds=0.25
    ) as proxy_app:
        standin_server.state.configure({"fail_status": 500, "fail_count": -1}, 0)
        assert (await proxy_app.get(OLD)).status == 502
        assert sum(clock.slept) <= 0.25
        assert 2 <= standin_server.state.calls <= 3  # backoffs of 0.05-0.1 s, then 0.1-0.2 s: the budget ends it


async def test_an_unsuccessful_200_is_passed_on_and_never_stored(
    proxy_app: InProcessProxy, standin_server: StandinServer
) -> None:
    standin_server.state.configure({"mode": "not_success"}, 0)
    replies = [await proxy_app.get(OLD) for _ in range(2)]
    assert [r.status for r in replies] == [200, 200]
    assert replies[0].json()["message"].startswith("Internal processing error")
    assert all(r.cache_status == "braze-proxy; fwd=miss; fwd-status=200" for r in replies)
    assert standin_server.state.calls == 2


async def test_a_braze_429_blocks_calls_until_its_reset_and_says_it_is_braze(standin_server: StandinServer) -> None:
    async with proxy_in_process(standin_server.url) as proxy_app:
        standin_server.state.configure({"force_429_for": 30, "retry_after": True}, standin_server.state.reset_at - 3600)
        first = await proxy_app.get(OLD)
        assert first.status == 429
        assert first.cache_status == "braze-proxy; fwd=miss; fwd-status=429; detail=braze-rate-limited"
        assert "Braze API answered 429" in first.json()["message"]
        assert 1 <= int(first.headers["Retry-After"]) <= 31
        second = await proxy_app.get("length=4&ending_at=2020-02-01T00:00:00Z")
        assert second.status == 429 and standin_server.state.calls == 1  # blocked here: no call
        assert second.cache_status == "braze-proxy; fwd=miss; detail=braze-rate-limited"
        assert await proxy_app.metric("braze_proxy_rate_limit_rejections_total", reason="upstream_429") == 1


async def test_the_budget_refuses_with_retry_after_or_serves_stale(standin_server: StandinServer) -> None:
    async with proxy_in_process(
        standin_server.url,
        ttl_settled=TTL,
        stale_while_revalidate_seconds=0,
        rate_limit_per_hour=36,
        rate_limit_burst=2,
        rate_limit_max_wait_seconds=0,
    ) as proxy_app:
        await proxy_app.get(OLD)
        await proxy_app.get("length=5&ending_at=2020-02-01T00:00:00Z")
        refused = await proxy_app.get("length=6&ending_at=2020-02-01T00:00:00Z")
        assert refused.status == 429
        assert refused.cache_status == "braze-proxy; fwd=miss; detail=budget-spent"
        assert refused.json()["message"].startswith("Rate limit exceeded: the proxy's upstream budget")
        assert 1 <= int(refused.headers["Retry-After"]) <= 100  # one token per 100 s
        proxy_app.clock.advance(TTL + 1)
        stale = await proxy_app.get(OLD)
        assert stale.status == 200 and "detail=stale-if-error" in stale.cache_status
        assert standin_server.state.calls == 2
        assert await proxy_app.metric("braze_proxy_stale_served_total", reason="rate_limited") == 1


async def test_a_short_wait_for_a_token_is_waited_not_refused(standin_server: StandinServer) -> None:
    async with proxy_in_process(
        standin_server.url, rate_limit_per_hour=3600, rate_limit_burst=1, rate_limit_max_wait_seconds=5
    ) as proxy_app:
        assert (await proxy_app.get(OLD)).status == 200
        assert (await proxy_app.get("length=4&ending_at=2020-02-01T00:00:00Z")).status == 200
        assert proxy_app.clock.slept == [pytest.approx(1.0, abs=0.01)]
        assert await proxy_app.metric("braze_proxy_rate_limit_waits_total") == 1


async def test_concurrent_misses_in_one_process_make_one_call(
    proxy_app: InProcessProxy, standin_server: StandinServer
) -> None:
    standin_server.state.configure({"latency": 0.05}, 0)
    replies = await asyncio.gather(*(proxy_app.get(OLD) for _ in range(20)))
    assert standin_server.state.calls == 1
    statuses = sorted(r.cache_status for r in replies)
    assert statuses.count("braze-proxy; fwd=miss; fwd-status=200; stored") == 1
    assert statuses.count("braze-proxy; fwd=miss; fwd-status=200; collapsed") == 19
    assert await proxy_app.metric("braze_proxy_coalesced_requests_total", scope="process") == 19


# --- replicas sharing a real redis-server, in one process ---------------------------------------------------------


@pytest.fixture
async def replicas(
    standin_server: StandinServer, redis_server: RedisServer, redis_client: object
) -> AsyncIterator[Replicas]:
    clock = ManualClock()  # shared: waits for the other replica's fill are bounded on the loop's own clock
    async with (
        proxy_in_process(standin_server.url, clock, redis_url=redis_server.url, upstream_retries=0) as a,
        proxy_in_process(standin_server.url, clock, redis_url=redis_server.url, upstream_retries=0) as b,
    ):
        yield a, b


Replicas = tuple[InProcessProxy, InProcessProxy]


async def test_concurrent_misses_on_two_replicas_make_one_call(
    replicas: Replicas, standin_server: StandinServer
) -> None:
    standin_server.state.configure({"latency": 0.1}, 0)
    replies = await asyncio.gather(*(replicas[i % 2].get(OLD) for i in range(16)))
    assert {r.status for r in replies} == {200} and len({r.body for r in replies}) == 1
    assert standin_server.state.calls == 1
    collapsed = [r for r in replies if r.cache_status.endswith("collapsed")]
    assert len(collapsed) == 15
    assert sum([await p.metric("braze_proxy_coalesced_requests_total", scope="cluster") for p in replicas]) >= 1


@pytest.mark.parametrize(
    ("fault", "status", "key"),
    [({"fail_status": 500, "fail_count": -1}, 502, "key-a"), ({"rejected_keys": ["key-bad"]}, 401, "key-bad")],
)
async def test_how_a_fill_ended_reaches_the_other_replicas_waiters(
    replicas: Replicas, standin_server: StandinServer, fault: dict[str, object], status: int, key: str
) -> None:
    standin_server.state.configure({"latency": 0.1, **fault}, 0)
    replies = await asyncio.gather(*(replicas[i % 2].get(OLD, key=key) for i in range(8)))
    assert {r.status for r in replies} == {status}, [(r.status, r.body) for r in replies]
    assert len({r.body for r in replies}) == 1
    assert standin_server.state.calls == 1


async def test_replicas_share_entries_and_keep_them_in_their_l1(
    replicas: Replicas, standin_server: StandinServer
) -> None:
    a, b = replicas
    assert (await a.get(OLD)).cache_status.endswith("stored")
    assert (await b.get(OLD)).cache_status.startswith("braze-proxy; hit;")
    assert (await b.get(OLD)).cache_status.startswith("braze-proxy; hit;")
    assert standin_server.state.calls == 1
    assert await b.metric("braze_proxy_cache_operations_total", store="redis", op="get", result="hit") == 1
    assert await b.metric("braze_proxy_cache_operations_total", store="l1", op="get", result="hit") == 1


@pytest.fixture
async def trio(standin_server: StandinServer, redis_server: RedisServer, redis_client: object) -> AsyncIterator[Trio]:
    """Three replicas on one moved clock, sharing the redis-server: stale within the minute after TTL."""
    clock = ManualClock()
    # The trio's tests count calls across replicas: a Redis timeout of 5 s, so a starved CPU does not degrade one
    # replica to filling alone (the outage tests set their own).
    values = {"redis_url": redis_server.url, "ttl_settled": TTL, "stale_seconds": 3600, "redis_timeout": 5.0}
    async with (
        proxy_in_process(standin_server.url, clock, stale_while_revalidate_seconds=30, **values) as a,
        proxy_in_process(standin_server.url, clock, stale_while_revalidate_seconds=30, **values) as b,
        proxy_in_process(standin_server.url, clock, stale_while_revalidate_seconds=30, **values) as c,
    ):
        yield a, b, c


Trio = tuple[InProcessProxy, InProcessProxy, InProcessProxy]


async def test_stale_while_revalidate_refreshes_once_for_every_replica(
    trio: Trio, standin_server: StandinServer
) -> None:
    first = await trio[0].get(OLD)
    trio[0].clock.advance(TTL + 1)
    standin_server.state.configure({"latency": 0.2}, 0)
    stale = await asyncio.gather(*(trio[i % 3].get(OLD) for i in range(30)))
    assert all(r.status == 200 and r.body == first.body for r in stale)
    assert all("detail=stale-while-revalidate" in r.cache_status for r in stale)
    for _ in range(40):  # bounded: the refresh takes the stand-in's 0.2 s
        if standin_server.state.calls == 2 and all(p.components.service.tasks() == [] for p in trio):
            break
        await asyncio.sleep(0.05)
    assert standin_server.state.calls == 2, "one fill, one background refresh for all replicas"
    assert (await trio[2].get(OLD)).cache_status.startswith("braze-proxy; hit;")
    refreshed = [await p.metric("braze_proxy_background_refreshes_total", result="ok") for p in trio]
    failed = [await p.metric("braze_proxy_background_refreshes_total", result="error") for p in trio]
    assert 1 <= sum(refreshed) <= 3 and sum(failed) == 0


async def test_no_token_means_stale_data_where_it_exists_else_429(
    standin_server: StandinServer, redis_server: RedisServer, redis_client: object
) -> None:
    clock = ManualClock()
    values = {
        "redis_url": redis_server.url, "ttl_settled": 1, "stale_seconds": 60, "stale_while_revalidate_seconds": 0,
        "rate_limit_per_hour": 36, "rate_limit_burst": 1, "rate_limit_max_wait_seconds": 0,
    }  # fmt: skip
    async with (
        proxy_in_process(standin_server.url, clock, **values) as a,
        proxy_in_process(standin_server.url, clock, **values) as b,
    ):
        first = await a.get(OLD)  # spends the only token: the next one is 100 s away
        clock.advance(1.5)
        stale = await b.get(OLD)
        assert stale.status == 200 and stale.body == first.body
        assert "fwd=stale" in stale.cache_status and "detail=stale-if-error" in stale.cache_status
        refused = await b.get("length=9&ending_at=2020-02-01T00:00:00Z")
        assert refused.status == 429 and refused.json()["message"].startswith("Rate limit exceeded")
        assert 90 <= int(refused.headers["Retry-After"]) <= 101
        assert standin_server.state.calls == 1
        assert await b.metric("braze_proxy_stale_served_total", reason="rate_limited") == 1
        assert await b.metric("braze_proxy_rate_limit_rejections_total", reason="tokens") == 2


async def test_with_the_upstream_stopped_cached_keys_are_served_stale_and_others_fail_fast(
    redis_server: RedisServer, redis_client: object
) -> None:
    clock = ManualClock()
    values = {"redis_url": redis_server.url, "ttl_settled": 1, "stale_seconds": 60, "stale_while_revalidate_seconds": 0}
    async with standin_in_process() as upstream, proxy_in_process(upstream.url, clock, **values) as proxy_app:
        cached = [f"{OLD}&app_id=app-{i}" for i in range(5)]
        filled = [await proxy_app.get(q) for q in cached]
        clock.advance(1.5)
        await upstream.stop()
        stale = await asyncio.gather(*(proxy_app.get(q) for q in cached * 3))
        started = asyncio.get_running_loop().time()
        uncached = await asyncio.gather(*(proxy_app.get(f"{OLD}&app_id=new-{i}") for i in range(6)))
        elapsed = asyncio.get_running_loop().time() - started
        for reply, original in zip(stale, filled * 3, strict=True):
            assert reply.status == 200 and reply.body == original.body
            assert "fwd=stale" in reply.cache_status and "detail=stale-if-error" in reply.cache_status
            assert int(reply.headers["Age"]) >= 1
        assert all(r.status == 502 and r.json()["message"].startswith("Bad gateway") for r in uncached)
        assert elapsed < 2.0
        assert await proxy_app.metric("braze_proxy_stale_served_total", reason="upstream_error") == 15


async def test_failing_upstream_retries_pay_a_token_each(
    standin_server: StandinServer, redis_server: RedisServer, redis_client: Any
) -> None:
    values = {"redis_url": redis_server.url, "upstream_retries": 2, "rate_limit_per_hour": 36, "rate_limit_burst": 100}
    async with proxy_in_process(standin_server.url, **values) as proxy_app:
        standin_server.state.configure({"fail_status": 503, "fail_count": -1}, 0)
        failed = await proxy_app.get(OLD)
        assert failed.status == 502 and "fwd-status=503" in failed.cache_status
        assert standin_server.state.calls == 3, "one call and two retries"
        standin_server.state.configure({"fail_status": 500, "fail_count": 1}, 0)  # one failure, then it recovers
        assert (await proxy_app.get("length=4&ending_at=2020-02-01T00:00:00Z")).status == 200
        assert standin_server.state.calls == 5
        # Every attempt paid its token: 3 + 2 from a bucket of 100 refilling at 0.01/s.
        tokens = redis_client.hget("braze-proxy:{budget:default:default}", "tokens")
        assert float(tokens or 0) == pytest.approx(100 - 5, abs=0.2)
        assert await proxy_app.metric("braze_proxy_upstream_retries_total") == 2 + 1


async def test_a_hanging_upstream_times_out_and_cached_keys_are_served_stale(
    standin_server: StandinServer, redis_server: RedisServer, redis_client: object
) -> None:
    clock = ManualClock()
    values = {"redis_url": redis_server.url, "upstream_timeout": 0.5, "upstream_retries": 0, "ttl_settled": 1,
              "stale_seconds": 60, "stale_while_revalidate_seconds": 0}  # fmt: skip
    async with proxy_in_process(standin_server.url, clock, **values) as proxy_app:
        cached = await proxy_app.get(OLD)
        clock.advance(1.5)
        standin_server.state.configure({"mode": "hang"}, 0)
        stale, timed_out = await asyncio.gather(
            proxy_app.get(OLD), proxy_app.get("length=9&ending_at=2020-02-01T00:00:00Z")
        )
        standin_server.state.release_waiters()
        assert stale.status == 200 and stale.body == cached.body and "fwd=stale" in stale.cache_status
        assert timed_out.status == 504 and "detail=timeout" in timed_out.cache_status
        assert await proxy_app.metric("braze_proxy_stale_served_total", reason="timeout") == 1


# --- workspaces and teams ----------------------------------------------------------------------------------------


async def test_each_workspace_spends_its_own_budget(standin_server: StandinServer) -> None:
    eu = hashlib.sha256(b"eu-key").hexdigest()
    values = {"rate_limit_per_hour": 36, "rate_limit_burst": 1, "rate_limit_max_wait_seconds": 0}
    async with proxy_in_process(standin_server.url, workspaces={"eu": {"key_sha256": [eu]}}, **values) as proxy_app:
        assert (await proxy_app.get(OLD, key="eu-key")).status == 200
        assert (await proxy_app.get("length=4&ending_at=2020-02-01", key="eu-key")).status == 429
        assert (await proxy_app.get("length=5&ending_at=2020-02-01", key="us-key")).status == 200, "another budget"
        assert (await proxy_app.get("length=6&ending_at=2020-02-01", key="other-key")).status == 429, "the same one"
        assert await proxy_app.metric("braze_proxy_budget_calls_per_second", workspace="eu", group="default") == 0.01


async def test_team_metrics_count_requests_hits_calls_and_refusals(standin_server: StandinServer) -> None:
    tokens = "alpha:tok-a-0123456789,beta:tok-b-0123456789:2"
    values = {"rate_limit_per_hour": 36, "rate_limit_burst": 2, "rate_limit_max_wait_seconds": 0}
    async with proxy_in_process(standin_server.url, api_key="managed", client_tokens=tokens, **values) as proxy_app:
        assert await proxy_app.metric("braze_proxy_team_refusals_total", team="beta") == 0  # there before any event
        await proxy_app.get(OLD, key="tok-a-0123456789")
        await proxy_app.get(OLD, key="tok-a-0123456789")
        await proxy_app.get(OLD, key="tok-b-0123456789")
        await proxy_app.get("length=4&ending_at=2020-02-01", key="tok-b-0123456789")
        refused = await proxy_app.get("length=5&ending_at=2020-02-01", key="tok-a-0123456789")
        assert refused.status == 429
        counts = {
            name: [await proxy_app.metric(f"braze_proxy_team_{name}_total", team=t) for t in ("alpha", "beta")]
            for name in ("requests", "hits", "upstream_calls", "refusals")
        }
    assert counts == {"requests": [3, 2], "hits": [1, 1], "upstream_calls": [1, 1], "refusals": [1, 0]}


async def test_a_rejected_key_is_remembered_not_asked_again(standin_server: StandinServer) -> None:
    standin_server.state.configure({"rejected_keys": ["bad-key"]}, 0)
    async with proxy_in_process(standin_server.url) as proxy_app:
        replies = [await proxy_app.get(f"length={n}&ending_at=2020-02-01", key="bad-key") for n in range(1, 6)]
        assert {r.status for r in replies} == {401} and len({r.body for r in replies}) == 1
        assert standin_server.state.calls == 1
        assert await proxy_app.metric("braze_proxy_remembered_refusals_total") == 4
        proxy_app.clock.advance(61)
        await proxy_app.get("length=9&ending_at=2020-02-01", key="bad-key")
        assert standin_server.state.calls == 2, "asked again after a minute"
