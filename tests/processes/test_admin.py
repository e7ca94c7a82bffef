"""The admin API on a Redis Cluster of its own (real redis-server processes): purge, teams and refresh claims
reach every shard. The rest of the admin API: tests/inprocess/test_admin.py."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.inprocess.test_admin import MANAGED, SESSIONS, admin, standin_server
from tests.support.braze_standin import StandinServer
from tests.support.harness import proxy_in_process

__all__ = ["standin_server"]  # the fixture, shared with the in-process admin tests


async def test_purge_teams_and_refresh_claims_on_a_redis_cluster(standin_server: StandinServer, cluster: Any) -> None:
    settings = {**MANAGED, "redis_url": cluster.url()}
    async with (
        proxy_in_process(standin_server.url, **settings) as proxy,
        proxy_in_process(standin_server.url, **settings) as peer,
    ):
        for replica in (proxy, peer):
            for app_id in ("x", "y"):
                assert (await replica.get(f"{SESSIONS}&app_id={app_id}", key="tok-a-xxxxxxxxxx")).status == 200
        assert standin_server.state.calls == 2
        status, body = await admin(proxy, "POST", "/admin/purge", {"endpoint": "sessions", "filters": {"app_id": "x"}})
        assert (status, body) == (200, {"purged": 1})
        for _ in range(40):  # the peer's L1 copy goes with the notice (sharded pub/sub on a cluster)
            if "fwd=miss" in (await peer.get(f"{SESSIONS}&app_id=x", key="tok-a-xxxxxxxxxx")).cache_status:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the peer still answers the purged question from its L1")
        assert standin_server.state.calls == 3
        await proxy.components.day2.spending.sync()
        await peer.components.day2.spending.sync()
        await proxy.components.day2.spending.sync()
        teams = (await admin(proxy, "GET", "/admin/teams"))[1]["teams"]
        team_a = next(t for t in teams if t["team"] == "a" and t["group"] == "default")
        assert team_a["spent_this_hour"] == 3  # both replicas' calls, shared through the cluster
        assert (await admin(proxy, "GET", "/admin/cache"))[0] == 200


async def test_the_cache_listing_walks_every_primary_of_a_cluster(standin_server: StandinServer, cluster: Any) -> None:
    """Entries that one replica filled, listed a few at a time by another that answered none of them: every one
    is listed once, from all three primaries, the cursor naming the primary it goes on from."""
    settings = {**MANAGED, "redis_url": cluster.url()}
    app_ids = [f"listed-{i}" for i in range(12)]
    async with proxy_in_process(standin_server.url, **settings) as filler:
        for app_id in app_ids:
            assert (await filler.get(f"{SESSIONS}&app_id={app_id}", key="tok-a-xxxxxxxxxx")).status == 200
    async with proxy_in_process(standin_server.url, **settings) as lister:
        seen: list[dict[str, Any]] = []
        cursor, places = "", set()
        for _ in range(60):
            status, body = await admin(lister, "GET", f"/admin/cache?endpoint=sessions&limit=3&cursor={cursor}")
            assert status == 200 and len(body["items"]) <= 3
            seen += body["items"]
            if body["next_cursor"] is None:
                break
            cursor = body["next_cursor"]
            places.add(cursor.partition("-")[0])
        else:
            raise AssertionError("the listing did not end")
        listed = [item["filters"]["app_id"] for item in seen if item["kind"] == "entry"]
        assert sorted(a for a in listed if a.startswith("listed-")) == sorted(app_ids)  # each once
        assert places >= {"0", "1", "2"}  # the three primaries, in turn
        assert await admin(lister, "GET", "/admin/cache?cursor=7-0") == (200, {"items": [], "next_cursor": None})
        assert (await admin(lister, "GET", "/admin/cache?cursor=0-x"))[0] == 400
