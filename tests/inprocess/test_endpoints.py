"""Every served endpoint through the real app (in process) against the stand-in: misses then hits, spellings that
share one entry, refusals that cost no upstream call, budget groups kept apart, Braze's own refusals passed on
and not kept, settle windows, and a generic client that only changes its base URL.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from proxy.core.endpoints import (
    CAMPAIGNS,
    CANVAS,
    CANVAS_SUMMARY,
    SEGMENTS,
    SERVED,
    SESSIONS,
    Endpoint,
)
from proxy.core.exports import EXPORTS
from proxy.devtools import openapi as openapi_doc
from tests.support.braze_standin import StandinServer, StandinState
from tests.support.harness import InProcessProxy, ManualClock, proxy_in_process, standin_in_process
from tests.support.standin_endpoints import NO_ANALYTICS_SEGMENT, SPECS

OLD_END = "2020-02-01T00:00:00Z"  # settled long ago, for every endpoint (14-day windows included)
IDS = {
    "event": "purchase_made",
    "segment_id": "seg-1",
    "campaign_id": "camp-1",
    "send_id": "send-1",
    "canvas_id": "canvas-1",
    "card_id": "card-1",
}
BY_NAME = {e.name: e for e in SERVED}
names = pytest.mark.parametrize("name", list(BY_NAME))


def ids_of(endpoint: Endpoint) -> dict[str, str]:
    return {f.name: IDS[f.name] for f in endpoint.filters if f.required}


def query_of(endpoint: Endpoint, **extra: str | None) -> str:
    params = {"length": str(min(3, endpoint.max_length)), "ending_at": OLD_END, **ids_of(endpoint), **extra}
    return urlencode({k: v for k, v in params.items() if v is not None})


@pytest.fixture
async def standin_server() -> AsyncIterator[StandinServer]:
    async with standin_in_process() as server:
        yield server


@pytest.fixture(params=[False, True], ids=["exact", "windows"])
async def proxy_app(standin_server: StandinServer, request: pytest.FixtureRequest) -> AsyncIterator[InProcessProxy]:
    """The proxy caching exact questions, and with windows from buckets (the default) on."""
    async with proxy_in_process(standin_server.url, windows=request.param) as p:
        yield p


async def direct(standin_server: StandinServer, path: str, query: str, key: str = "key-a") -> tuple[int, Any]:
    """The stand-in's own answer to a query, asked without the proxy."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{standin_server.url}{path}?{query}", headers={"Authorization": f"Bearer {key}"}) as response,
    ):
        return response.status, json.loads(await response.read())


def the_standin_is_the_model() -> None:
    assert {e.path for e in SERVED} == set(SPECS), "the stand-in serves exactly the routed endpoints"


@names
async def test_a_miss_then_a_hit(proxy_app: InProcessProxy, standin_server: StandinServer, name: str) -> None:
    the_standin_is_the_model()
    endpoint = BY_NAME[name]
    query = query_of(endpoint)
    first = await proxy_app.get(query, path=endpoint.path)
    assert first.status == 200, first.body
    assert "fwd=miss" in first.cache_status
    assert endpoint.storable(first.json())
    calls = standin_server.state.calls
    assert calls >= 1
    assert all(r["path"] == endpoint.path for r in standin_server.state.requests)
    # The answer is Braze's (here the stand-in's) answer to the same question.
    assert first.json() == (await direct(standin_server, endpoint.path, query))[1]
    proxy_app.clock.advance(5)
    second = await proxy_app.get(query, path=endpoint.path)
    assert second.status == 200
    assert second.cache_status.startswith("braze-proxy; hit"), second.cache_status
    assert second.body == first.body
    assert standin_server.state.calls == calls + 1  # only the direct call above
    assert await proxy_app.metric("braze_proxy_requests_total", braze_endpoint=name) == 2


def spellings(endpoint: Endpoint) -> list[str]:
    """Other spellings of query_of(endpoint): order, case, offsets, an empty optional filter, option spellings."""
    ids = ids_of(endpoint)
    out = [
        urlencode({**ids, "ending_at": OLD_END, "length": str(min(3, endpoint.max_length))}),
        query_of(endpoint, unit="DAY"),
        query_of(endpoint, ending_at="2020-01-31T19:00:00-05:00"),  # the same instant
        query_of(endpoint, ending_at="2020-02-01T23:59:59.999+00:00"),  # the same day
    ]
    optional = [f.name for f in endpoint.filters if not f.required]
    if optional:
        out.append(query_of(endpoint, **{optional[0]: ""}))
    if endpoint.flags:
        out.append(query_of(endpoint, **{endpoint.flags[0]: "false"}))
    return out


@names
async def test_equivalent_spellings_share_one_entry(
    proxy_app: InProcessProxy, standin_server: StandinServer, name: str
) -> None:
    endpoint = BY_NAME[name]
    if not endpoint.flat:  # instants of one day share a key once that day is known to be Braze's (windows on)
        await proxy_app.get(f"length=100&ending_at={OLD_END}", path="/sessions/data_series")
    first = await proxy_app.get(query_of(endpoint), path=endpoint.path)
    assert first.status == 200
    calls = standin_server.state.calls
    for spelling in spellings(endpoint):
        again = await proxy_app.get(spelling, path=endpoint.path)
        assert again.status == 200, (spelling, again.body)
        assert again.cache_status.startswith("braze-proxy; hit"), (spelling, again.cache_status)
        assert again.body == first.body
    assert standin_server.state.calls == calls


def bad_inputs(endpoint: Endpoint) -> list[tuple[str, str]]:
    """(query, a fragment the refusal must name) for every kind of bad input the endpoint can be sent."""
    ids = ids_of(endpoint)
    n = endpoint.max_length
    out = [
        (query_of(endpoint, length=str(n + 1)), f"'length' must be an integer from 1 to {n}"),
        (query_of(endpoint, length="0"), f"'length' must be an integer from 1 to {n}"),
        (query_of(endpoint, colour="red"), "unknown parameter 'colour'"),
        (query_of(endpoint, ending_at="yesterday"), "'ending_at' must be an ISO-8601"),
    ]
    for missing in ids:
        out.append((query_of(endpoint, **{missing: ""}), f"parameter '{missing}' is required"))
    if not endpoint.supports_hour:
        out.append((query_of(endpoint, unit="hour"), "'unit' must be 'day' for this endpoint"))
    if endpoint.starting_at:
        out.append((urlencode(ids), "'length' (or 'starting_at') is required"))
        out.append((query_of(endpoint, starting_at="2020-01-30"), "either 'length' or 'starting_at'"))
        out.append((query_of(endpoint, **{endpoint.flags[0]: "maybe"}), f"'{endpoint.flags[0]}' must be"))
    else:
        out.append((query_of(endpoint, starting_at="2020-01-30"), "unknown parameter 'starting_at'"))
    return out


@names
async def test_bad_input_is_a_400_naming_it_without_an_upstream_call(
    proxy_app: InProcessProxy, standin_server: StandinServer, name: str
) -> None:
    endpoint = BY_NAME[name]
    for query, fragment in bad_inputs(endpoint):
        reply = await proxy_app.get(query, path=endpoint.path)
        assert reply.status == 400, (query, reply.body)
        assert fragment in reply.json()["message"], (query, reply.body)
        assert reply.cache_status == "braze-proxy; fwd=bypass"
    assert standin_server.state.calls == 0


async def spend_until_refused(proxy_app: InProcessProxy, endpoint: Endpoint, limit: int = 12) -> int:
    """Distinct questions to `endpoint` until the proxy's own budget refuses one; returns how many answered."""
    for i in range(limit):
        day = (dt.date(2020, 1, 1) + dt.timedelta(days=i)).isoformat()
        reply = await proxy_app.get(query_of(endpoint, ending_at=day), path=endpoint.path)
        if reply.status == 429:
            assert "detail=budget-spent" in reply.cache_status, reply.cache_status
            return i
        assert reply.status == 200, reply.body
    raise AssertionError(f"the budget of {endpoint.name} never ran out in {limit} questions")


async def test_an_exhausted_campaigns_budget_leaves_the_others_answering(standin_server: StandinServer) -> None:
    groups = {"campaigns": {"rate_limit_per_hour": 1, "burst": 2}}
    async with proxy_in_process(standin_server.url, budget_groups=groups, rate_limit_max_wait_seconds=0) as proxy_app:
        assert await spend_until_refused(proxy_app, CAMPAIGNS) >= 1
        for endpoint in SERVED:
            if endpoint is not CAMPAIGNS:
                reply = await proxy_app.get(query_of(endpoint), path=endpoint.path)
                assert reply.status == 200, (endpoint.name, reply.body)


async def test_an_exhausted_default_budget_leaves_campaigns_answering(standin_server: StandinServer) -> None:
    async with proxy_in_process(
        standin_server.url, rate_limit_per_hour=1, rate_limit_burst=2, rate_limit_max_wait_seconds=0
    ) as proxy_app:
        assert await spend_until_refused(proxy_app, SESSIONS) >= 1
        assert (await proxy_app.get(query_of(SEGMENTS), path=SEGMENTS.path)).status == 429  # the same group
        reply = await proxy_app.get(query_of(CAMPAIGNS), path=CAMPAIGNS.path)
        assert reply.status == 200, reply.body


async def test_an_endpoint_moved_to_another_group_spends_that_group(standin_server: StandinServer) -> None:
    async with proxy_in_process(
        standin_server.url,
        budget_groups={"campaigns": {"rate_limit_per_hour": 1, "burst": 2}},
        endpoint_groups={"sends": "campaigns"},
        rate_limit_max_wait_seconds=0,
    ) as proxy_app:
        await spend_until_refused(proxy_app, CAMPAIGNS)
        sends = BY_NAME["sends"]
        assert (await proxy_app.get(query_of(sends), path=sends.path)).status == 429
        assert (await proxy_app.get(query_of(SESSIONS), path=SESSIONS.path)).status == 200


async def test_a_segment_without_analytics_gets_brazes_error_never_kept(
    proxy_app: InProcessProxy, standin_server: StandinServer
) -> None:
    query = query_of(SEGMENTS, segment_id=NO_ANALYTICS_SEGMENT)
    status, expected = await direct(standin_server, SEGMENTS.path, query)
    assert status == 400
    # With windows, Braze refuses the one-bucket label probe first; its answer is no client's, so the question
    # is then asked exactly: two calls a request instead of one, and never a wrong answer.
    per_request = 2 if proxy_app.components.alignment is not None else 1
    for attempt in (1, 2):
        reply = await proxy_app.get(query, path=SEGMENTS.path)
        assert reply.status == 400
        assert reply.json() == expected  # Braze's own words, passed on
        assert "stored" not in reply.cache_status and "hit" not in reply.cache_status
        assert standin_server.state.calls == 1 + attempt * per_request  # asked again: an error is never kept
    other = await proxy_app.get(query_of(SEGMENTS), path=SEGMENTS.path)  # the key itself is not refused
    assert other.status == 200


@pytest.mark.parametrize(("endpoint", "settle"), [(SESSIONS, "settled"), (CAMPAIGNS, "recent"), (CANVAS, "recent")])
async def test_restated_endpoints_stay_fresh_for_less_time(
    standin_server: StandinServer, endpoint: Endpoint, settle: str
) -> None:
    ttl = {"recent": 1800, "settled": 86400}
    async with proxy_in_process(
        standin_server.url, ttl_recent_day=ttl["recent"], ttl_settled=ttl["settled"]
    ) as proxy_app:
        five_days_ago = dt.datetime.fromtimestamp(proxy_app.clock.now, dt.UTC).date() - dt.timedelta(days=5)
        query = query_of(endpoint, ending_at=five_days_ago.isoformat())
        assert (await proxy_app.get(query, path=endpoint.path)).status == 200
        proxy_app.clock.advance(1)
        hit = await proxy_app.get(query, path=endpoint.path)
        assert hit.cache_status.startswith("braze-proxy; hit; ttl=")
        assert int(hit.cache_status.split("ttl=")[1].split(";")[0]) == ttl[settle] - 1


async def test_canvas_options_are_exact_questions(proxy_app: InProcessProxy, standin_server: StandinServer) -> None:
    plain = await proxy_app.get(query_of(CANVAS), path=CANVAS.path)
    steps = await proxy_app.get(query_of(CANVAS, include_step_breakdown="TRUE"), path=CANVAS.path)
    assert plain.status == steps.status == 200
    assert "step_stats" not in plain.json()["data"]["stats"][0]
    assert "step_stats" in steps.json()["data"]["stats"][0]
    assert standin_server.state.requests[-1]["query"].endswith("&include_step_breakdown=true")
    by_start = await proxy_app.get(
        query_of(CANVAS_SUMMARY, length=None, starting_at="2020-01-30"), path=CANVAS_SUMMARY.path
    )
    assert by_start.status == 200
    assert "total_stats" in by_start.json()["data"]
    assert "starting_at=2020-01-30T00" in standin_server.state.requests[-1]["query"]


async def test_a_client_that_only_changes_its_base_url(
    proxy_app: InProcessProxy, standin_server: StandinServer
) -> None:
    """Configured like Braze's SDKs: a base URL and a bearer key, the parameters Braze documents, `ending_at` as
    `datetime.now(UTC).isoformat()` the way public connectors write it."""
    base_url = str(proxy_app.client.make_url("/"))
    now = dt.datetime.fromtimestamp(proxy_app.clock.now, dt.UTC).isoformat()
    headers = {"Authorization": "Bearer key-sdk"}
    async with aiohttp.ClientSession(base_url=base_url, headers=headers) as client:
        for endpoint in SERVED:
            params = {"length": str(min(7, endpoint.max_length)), "ending_at": now, **ids_of(endpoint)}
            async with client.get(endpoint.path.lstrip("/"), params=params) as response:
                assert response.status == 200, (endpoint.path, await response.text())
                assert response.content_type == "application/json"
                payload = await response.json()
            assert payload["message"] == "success"
            assert endpoint.storable(payload), endpoint.path
    assert {r["path"] for r in standin_server.state.requests} == {e.path for e in SERVED}
    assert all(r["authorization"] == "Bearer key-sdk" for r in standin_server.state.requests)


async def test_the_openapi_description_covers_every_endpoint(proxy_app: InProcessProxy) -> None:
    shipped = (Path(openapi_doc.__file__).parent.parent / "openapi.json").read_text()  # proxy/openapi.json
    assert shipped == openapi_doc.render(), "run: python -m proxy.devtools.openapi > proxy/openapi.json"
    async with proxy_app.client.get("/openapi.json") as response:
        served = await response.json()
    admin = {f"/admin/{r}" for r in ("purge", "warm", "cache", "teams")}
    assert set(served["paths"]) == {e.path for e in SERVED} | {e.path for e in EXPORTS} | admin
    for endpoint in SERVED:
        params = {p["name"]: p for p in served["paths"][endpoint.path]["get"]["parameters"]}
        assert params["length"]["schema"]["maximum"] == endpoint.max_length
        assert params["length"]["required"] is not endpoint.starting_at
        assert {f.name for f in endpoint.filters if f.required} <= {n for n, p in params.items() if p["required"]}
        assert bool(re.fullmatch(params["unit"]["schema"]["pattern"], "hour")) == endpoint.supports_hour


def asked_in_a_zone() -> list[tuple[str, str]]:
    """(endpoint name, unit): every endpoint by day, the hourly ones by hour too."""
    return [(e.name, "day") for e in SERVED] + [(e.name, "hour") for e in SERVED if e.supports_hour]


@pytest.mark.parametrize("windows", [False, True], ids=["exact", "windows"])
@pytest.mark.parametrize(("name", "unit"), asked_in_a_zone())
async def test_answers_are_brazes_in_the_reporting_zone(name: str, unit: str, windows: bool) -> None:
    """Braze and the proxy both cut days (and hours) in America/New_York: every answer, assembled from buckets or
    asked exactly, is the stand-in's answer to the client's own question."""
    endpoint = BY_NAME[name]
    async with standin_in_process() as standin_server:
        standin_server.state.configure({"zone": "America/New_York"}, standin_server.state.clock())
        async with proxy_in_process(
            standin_server.url, reporting_timezone="America/New_York", windows=windows
        ) as proxy_app:
            for end in ("2020-02-01T03:30:00Z", "2020-01-31T22:00:00-05:00", "2020-03-08T12:00:00Z"):  # DST starts
                length = str(min(5, endpoint.max_length))
                query = query_of(endpoint, unit=unit if endpoint.supports_hour else None, length=length, ending_at=end)
                reply = await proxy_app.get(query, path=endpoint.path)
                assert reply.status == 200, reply.body
                assert reply.json() == (await direct(standin_server, endpoint.path, query))[1], (end, query)


def flat_series() -> list[tuple[str, str]]:
    return [(name, unit) for name, unit in asked_in_a_zone() if BY_NAME[name].flat]


@pytest.mark.parametrize(("name", "unit"), flat_series())
async def test_every_flat_series_assembles_windows_equal_to_brazes_answer(name: str, unit: str) -> None:
    """One widened fetch, then windows inside it (every length, several endings, filters as the endpoint allows):
    each assembled answer is the stand-in's answer to that exact question, with no call of its own."""
    endpoint = BY_NAME[name]
    optional = {f.name: f"opt-{f.name}" for f in endpoint.filters if not f.required}
    async with standin_in_process() as standin_server, proxy_in_process(standin_server.url, windows=True) as proxy_app:
        last = dt.datetime(2020, 2, 1, 12, tzinfo=dt.UTC)
        step = dt.timedelta(days=1) if unit == "day" else dt.timedelta(hours=1)
        as_asked = {"unit": unit if endpoint.supports_hour else None, **optional}  # day-only endpoints take no unit
        first = await proxy_app.get(
            query_of(endpoint, length="1", ending_at=last.isoformat(), **as_asked), path=endpoint.path
        )
        assert first.status == 200 and "fwd=miss" in first.cache_status, first.body
        calls = standin_server.state.calls
        rng = random.Random(name + unit)
        for _ in range(12):
            length = rng.randint(1, endpoint.max_length)
            end = last - step * rng.randint(0, endpoint.max_length - length)
            query = query_of(endpoint, length=str(length), ending_at=end.isoformat(), **as_asked)
            reply = await proxy_app.get(query, path=endpoint.path)
            assert reply.status == 200, reply.body
            assert "detail=buckets" in reply.cache_status or reply.cache_status.startswith("braze-proxy; hit"), query
            assert reply.json() == (await direct(standin_server, endpoint.path, query))[1], query
        assert standin_server.state.calls == calls + 12  # the test's own direct questions only


async def test_an_open_bucket_is_asked_again_once_its_short_ttl_ends() -> None:
    clock = ManualClock()
    async with (
        StandinServer(StandinState(clock=clock)) as standin_server,
        proxy_in_process(
            standin_server.url, clock, ttl_open_day=300, ttl_settled=86400, stale_while_revalidate_seconds=0
        ) as proxy_app,
    ):
        for endpoint in (SESSIONS, CAMPAIGNS, CANVAS):
            query = urlencode({"length": "3", **ids_of(endpoint)})  # ending now: today is still counting
            first = await proxy_app.get(query, path=endpoint.path)
            standin_server.state.configure({"revision": standin_server.state.revision + 1}, clock())
            proxy_app.clock.advance(299)
            assert (await proxy_app.get(query, path=endpoint.path)).body == first.body  # fresh for 300 s
            proxy_app.clock.advance(2)
            again = await proxy_app.get(query, path=endpoint.path)
            assert again.status == 200
            old, new = points(endpoint, first.json()), points(endpoint, again.json())
            assert [p["time"] for p in old] == [p["time"] for p in new]
            assert old[:-1] == new[:-1]  # closed days keep their numbers
            assert old[-1] != new[-1]  # today's were revised, and fetched again


def points(endpoint: Endpoint, payload: Any) -> list[Any]:
    return list(payload["data"]["stats"] if endpoint.shape == "canvas_series" else payload["data"])
