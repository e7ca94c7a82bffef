"""The admin API in process, on the real app, stores and stand-in: who may open it, purge, the cache listing, the
teams' shares and the X-RateLimit-* headers, warming with spare budget only, and refresh ahead."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.braze_standin import StandinServer
from tests.support.harness import InProcessProxy, ManualClock, proxy_in_process, standin_in_process

ADMIN = "admin-token-0123456789"
SESSIONS = "length=3&ending_at=2020-01-01T00:00:00Z"  # settled: cached a day
DAU = "/kpi/dau/data_series"
MANAGED = {
    "api_key": "managed-braze-key",
    "client_tokens": "a:tok-a-xxxxxxxxxx:3,b:tok-b-xxxxxxxxxx:1",
    "admin_token": ADMIN,
}


@pytest.fixture
async def standin_server() -> AsyncIterator[StandinServer]:
    async with standin_in_process() as server:
        yield server


async def admin(
    proxy: InProcessProxy, method: str, path: str, body: Any = None, token: str | None = ADMIN
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with proxy.client.request(method, path, json=body, headers=headers) as response:
        return response.status, json.loads(await response.read())


async def test_without_the_setting_every_admin_path_is_a_404(standin_server: StandinServer) -> None:
    async with proxy_in_process(standin_server.url) as proxy:
        for method, path in (("POST", "/admin/purge"), ("POST", "/admin/warm"), ("GET", "/admin/teams")):
            status, body = await admin(proxy, method, path, {"endpoint": "sessions"})
            assert status == 404, path
            assert body["message"] == f"Not found: braze-proxy does not serve {method} {path}", body


async def test_only_the_admin_token_opens_it(standin_server: StandinServer) -> None:
    async with proxy_in_process(standin_server.url, **MANAGED) as proxy:
        for token in (None, "wrong-token-0123456789", "tok-a-xxxxxxxxxx", "managed-braze-key"):
            status, body = await admin(proxy, "GET", "/admin/teams", token=token)
            assert status == 401, token
            assert "admin token" in body["message"]
        assert (await admin(proxy, "GET", "/admin/teams"))[0] == 200
        assert await proxy.metric("braze_proxy_admin_actions_total", action="teams", result="unauthorized") == 4
        assert await proxy.metric("braze_proxy_admin_actions_total", action="teams", result="ok") == 1


async def test_purge_drops_one_endpoint_for_every_credential(
    standin_server: StandinServer, store_settings: dict[str, Any]
) -> None:
    async with proxy_in_process(standin_server.url, admin_token=ADMIN, **store_settings) as proxy:
        for key in ("key-a", "key-b"):
            await proxy.get(SESSIONS + "&app_id=x", key=key)
            await proxy.get(SESSIONS + "&app_id=y", key=key)
            await proxy.get(SESSIONS, key=key, path=DAU)
        assert standin_server.state.calls == 6
        status, body = await admin(proxy, "POST", "/admin/purge", {"endpoint": "sessions", "filters": {"app_id": "x"}})
        assert (status, body) == (200, {"purged": 2})
        assert "fwd=miss" in (await proxy.get(SESSIONS + "&app_id=x", key="key-a")).cache_status
        assert "hit" in (await proxy.get(SESSIONS + "&app_id=y", key="key-a")).cache_status
        assert (await admin(proxy, "POST", "/admin/purge", {"endpoint": "sessions"}))[1] == {"purged": 3}
        for key in ("key-a", "key-b"):
            assert (await proxy.get(SESSIONS, key=key, path=DAU)).cache_status.startswith("braze-proxy; hit")
        assert standin_server.state.calls == 7  # the purged question once; the other endpoint's entries untouched
        assert await proxy.metric("braze_proxy_purged_entries_total") == 5


async def test_a_purge_naming_what_does_not_exist_is_a_400(standin_server: StandinServer) -> None:
    async with proxy_in_process(standin_server.url, admin_token=ADMIN) as proxy:
        status, body = await admin(proxy, "POST", "/admin/purge", {"endpoint": "session"})
        assert status == 400 and "unknown endpoint 'session'" in body["message"]
        status, body = await admin(proxy, "POST", "/admin/purge", {"endpoint": "dau", "filters": {"segment_id": "s"}})
        assert status == 400 and "unknown filter 'segment_id' for dau" in body["message"]
        assert (await admin(proxy, "POST", "/admin/purge", [1]))[0] == 400


async def test_the_cache_listing_pages_and_never_shows_a_credential(
    standin_server: StandinServer, store_settings: dict[str, Any]
) -> None:
    secret = "braze-key-very-secret"
    async with proxy_in_process(standin_server.url, admin_token=ADMIN, **store_settings) as proxy:
        for app_id in ("a", "b", "c"):
            await proxy.get(f"{SESSIONS}&app_id={app_id}", key=secret)
        await proxy.get(SESSIONS, key=secret, path=DAU)
        seen: list[dict[str, Any]] = []
        cursor = ""
        for _ in range(10):
            status, body = await admin(proxy, "GET", f"/admin/cache?endpoint=sessions&limit=2&cursor={cursor}")
            assert status == 200
            assert len(body["items"]) <= 2
            seen += body["items"]
            if body["next_cursor"] is None:
                break
            cursor = body["next_cursor"]
        assert sorted(item["filters"]["app_id"] for item in seen) == ["a", "b", "c"]
        item = seen[0]
        assert item["kind"] == "entry" and item["unit"] == "day" and item["length"] == 3
        assert item["ending_at"] == "2020-01-01T00:00:00Z" and item["age"] == 0
        assert 86000 < item["fresh_for"] <= 86400 and item["bytes"] > 50 and len(item["scope"]) == 8
        everything = json.dumps((await admin(proxy, "GET", "/admin/cache"))[1], separators=(",", ":"))
        assert secret not in everything and "p" + item["scope"] not in everything
        assert everything.count('"endpoint":"dau"') == 1
        assert (await admin(proxy, "GET", "/admin/cache?limit=0"))[0] == 400


async def test_teams_read_their_share_in_headers_and_the_admin_sees_every_team(standin_server: StandinServer) -> None:
    async with proxy_in_process(standin_server.url, rate_limit_per_hour=4000, **MANAGED) as proxy:
        first = await proxy.get(SESSIONS, key="tok-a-xxxxxxxxxx")
        assert first.headers["X-RateLimit-Limit"] == "3000"  # weight 3 of 4
        assert first.headers["X-RateLimit-Remaining"] == "3000"  # the call is counted at the next sync
        reset = int(first.headers["X-RateLimit-Reset"])
        assert reset % 3600 == 0 and 0 < reset - proxy.clock.now <= 3600
        await proxy.components.day2.spending.sync()
        hit = await proxy.get(SESSIONS, key="tok-a-xxxxxxxxxx")
        assert hit.cache_status.startswith("braze-proxy; hit")
        assert (hit.headers["X-RateLimit-Limit"], hit.headers["X-RateLimit-Remaining"]) == ("3000", "2999")
        other = await proxy.get(SESSIONS, key="tok-b-xxxxxxxxxx")
        assert (other.headers["X-RateLimit-Limit"], other.headers["X-RateLimit-Remaining"]) == ("1000", "1000")
        assert "X-RateLimit-Limit" not in (await proxy.get(SESSIONS, key="nobody")).headers  # 401: no team
        status, body = await admin(proxy, "GET", "/admin/teams")
        assert status == 200
        team_a = next(t for t in body["teams"] if t["team"] == "a" and t["group"] == "default")
        assert (
            team_a["weight"] == 3 and team_a["per_hour"] == 3000 and team_a["per_second"] == pytest.approx(0.8333, 1e-3)
        )
        assert (team_a["spent_this_hour"], team_a["remaining"]) == (1, 2999)
        budget = next(b for b in body["budgets"] if b["workspace"] == "default" and b["group"] == "default")
        assert (budget["per_hour"], budget["spent_this_hour"], budget["remaining"]) == (4000, 1, 3999)
        assert "tok-a-xxxxxxxxxx" not in json.dumps(body) and "managed-braze-key" not in json.dumps(body)


WARMED = [f"/sessions/data_series?length=7&ending_at=2020-01-0{day}" for day in (1, 2, 3)]


async def test_a_warm_makes_its_questions_hits(standin_server: StandinServer) -> None:
    async with proxy_in_process(standin_server.url, **MANAGED) as proxy:
        status, body = await admin(proxy, "POST", "/admin/warm", {"questions": WARMED})
        assert (status, body) == (202, {"accepted": 3})
        await asyncio.wait_for(proxy.components.day2.warmer.idle(), 5)
        assert standin_server.state.calls == 3
        for question in WARMED:
            path, query = question.split("?")
            assert (await proxy.get(query, key="tok-b-xxxxxxxxxx", path=path)).cache_status.startswith(
                "braze-proxy; hit"
            )
        assert standin_server.state.calls == 3
        assert await proxy.metric("braze_proxy_warm_questions_total", result="ok") == 3


async def test_a_warm_spends_only_budget_the_teams_leave(standin_server: StandinServer) -> None:
    clock = ManualClock()
    settings = {**MANAGED, "rate_limit_per_hour": 3.6, "rate_limit_burst": 10}  # a token every 1,000 s
    async with proxy_in_process(standin_server.url, clock, **settings) as proxy:
        for app_id in range(6):  # the team takes the bucket from 10 to 4 tokens, below the headroom (5)
            assert (await proxy.get(f"{SESSIONS}&app_id={app_id}", key="tok-a-xxxxxxxxxx")).status == 200
        assert (await admin(proxy, "POST", "/admin/warm", {"questions": WARMED}))[1] == {"accepted": 3}
        await asyncio.wait_for(proxy.components.day2.warmer.idle(), 5)
        assert standin_server.state.calls == 6  # no room: the warm spent nothing
        assert await proxy.metric("braze_proxy_warm_questions_total", result="skipped") == 3
        assert (
            await proxy.get(f"{SESSIONS}&app_id=9", key="tok-a-xxxxxxxxxx")
        ).status == 200  # the team's token is still there


async def test_a_warm_naming_bad_questions_accepts_nothing(standin_server: StandinServer) -> None:
    async with proxy_in_process(standin_server.url, **MANAGED) as proxy:
        questions = [WARMED[0], "/nowhere?length=1", "/sessions/data_series?length=900", "/dau?api_key=k"]
        status, body = await admin(proxy, "POST", "/admin/warm", {"questions": questions})
        assert status == 400
        assert [e.split(":")[0] for e in body["errors"]] == ["question 2", "question 3", "question 4"]
        status, body = await admin(proxy, "POST", "/admin/warm", {"questions": WARMED, "api_key": "other"})
        assert status == 400 and "managed key" in body["message"]
        await asyncio.sleep(0.05)
        assert standin_server.state.calls == 0


async def test_a_question_asked_again_is_refreshed_before_it_expires(standin_server: StandinServer) -> None:
    clock = ManualClock()
    async with proxy_in_process(standin_server.url, clock, ttl_open_day=5, api_key="k", allow_anonymous=True) as proxy:
        assert "fwd=miss" in (await proxy.get("length=3")).cache_status  # "now": its last day is open
        assert (await proxy.get("length=3")).cache_status.startswith("braze-proxy; hit")  # asked again: planned
        clock.advance(4.2)  # within a second of expiry
        for _ in range(50):
            if standin_server.state.calls == 2:
                break
            await asyncio.sleep(0.05)
        assert standin_server.state.calls == 2
        clock.advance(1.0)  # past the first entry's expiry
        after = await proxy.get("length=3")
        assert after.cache_status.startswith("braze-proxy; hit"), after.cache_status
        assert standin_server.state.calls == 2
        assert await proxy.metric("braze_proxy_refresh_ahead_total", result="ok") == 1


async def test_refresh_ahead_can_be_turned_off(standin_server: StandinServer) -> None:
    clock = ManualClock()
    settings = {"ttl_open_day": 5, "refresh_ahead": False, "stale_while_revalidate_seconds": 0}
    async with proxy_in_process(standin_server.url, clock, **settings) as proxy:
        await proxy.get("length=3")
        await proxy.get("length=3")
        clock.advance(4.2)
        await asyncio.sleep(0.5)
        assert standin_server.state.calls == 1
        clock.advance(1.0)
        assert "fwd=" in (await proxy.get("length=3")).cache_status
        assert standin_server.state.calls == 2


async def test_refresh_ahead_renews_a_window_s_buckets(standin_server: StandinServer) -> None:
    clock = ManualClock()
    async with proxy_in_process(
        standin_server.url, clock, windows=True, ttl_open_day=5, api_key="k", allow_anonymous=True
    ) as proxy:
        assert "fwd=miss" in (await proxy.get("length=3")).cache_status
        assert (await proxy.get("length=3")).cache_status.startswith("braze-proxy; hit")
        called = standin_server.state.calls  # the label probe and the widened fetch
        clock.advance(4.2)
        for _ in range(50):
            if standin_server.state.calls == called + 1:
                break
            await asyncio.sleep(0.05)
        assert standin_server.state.calls == called + 1
        clock.advance(1.0)
        after = await proxy.get("length=3")
        assert after.cache_status.startswith("braze-proxy; hit"), after.cache_status
        assert standin_server.state.calls == called + 1


async def test_refresh_ahead_is_skipped_when_the_clients_use_the_budget(standin_server: StandinServer) -> None:
    clock = ManualClock()
    settings = {**MANAGED, "ttl_open_day": 5, "rate_limit_per_hour": 3.6, "rate_limit_burst": 10}
    async with proxy_in_process(standin_server.url, clock, **settings) as proxy:
        assert "fwd=miss" in (await proxy.get("length=3", key="tok-a-xxxxxxxxxx")).cache_status
        assert (await proxy.get("length=3", key="tok-a-xxxxxxxxxx")).cache_status.startswith(
            "braze-proxy; hit"
        )  # planned
        for app_id in range(5):  # the team takes the bucket down to 4 tokens, below the headroom (5)
            assert (await proxy.get(f"{SESSIONS}&app_id={app_id}", key="tok-a-xxxxxxxxxx")).status == 200
        clock.advance(4.2)
        for _ in range(50):
            if await proxy.metric("braze_proxy_refresh_ahead_total", result="skipped") == 1:
                break
            await asyncio.sleep(0.05)
        assert await proxy.metric("braze_proxy_refresh_ahead_total", result="skipped") == 1
        assert standin_server.state.calls == 6  # no refresh: the entry expires as usual
