"""The Braze stand-in and the process helpers, tested as real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.support.braze_standin import StandinServer
from tests.support.procs import (
    BUS_OFFSET,
    free_port,
    port_is_free,
)
from tests.support.standin_endpoints import NO_ANALYTICS_SEGMENT

PATH = "/sessions/data_series"


@pytest_asyncio.fixture
async def standin_server() -> AsyncIterator[StandinServer]:
    async with StandinServer() as server:
        yield server


@pytest_asyncio.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


class Answer:
    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)


async def fetch(client: aiohttp.ClientSession, server: StandinServer, query: str, key: str | None = "key-a") -> Answer:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    async with client.get(f"{server.url}{PATH}?{query}", headers=headers) as response:
        return Answer(response.status, response.headers, await response.read())


async def configure(client: aiohttp.ClientSession, server: StandinServer, **settings: Any) -> Any:
    async with client.post(f"{server.url}/_standin/config", json=settings) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def stats(client: aiohttp.ClientSession, server: StandinServer) -> Any:
    async with client.get(f"{server.url}/_standin/stats") as response:
        return await response.json()


@pytest.mark.asyncio
async def test_same_question_gives_byte_identical_compact_json(
    standin_server: StandinServer, client: aiohttp.ClientSession
) -> None:
    first = await fetch(client, standin_server, "length=3&ending_at=2018-06-28T12:00:00Z")
    second = await fetch(client, standin_server, "ending_at=2018-06-28T12:00:00Z&length=3")
    assert first.status == second.status == 200
    assert first.headers["Content-Type"] == "application/json"
    assert first.body == second.body
    assert b" " not in first.body
    body = first.json()
    assert body["message"] == "success"
    assert [p["time"] for p in body["data"]] == ["2018-06-26", "2018-06-27", "2018-06-28"]
    assert all(isinstance(p["sessions"], int) for p in body["data"])


@pytest.mark.asyncio
async def test_each_credential_and_filter_gets_its_own_numbers(
    standin_server: StandinServer, client: aiohttp.ClientSession
) -> None:
    query = "length=5&ending_at=2018-06-28"
    a = await fetch(client, standin_server, query, key="key-a")
    b = await fetch(client, standin_server, query, key="key-b")
    app = await fetch(client, standin_server, query + "&app_id=app-1", key="key-a")
    assert len({a.body, b.body, app.body}) == 3
    async with client.get(f"{standin_server.url}{PATH}?{query}&api_key=key-a") as legacy:
        assert await legacy.read() == a.body


@pytest.mark.asyncio
async def test_hour_series_ends_at_the_utc_hour_holding_ending_at(
    standin_server: StandinServer, client: aiohttp.ClientSession
) -> None:
    answer = await fetch(client, standin_server, "length=3&unit=hour&ending_at=2018-06-28T23:59:59-5:00")
    times = [p["time"] for p in answer.json()["data"]]
    assert times == ["2018-06-29T02:00:00Z", "2018-06-29T03:00:00Z", "2018-06-29T04:00:00Z"]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "query",
    [
        "",
        "length=0",
        "length=101",
        "length=abc",
        "length=3&unit=week",
        "length=3&ending_at=yesterday",
        "length=3&ending_at=2018-13-01",
        "length=3&ending_at=2018-06-28T10:00:00%2B24:00",
        "length=3&ending_at=0001-01-01",
    ],
)
async def test_invalid_parameters_are_400_with_errors(
    standin_server: StandinServer, client: aiohttp.ClientSession, query: str
) -> None:
    answer = await fetch(client, standin_server, query)
    assert answer.status == 400
    assert answer.json()["errors"]


@pytest.mark.asyncio
async def test_missing_empty_or_rejected_key_is_401(
    standin_server: StandinServer, client: aiohttp.ClientSession
) -> None:
    await configure(client, standin_server, rejected_keys=["revoked"])
    for key in (None, "", "revoked"):
        answer = await fetch(client, standin_server, "length=1", key=key)
        assert answer.status == 401, key
        assert answer.json()["message"].startswith("Invalid API key")
        assert "X-RateLimit-Remaining" in answer.headers


@pytest.mark.asyncio
async def test_stats_count_every_call_with_its_status(
    standin_server: StandinServer, client: aiohttp.ClientSession
) -> None:
    await fetch(client, standin_server, "length=2&ending_at=2018-06-28T00:00:00%2B05:30")
    await fetch(client, standin_server, "length=0")
    await fetch(client, standin_server, "length=1", key=None)
    seen = await stats(client, standin_server)
    assert seen["calls"] == 3
    assert seen["calls_by_status"] == {"200": 1, "400": 1, "401": 1}
    first = seen["requests"][0]
    assert first["query"] == "length=2&ending_at=2018-06-28T00:00:00%2B05:30"
    assert first["authorization"] == "Bearer key-a"
    assert first["status"] == 200
    assert seen["requests"][2]["authorization"] is None
    assert abs(first["t"] - time.time()) < 5


@pytest.mark.asyncio
async def test_budget_is_spent_per_call_then_429_until_reset(
    standin_server: StandinServer, client: aiohttp.ClientSession
) -> None:
    await configure(client, standin_server, rate_limit=2, reset_in=30, retry_after=True)
    answers = [await fetch(client, standin_server, "length=1") for _ in range(3)]
    assert [a.status for a in answers] == [200, 200, 429]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["1", "0", "0"]
    assert all(a.headers["X-RateLimit-Limit"] == "2" for a in answers)
    reset = int(answers[2].headers["X-RateLimit-Reset"])
    assert 0 < reset - time.time() <= 31
    assert 0 < int(answers[2].headers["Retry-After"]) <= 30
    assert answers[2].json() == {"message": "Rate limit exceeded"}
    async with client.post(f"{standin_server.url}/_standin/reset") as response:
        assert response.status == 200
    refilled = await fetch(client, standin_server, "length=1")
    assert refilled.status == 200
    assert refilled.headers["X-RateLimit-Remaining"] == "249999"


@pytest.mark.asyncio
async def test_force_429_for_names_the_moment_it_ends(
    standin_server: StandinServer, client: aiohttp.ClientSession
) -> None:
    before = time.time()
    await configure(client, standin_server, force_429_for=30)
    after = time.time()
    answer = await fetch(client, standin_server, "length=1")
    assert answer.status == 429
    assert answer.headers["X-RateLimit-Remaining"] == "0"
    assert math.ceil(before + 30) <= int(answer.headers["X-RateLimit-Reset"]) <= math.ceil(after + 30)
    assert "Retry-After" not in answer.headers
    await configure(client, standin_server, force_429_for=0)
    assert (await fetch(client, standin_server, "length=1")).status == 200


@pytest.mark.asyncio
async def test_fail_status_answers_the_next_n_calls(
    standin_server: StandinServer, client: aiohttp.ClientSession
) -> None:
    await configure(client, standin_server, fail_status=503, fail_count=2)
    statuses = [(await fetch(client, standin_server, "length=1")).status for _ in range(3)]
    assert statuses == [503, 503, 200]
    await configure(client, standin_server, fail_status=500)  # no count: every call until reset
    failed = await fetch(client, standin_server, "length=1")
    assert failed.status == 500
    assert "message" in failed.json()
    assert (await stats(client, standin_server))["calls_by_status"] == {"503": 2, "200": 1, "500": 1}


@pytest.mark.asyncio
async def test_body_shaping_modes(standin_server: StandinServer, client: aiohttp.ClientSession) -> None:
    await configure(client, standin_server, mode="malformed")
    malformed = await fetch(client, standin_server, "length=1")
    assert malformed.status == 200
    with pytest.raises(json.JSONDecodeError):
        malformed.json()
    await configure(client, standin_server, mode="not_success")
    assert (await fetch(client, standin_server, "length=1")).json()["message"] != "success"
    await configure(client, standin_server, mode="huge", huge_bytes=50_000)
    huge = await fetch(client, standin_server, "length=3")
    assert len(huge.body) == 50_000
    assert len(huge.json()["data"]) == 3
    await configure(client, standin_server, mode="slow_body", slow_seconds=0.4)
    started = time.monotonic()
    slow = await fetch(client, standin_server, "length=3")
    assert time.monotonic() - started >= 0.3
    assert slow.json()["message"] == "success"


@pytest.mark.asyncio
async def test_reset_and_hang_modes_send_no_answer(
    standin_server: StandinServer, client: aiohttp.ClientSession
) -> None:
    await configure(client, standin_server, mode="reset")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await fetch(client, standin_server, "length=1")
    # aiohttp's client silently resends an idempotent request once when the server drops it.
    dropped = (await stats(client, standin_server))["calls"]
    assert dropped in (1, 2)
    await configure(client, standin_server, mode="hang")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await fetch(client, standin_server, "length=1")
    seen = await stats(client, standin_server)
    assert seen["calls"] == dropped + 1
    assert seen["calls_by_status"] == {"0": dropped}  # the hung call has no status yet
    async with client.post(f"{standin_server.url}/_standin/reset") as response:
        assert response.status == 200
    assert (await fetch(client, standin_server, "length=1")).status == 200


@pytest.mark.asyncio
async def test_config_rejects_unknown_or_ill_typed_settings(
    standin_server: StandinServer, client: aiohttp.ClientSession
) -> None:
    for bad in ({"nope": 1}, {"mode": "sideways"}, {"rate_limit": "5"}, {"fail_status": True}):
        async with client.post(f"{standin_server.url}/_standin/config", json=bad) as response:
            assert response.status == 400, bad
    assert (await fetch(client, standin_server, "length=1")).status == 200


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()


def test_free_ports_lie_below_the_ephemeral_range_where_no_client_socket_takes_them() -> None:
    """Under parallel workers, a port the kernel picked for us was once taken by a client's local port."""
    ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert all(port + BUS_OFFSET < ephemeral_low for port in ports), "a Cluster node's bus port too"
    node = free_port(bus=True)
    assert port_is_free(node) and port_is_free(node + BUS_OFFSET)


async def times_and_values(client: aiohttp.ClientSession, server: StandinServer, query: str) -> list[tuple[str, int]]:
    answer = await fetch(client, server, query)
    assert answer.status == 200, answer.body
    return [(p["time"], p["sessions"]) for p in answer.json()["data"]]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("zone", "query", "labels"),
    [
        ("America/New_York", "length=2&ending_at=2026-12-01T03:00:00Z", ["2026-11-29", "2026-11-30"]),
        (
            "America/New_York",
            "length=2&unit=hour&ending_at=2026-12-01T00:30:00Z",
            ["2026-11-30T18:00:00-05:00", "2026-11-30T19:00:00-05:00"],
        ),
        (  # the autumn DST change: 01:00 twice, once per offset
            "America/New_York",
            "length=3&unit=hour&ending_at=2026-11-01T07:30:00Z",
            ["2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00"],
        ),
        ("Asia/Kolkata", "length=1&unit=hour&ending_at=2026-06-01T10:10:00Z", ["2026-06-01T15:00:00+05:30"]),
        ("UTC", "length=1&unit=hour&ending_at=2026-06-01T10:10:00Z", ["2026-06-01T10:00:00Z"]),
    ],
)
async def test_buckets_are_cut_in_the_configured_zone(
    standin_server: StandinServer, client: aiohttp.ClientSession, zone: str, query: str, labels: list[str]
) -> None:
    assert (await configure(client, standin_server, zone=zone))["zone"] == zone
    assert [t for t, _ in await times_and_values(client, standin_server, query)] == labels


@pytest.mark.asyncio
@pytest.mark.parametrize("unit", ["day", "hour"])
async def test_overlapping_windows_agree_on_every_shared_bucket(
    standin_server: StandinServer, client: aiohttp.ClientSession, unit: str
) -> None:
    await configure(client, standin_server, zone="Australia/Lord_Howe")
    # Lord Howe Island leaves DST at 2026-04-04T15:00Z, moving its clock back half an hour.
    ends = ("2026-04-04T15:10:00Z", "2026-04-04T18:00:00Z") if unit == "hour" else ("2026-04-04", "2026-04-10")
    short = await times_and_values(client, standin_server, f"length=3&unit={unit}&ending_at={ends[0]}")
    long = await times_and_values(client, standin_server, f"length=9&unit={unit}&ending_at={ends[1]}")
    shared = dict(long)
    assert all(label in shared for label, _ in short)
    assert [shared[label] for label, _ in short] == [v for _, v in short]
    assert len(set(shared)) == 9  # no label twice, even across the half-hour DST change


@pytest.mark.asyncio
async def test_revision_changes_only_buckets_not_closed_yet(
    standin_server: StandinServer, client: aiohttp.ClientSession
) -> None:
    now = dt.datetime.now(dt.UTC)
    query = f"length=3&unit=hour&ending_at={now.isoformat().replace('+00:00', 'Z')}"
    before = await times_and_values(client, standin_server, query)
    assert (await configure(client, standin_server, revision=1))["revision"] == 1
    after = await times_and_values(client, standin_server, query)
    if [t for t, _ in after] != [t for t, _ in before]:  # the hour turned between the two calls: ask again
        before = await times_and_values(client, standin_server, query.replace("revision", ""))
    assert [t for t, _ in after] == [t for t, _ in before]
    assert after[:2] == before[:2]  # closed hours keep their numbers
    assert after[2][1] != before[2][1]  # the open one was revised
    await configure(client, standin_server, revision=0)
    assert await times_and_values(client, standin_server, query) == before
    async with client.post(f"{standin_server.url}/_standin/reset") as response:
        assert response.status == 200
    assert (await stats(client, standin_server))["calls"] == 0
    assert await times_and_values(client, standin_server, query) == before


@pytest.mark.asyncio
async def test_zone_and_revision_are_checked(standin_server: StandinServer, client: aiohttp.ClientSession) -> None:
    for bad in ({"zone": "Mars/Olympus"}, {"zone": 5}, {"revision": -1}, {"revision": "2"}):
        async with client.post(f"{standin_server.url}/_standin/config", json=bad) as response:
            assert response.status == 400, bad
    assert (await configure(client, standin_server))["zone"] == "UTC"


async def get(client: aiohttp.ClientSession, server: StandinServer, path: str, query: str) -> Answer:
    async with client.get(f"{server.url}{path}?{query}", headers={"Authorization": "Bearer key-a"}) as response:
        return Answer(response.status, response.headers, await response.read())


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("path", "query", "error"),
    [
        ("/kpi/dau/data_series", "length=2&unit=day", "unknown parameter 'unit'"),  # Braze documents no unit here
        ("/events/data_series", "length=2", "event is required"),
        ("/sends/data_series", "length=2&campaign_id=c", "send_id is required"),
        ("/segments/data_series", "length=2&segment_id=s&app_id=a", "unknown parameter 'app_id'"),
        ("/canvas/data_series", "canvas_id=c&length=15", "between 1 and 14"),
        ("/canvas/data_summary", "canvas_id=c&length=2&include_step_breakdown=yes", "must be true or false"),
        ("/campaigns/data_series", "campaign_id=c&length=2&starting_at=2020-01-01", "unknown parameter 'starting_at'"),
    ],
)
async def test_each_endpoint_refuses_what_braze_does_not_document(
    standin_server: StandinServer, client: aiohttp.ClientSession, path: str, query: str, error: str
) -> None:
    answer = await get(client, standin_server, path, query)
    assert answer.status == 400
    assert any(error in e for e in answer.json()["errors"]), answer.json()


@pytest.mark.asyncio
async def test_campaign_and_canvas_shapes(standin_server: StandinServer, client: aiohttp.ClientSession) -> None:
    end = "ending_at=2020-02-01"
    campaign = (await get(client, standin_server, "/campaigns/data_series", f"campaign_id=c&length=2&{end}")).json()
    point = campaign["data"][0]
    assert point["time"] == "2020-01-31"
    assert set(point["messages"]) == {"email", "ios_push"}
    assert isinstance(point["messages"]["email"][0]["sent"], int)
    assert {"conversions", "unique_recipients", "revenue"} <= set(point)
    plain = (await get(client, standin_server, "/canvas/data_series", f"canvas_id=c&length=3&{end}")).json()["data"]
    steps_query = f"canvas_id=c&length=3&{end}&include_step_breakdown=true&include_deleted_step_data=true"
    steps = (await get(client, standin_server, "/canvas/data_series", steps_query)).json()["data"]
    assert plain["name"] == steps["name"] == "Canvas c"
    assert [s["total_stats"] for s in plain["stats"]] == [s["total_stats"] for s in steps["stats"]]
    assert set(steps["stats"][0]["step_stats"]) == {"step-1", "step-deleted"}
    summary = (
        await get(client, standin_server, "/canvas/data_summary", f"canvas_id=c&starting_at=2020-01-30&{end}")
    ).json()
    totals = summary["data"]["total_stats"]
    assert totals["entries"] == sum(s["total_stats"]["entries"] for s in plain["stats"])  # the same three days


@pytest.mark.asyncio
async def test_a_segment_without_analytics_tracking_is_an_error(
    standin_server: StandinServer, client: aiohttp.ClientSession
) -> None:
    answer = await get(client, standin_server, "/segments/data_series", f"length=2&segment_id={NO_ANALYTICS_SEGMENT}")
    assert answer.status == 400
    assert "analytics" in answer.json()["message"]
    assert (await get(client, standin_server, "/segments/data_series", "length=2&segment_id=s")).status == 200
    assert [r["path"] for r in (await stats(client, standin_server))["requests"]] == ["/segments/data_series"] * 2
