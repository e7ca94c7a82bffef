"""One workspace budget, shared by every key and fairly divided between teams: real proxy processes (3 replicas
sharing a real redis-server) and the stand-in. Each scenario prints its measured shares."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
import pytest

from tests.support.load import Outcome, Tally, bearer, get, metric, run_load, scrape
from tests.support.procs import ProxyFactory, ProxyProcess, RedisServer, StandinProcess

PATH = "/sessions/data_series"
PER_SECOND = 10.0  # the budget of every scenario
BURST = 10
FLOOD_PAUSE = 0.02
_questions = itertools.count()

pytestmark = pytest.mark.timeout(120)


def question() -> str:
    """A distinct settled question: always a miss."""
    return f"length=2&ending_at=2020-01-01&app_id=q{next(_questions)}"


def start_replicas(start_proxy: ProxyFactory, redis_url: str, count: int = 3, **settings: Any) -> list[ProxyProcess]:
    env = {
        "REDIS_URL": redis_url,
        "RATE_LIMIT_PER_HOUR": PER_SECOND * 3600,
        "RATE_LIMIT_BURST": BURST,
        "RATE_LIMIT_MAX_WAIT_SECONDS": 0.5,
        "LOG_LEVEL": "WARNING",
        **settings,
    }
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: start_proxy(**env), range(count)))


async def team(
    replicas: list[ProxyProcess], token: str, seconds: float, *, flood: bool, answered: list[float] | None = None
) -> Tally:
    """A team's load over the replicas: a flood (4 loops, each request 20 ms after the last answer: up to 200 a
    second, 20 times the whole budget; unpaced, the loops only burned the CPU the replicas answer with) or polite
    (one request every 0.5 s)."""
    turn = itertools.count()

    def make(_: int) -> tuple[str, dict[str, str]]:
        return f"{replicas[next(turn) % len(replicas)].url}{PATH}?{question()}", bearer(token)

    def seen(outcome: Outcome) -> None:
        if answered is not None and outcome.status == 200:
            answered.append(time.monotonic())

    if flood:
        return await run_load(make, workers=4, seconds=seconds, max_requests=20_000, on_outcome=seen, pause=FLOOD_PAUSE)
    return await run_load(make, workers=1, seconds=seconds, max_requests=100, pause=0.5, on_outcome=seen)


def report(capsys: pytest.CaptureFixture[str], line: str) -> None:
    with capsys.disabled():
        print(f"\n[figure] {line}")


async def test_polite_teams_are_answered_while_a_flood_gets_the_rest(
    start_proxy: ProxyFactory,
    standin_proc: StandinProcess,
    redis_server: RedisServer,
    redis_client: object,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tokens = "flood:tok-flood-0123456789,polite-a:tok-a-0123456789,polite-b:tok-b-0123456789"
    replicas = start_replicas(start_proxy, redis_server.url, API_KEY="managed", CLIENT_TOKENS=tokens)
    seconds = 8.0
    started = time.monotonic()
    flood, polite_a, polite_b = await asyncio.gather(
        team(replicas, "tok-flood-0123456789", seconds, flood=True),
        team(replicas, "tok-a-0123456789", seconds, flood=False),
        team(replicas, "tok-b-0123456789", seconds, flood=False),
    )
    elapsed = time.monotonic() - started
    calls = standin_proc.stats()["calls"]
    for polite in (polite_a, polite_b):
        assert polite.counts["200"] >= 0.95 * polite.total, polite.counts
    assert calls <= BURST + PER_SECOND * elapsed + 1, "inside the budget"
    assert calls >= 0.8 * PER_SECOND * elapsed, "and not leaving it idle"
    assert flood.counts["200"] == calls - polite_a.counts["200"] - polite_b.counts["200"]
    refused = json.loads(flood.samples["429"])["message"]
    assert "your team is over its share" in refused
    text = await _scrape(replicas[0])
    assert (metric(text, "braze_proxy_team_refusals_total", team="flood") or 0) > 0
    assert metric(text, "braze_proxy_team_refusals_total", team="polite-a") is not None  # present from the start
    report(
        capsys,
        f"fair share, budget {PER_SECOND:g}/s over {elapsed:.1f} s: {calls} calls ({calls / elapsed:.1f}/s); "
        f"polite teams answered {polite_a.counts['200']}/{polite_a.total} and {polite_b.counts['200']}/"
        f"{polite_b.total}; the flood got {flood.counts['200']} of {flood.total} asked",
    )


async def test_one_team_alone_uses_the_whole_budget(
    start_proxy: ProxyFactory,
    standin_proc: StandinProcess,
    redis_server: RedisServer,
    redis_client: object,
    capsys: pytest.CaptureFixture[str],
) -> None:
    replicas = start_replicas(
        start_proxy, redis_server.url, API_KEY="managed", CLIENT_TOKENS="solo:tok-solo-0123456789,idle:tok-i-0123456789"
    )
    seconds = 6.0
    started = time.monotonic()
    alone = await team(replicas, "tok-solo-0123456789", seconds, flood=True)
    elapsed = time.monotonic() - started
    assert alone.counts["200"] >= 0.9 * (BURST + PER_SECOND * elapsed), "at least 90% of what the budget allows"
    report(capsys, f"one team alone: {alone.counts['200']} answered in {elapsed:.1f} s ({PER_SECOND:g}/s budget)")


async def test_weights_split_a_contended_budget(
    start_proxy: ProxyFactory,
    standin_proc: StandinProcess,
    redis_server: RedisServer,
    redis_client: object,
    capsys: pytest.CaptureFixture[str],
) -> None:
    replicas = start_replicas(
        start_proxy,
        redis_server.url,
        API_KEY="managed",
        CLIENT_TOKENS="heavy:tok-h-0123456789:3,light:tok-l-0123456789:1",
    )
    heavy, light = await asyncio.gather(
        team(replicas, "tok-h-0123456789", 8.0, flood=True), team(replicas, "tok-l-0123456789", 8.0, flood=True)
    )
    ratio = heavy.counts["200"] / max(1, light.counts["200"])
    assert 3 * 0.8 <= ratio <= 3 * 1.2, (heavy.counts, light.counts)
    report(capsys, f"weights 3:1, both flooding: {heavy.counts['200']} : {light.counts['200']} = {ratio:.2f}")


async def test_many_keys_of_one_workspace_share_one_budget(
    start_proxy: ProxyFactory, standin_proc: StandinProcess, redis_server: RedisServer, redis_client: object
) -> None:
    replicas = start_replicas(start_proxy, redis_server.url, RATE_LIMIT_PER_HOUR=36, RATE_LIMIT_BURST=2)
    async with aiohttp.ClientSession() as session:
        replies = await asyncio.gather(
            *(get(session, f"{replicas[i % 3].url}{PATH}?{question()}", bearer(f"key-{i}")) for i in range(20))
        )
        text = "".join([await scrape(session, p.url) for p in replicas])
    # One budget's burst, not twenty (its last token goes to no team over its share: here every new key is).
    assert 1 <= standin_proc.stats()["calls"] <= 3, "the burst of one budget, not of twenty"
    assert sum(r.status == 200 for r in replies) == standin_proc.stats()["calls"]
    assert {r.status for r in replies} == {200, 429}
    # Twenty keys are one bounded label value, never a label (or a hash) per key.
    teams = {
        line.split('team="')[1].split('"')[0] for line in text.splitlines() if line.startswith("braze_proxy_team_")
    }
    assert teams == {"pass-through"}, teams


async def test_an_invented_key_costs_one_upstream_call_a_minute(
    start_proxy: ProxyFactory, standin_proc: StandinProcess, redis_server: RedisServer, redis_client: object
) -> None:
    replicas = start_replicas(start_proxy, redis_server.url)
    standin_proc.config(rejected_keys=["invented-key"])
    async with aiohttp.ClientSession() as session:
        replies = [
            await get(session, f"{replicas[i % 3].url}{PATH}?{question()}", bearer("invented-key")) for i in range(30)
        ]
        text = "".join([await scrape(session, p.url) for p in replicas])
    assert {r.status for r in replies} == {401}
    assert len({r.body for r in replies}) == 1, "Braze's own answer, every time"
    assert standin_proc.stats()["calls"] == 1
    assert (metric(text, "braze_proxy_remembered_refusals_total") or 0) == 29


@pytest.mark.parametrize("reset_header", ["milliseconds", "far"])
async def test_bogus_reset_headers_block_nobody_for_long(
    start_proxy: ProxyFactory,
    standin_proc: StandinProcess,
    redis_server: RedisServer,
    redis_client: object,
    reset_header: str,
) -> None:
    (proxy,) = start_replicas(start_proxy, redis_server.url, count=1)
    standin_proc.config(reset_header=reset_header, force_429_for=2.0)
    async with aiohttp.ClientSession() as session:
        limited = await get(session, f"{proxy.url}{PATH}?{question()}", bearer("k"))
        assert limited.status == 429 and "detail=braze-rate-limited" in limited.cache_status
        assert int(limited.headers["Retry-After"]) <= 3600
        resumed = None
        for _ in range(40):  # bounded: the stand-in's 429s end after 2 s
            await asyncio.sleep(0.25)
            reply = await get(session, f"{proxy.url}{PATH}?{question()}", bearer("k"))
            assert int(reply.headers.get("Retry-After", "0")) <= 3600
            if reply.status == 200:
                resumed = reply
                break
    assert resumed is not None, "the proxy calls Braze again after the window"
    assert "bogus X-RateLimit-Reset" in proxy.logs()


@pytest.fixture
def outage_redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


async def test_a_redis_outage_mid_flood_keeps_each_replica_to_its_share_fairly(
    start_proxy: ProxyFactory,
    standin_proc: StandinProcess,
    outage_redis: RedisServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tokens = "flood:tok-flood-0123456789,polite-a:tok-a-0123456789"
    replicas = start_replicas(
        start_proxy, outage_redis.url, API_KEY="managed", CLIENT_TOKENS=tokens, EXPECTED_REPLICAS=3
    )
    async with aiohttp.ClientSession() as session:
        started = time.monotonic()
        load = asyncio.gather(
            team(replicas, "tok-flood-0123456789", 7.0, flood=True),
            team(replicas, "tok-a-0123456789", 7.0, flood=False),
        )
        await asyncio.sleep(2.0)  # the flood is on, spending the shared bucket in Redis
        mid = [await _calls(session, p) for p in replicas]
        outage_redis.stop()
        stopped = time.monotonic()
        _flood, polite = await load
        ended = time.monotonic()
        after = [await _calls(session, p) for p in replicas]
    share = PER_SECOND / 3
    spent = [a - m for a, m in zip(after, mid, strict=True)]
    for calls in spent:  # from the outage on, each replica spends from its own share (+2: calls in flight)
        assert calls <= BURST // 3 + share * (ended - stopped) + 2, (mid, after)
    assert polite.counts["200"] >= 0.95 * polite.total, (polite.counts, polite.samples)
    report(
        capsys,
        f"redis stopped {stopped - started:.1f} s into a flood, 3 replicas: calls per replica after it {spent} in "
        f"{ended - stopped:.1f} s (share {share:.2f}/s each); polite answered {polite.counts['200']}/{polite.total}",
    )


async def _calls(session: aiohttp.ClientSession, proxy: ProxyProcess) -> float:
    return metric(await scrape(session, proxy.url), "braze_proxy_upstream_requests_total") or 0.0


async def _scrape(proxy: ProxyProcess) -> str:
    async with aiohttp.ClientSession() as session:
        return await scrape(session, proxy.url)


async def shadow(
    session: aiohttp.ClientSession, replicas: list[ProxyProcess], query: str, token: str, until: float
) -> None:
    """The flood asking one question over and over (no pause) until `until`: its refused fills are in flight
    whenever another team asks the same question."""
    turn = itertools.count()
    while time.monotonic() < until:
        url = f"{replicas[next(turn) % len(replicas)].url}{PATH}?{query}"
        await get(session, url, bearer(token))


@pytest.mark.parametrize("count", [1, 3], ids=["one-replica", "three-replicas"])
async def test_a_flood_asking_a_polite_teams_questions_does_not_hand_it_its_refusals(
    start_proxy: ProxyFactory,
    standin_proc: StandinProcess,
    redis_server: RedisServer,
    redis_client: object,
    capsys: pytest.CaptureFixture[str],
    count: int,
) -> None:
    """Managed mode shares one cache scope between teams: the polite team's request joins the flood's fill of the
    same question (in process, or across replicas through the lock and its failure marker). The flood's refusal
    is its own share's decision: the polite team's share decides for it."""
    tokens = "flood:tok-flood-0123456789,polite:tok-polite-0123456789"
    replicas = start_replicas(
        start_proxy,
        redis_server.url,
        count=count,
        API_KEY="managed",
        CLIENT_TOKENS=tokens,
        RATE_LIMIT_MAX_WAIT_SECONDS=0,  # refused at once, not queued: the flood's refusals are many and quick
    )
    asked = [question() for _ in range(18)]
    polite: list[Outcome] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:
        drain = asyncio.ensure_future(team(replicas, "tok-flood-0123456789", 1.0 + 18 * 0.5, flood=True))
        await asyncio.sleep(1.0)  # the flood is over its share
        for i, query in enumerate(asked):
            until = time.monotonic() + 0.5
            shadows = [
                asyncio.ensure_future(shadow(session, replicas, query, "tok-flood-0123456789", until)) for _ in range(3)
            ]
            await asyncio.sleep(0.1)  # the flood is asking it: its fills (refused) are in flight
            url = f"{replicas[i % count].url}{PATH}?{query}"
            polite.append(await get(session, url, bearer("tok-polite-0123456789")))
            await asyncio.gather(*shadows)
        flood = await drain
    answered = sum(o.status == 200 for o in polite)
    refused = [o.body for o in polite if o.status != 200]
    assert flood.counts["429"] > 0, ("the flood was refused (over its share)", flood.counts, answered)
    assert answered >= 17, refused
    report(capsys, f"polite team beside a flood asking its questions, {count} replica(s): {answered}/18 answered")
