"""The Braze stand-in and the process helpers, tested as real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import socket
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import redis

from tests.braze_standin import StandinServer, parse_iso
from tests.conftest import require_tool
from tests.procs import RedisServer, StandinProcess, free_port, http_get_json, http_post_json

PATH = "/sessions/data_series"


@pytest_asyncio.fixture
async def standin() -> AsyncIterator[StandinServer]:
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
    standin: StandinServer, client: aiohttp.ClientSession
) -> None:
    first = await fetch(client, standin, "length=3&ending_at=2018-06-28T12:00:00Z")
    second = await fetch(client, standin, "ending_at=2018-06-28T12:00:00Z&length=3")
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
    standin: StandinServer, client: aiohttp.ClientSession
) -> None:
    query = "length=5&ending_at=2018-06-28"
    a = await fetch(client, standin, query, key="key-a")
    b = await fetch(client, standin, query, key="key-b")
    app = await fetch(client, standin, query + "&app_id=app-1", key="key-a")
    assert len({a.body, b.body, app.body}) == 3
    async with client.get(f"{standin.url}{PATH}?{query}&api_key=key-a") as legacy:
        assert await legacy.read() == a.body


@pytest.mark.asyncio
async def test_hour_series_ends_at_the_utc_hour_holding_ending_at(
    standin: StandinServer, client: aiohttp.ClientSession
) -> None:
    answer = await fetch(client, standin, "length=3&unit=hour&ending_at=2018-06-28T23:59:59-5:00")
    times = [p["time"] for p in answer.json()["data"]]
    assert times == ["2018-06-29T02:00:00Z", "2018-06-29T03:00:00Z", "2018-06-29T04:00:00Z"]


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2018-06-28T23:59:59-5:00", "2018-06-29T04:59:59+00:00"),
        ("2018-06-28T23:59:59+05:30", "2018-06-28T18:29:59+00:00"),
        ("2018-06-28T23:59:59+0530", "2018-06-28T18:29:59+00:00"),
        ("2018-06-28T23:59:59.123456789Z", "2018-06-28T23:59:59.123456+00:00"),
        ("2018-06-28T10:15", "2018-06-28T10:15:00+00:00"),
        ("2018-06-28", "2018-06-28T00:00:00+00:00"),
    ],
)
def test_parse_iso_accepts_the_forms_braze_documents(text: str, utc: str) -> None:
    parsed = parse_iso(text)
    assert parsed is not None
    assert parsed.astimezone(dt.UTC).isoformat() == utc


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
    standin: StandinServer, client: aiohttp.ClientSession, query: str
) -> None:
    answer = await fetch(client, standin, query)
    assert answer.status == 400
    assert answer.json()["errors"]


@pytest.mark.asyncio
async def test_missing_empty_or_rejected_key_is_401(standin: StandinServer, client: aiohttp.ClientSession) -> None:
    await configure(client, standin, rejected_keys=["revoked"])
    for key in (None, "", "revoked"):
        answer = await fetch(client, standin, "length=1", key=key)
        assert answer.status == 401, key
        assert answer.json()["message"].startswith("Invalid API key")
        assert "X-RateLimit-Remaining" in answer.headers


@pytest.mark.asyncio
async def test_stats_count_every_call_with_its_status(standin: StandinServer, client: aiohttp.ClientSession) -> None:
    await fetch(client, standin, "length=2&ending_at=2018-06-28T00:00:00%2B05:30")
    await fetch(client, standin, "length=0")
    await fetch(client, standin, "length=1", key=None)
    seen = await stats(client, standin)
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
    standin: StandinServer, client: aiohttp.ClientSession
) -> None:
    await configure(client, standin, rate_limit=2, reset_in=30, retry_after=True)
    answers = [await fetch(client, standin, "length=1") for _ in range(3)]
    assert [a.status for a in answers] == [200, 200, 429]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["1", "0", "0"]
    assert all(a.headers["X-RateLimit-Limit"] == "2" for a in answers)
    reset = int(answers[2].headers["X-RateLimit-Reset"])
    assert 0 < reset - time.time() <= 31
    assert 0 < int(answers[2].headers["Retry-After"]) <= 30
    assert answers[2].json() == {"message": "Rate limit exceeded"}
    async with client.post(f"{standin.url}/_standin/reset") as response:
        assert response.status == 200
    refilled = await fetch(client, standin, "length=1")
    assert refilled.status == 200
    assert refilled.headers["X-RateLimit-Remaining"] == "249999"


@pytest.mark.asyncio
async def test_force_429_for_names_the_moment_it_ends(standin: StandinServer, client: aiohttp.ClientSession) -> None:
    before = time.time()
    await configure(client, standin, force_429_for=30)
    after = time.time()
    answer = await fetch(client, standin, "length=1")
    assert answer.status == 429
    assert answer.headers["X-RateLimit-Remaining"] == "0"
    assert math.ceil(before + 30) <= int(answer.headers["X-RateLimit-Reset"]) <= math.ceil(after + 30)
    assert "Retry-After" not in answer.headers
    await configure(client, standin, force_429_for=0)
    assert (await fetch(client, standin, "length=1")).status == 200


@pytest.mark.asyncio
async def test_fail_status_answers_the_next_n_calls(standin: StandinServer, client: aiohttp.ClientSession) -> None:
    await configure(client, standin, fail_status=503, fail_count=2)
    statuses = [(await fetch(client, standin, "length=1")).status for _ in range(3)]
    assert statuses == [503, 503, 200]
    await configure(client, standin, fail_status=500)  # no count: every call until reset
    failed = await fetch(client, standin, "length=1")
    assert failed.status == 500
    assert "message" in failed.json()
    assert (await stats(client, standin))["calls_by_status"] == {"503": 2, "200": 1, "500": 1}


@pytest.mark.asyncio
async def test_body_shaping_modes(standin: StandinServer, client: aiohttp.ClientSession) -> None:
    await configure(client, standin, mode="malformed")
    malformed = await fetch(client, standin, "length=1")
    assert malformed.status == 200
    with pytest.raises(json.JSONDecodeError):
        malformed.json()
    await configure(client, standin, mode="not_success")
    assert (await fetch(client, standin, "length=1")).json()["message"] != "success"
    await configure(client, standin, mode="huge", huge_bytes=50_000)
    huge = await fetch(client, standin, "length=3")
    assert len(huge.body) == 50_000
    assert len(huge.json()["data"]) == 3
    await configure(client, standin, mode="slow_body", slow_seconds=0.4)
    started = time.monotonic()
    slow = await fetch(client, standin, "length=3")
    assert time.monotonic() - started >= 0.3
    assert slow.json()["message"] == "success"


@pytest.mark.asyncio
async def test_reset_and_hang_modes_send_no_answer(standin: StandinServer, client: aiohttp.ClientSession) -> None:
    await configure(client, standin, mode="reset")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await fetch(client, standin, "length=1")
    # aiohttp's client silently resends an idempotent request once when the server drops it.
    dropped = (await stats(client, standin))["calls"]
    assert dropped in (1, 2)
    await configure(client, standin, mode="hang")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await fetch(client, standin, "length=1")
    seen = await stats(client, standin)
    assert seen["calls"] == dropped + 1
    assert seen["calls_by_status"] == {"0": dropped}  # the hung call has no status yet
    async with client.post(f"{standin.url}/_standin/reset") as response:
        assert response.status == 200
    assert (await fetch(client, standin, "length=1")).status == 200


@pytest.mark.asyncio
async def test_config_rejects_unknown_or_ill_typed_settings(
    standin: StandinServer, client: aiohttp.ClientSession
) -> None:
    for bad in ({"nope": 1}, {"mode": "sideways"}, {"rate_limit": "5"}, {"fail_status": True}):
        async with client.post(f"{standin.url}/_standin/config", json=bad) as response:
            assert response.status == 400, bad
    assert (await fetch(client, standin, "length=1")).status == 200


def test_standin_as_a_process_restarts_on_the_same_port() -> None:
    with StandinProcess() as standin:
        request = urllib.request.Request(
            f"{standin.url}{PATH}?length=2&ending_at=2018-06-28", headers={"Authorization": "Bearer key-a"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            body = response.read()
        assert json.loads(body)["message"] == "success"
        assert http_post_json(f"{standin.url}/_standin/config", {"fail_status": 503})["fail_count"] == -1
        with pytest.raises(urllib.error.HTTPError) as failed:
            urllib.request.urlopen(request, timeout=5)
        failed.value.close()
        assert http_get_json(f"{standin.url}/_standin/stats")["calls_by_status"] == {"200": 1, "503": 1}
        assert standin.terminate() == 0
        with pytest.raises(urllib.error.URLError):
            http_get_json(f"{standin.url}/_standin/stats")
        port = standin.port
        standin.start()
        assert standin.port == port
        assert standin.stats()["calls"] == 0
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.read() == body  # deterministic across processes
    assert "READY" in standin.logs()


def test_redis_server_stops_and_restarts_on_the_same_port() -> None:
    require_tool("redis-server")
    with RedisServer() as server:
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        client = redis.Redis.from_url(server.url, socket_timeout=2)
        try:
            client.set("k", "v")
            assert client.get("k") == b"v"
            server.stop()
            assert not server.ping()
            with pytest.raises(redis.ConnectionError):
                client.get("k")
            server.start()
            assert client.get("k") is None  # nothing persisted across the outage
        finally:
            client.close()


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
