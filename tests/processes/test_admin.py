"""The admin API on a Redis Cluster of its own (real redis-server processes): purge, teams and refresh claims
reach every shard. The rest of the admin API: tests/inprocess/test_admin.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.braze_standin import StandinServer
from tests.support.harness import InProcessProxy, proxy_in_process, standin_in_process

ADMIN = "admin-token-0123456789"
SESSIONS = "length=3&ending_at=2020-01-01T00:00:00Z"  # settled: cached a day
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
