"""The stand-in and redis-server as processes: each restarts on the same port. The stand-in served in process:
tests/inprocess/test_standin.py; its pure parts: tests/unit/test_standin.py."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import aiohttp
import pytest
import redis

from tests.inprocess.test_standin import client, standin_server
from tests.support.braze_standin import StandinServer
from tests.support.external_tools import require_tool
from tests.support.procs import (
    RedisServer,
    StandinProcess,
    http_get_json,
    http_post_json,
)

PATH = "/sessions/data_series"


__all__ = ["client", "standin_server"]  # the fixtures, shared with the in-process stand-in tests


async def stats(client: aiohttp.ClientSession, server: StandinServer) -> Any:
    async with client.get(f"{server.url}/_standin/stats") as response:
        return await response.json()


def test_standin_as_a_process_restarts_on_the_same_port() -> None:
    with StandinProcess() as standin_server:
        request = urllib.request.Request(
            f"{standin_server.url}{PATH}?length=2&ending_at=2018-06-28", headers={"Authorization": "Bearer key-a"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            body = response.read()
        assert json.loads(body)["message"] == "success"
        assert http_post_json(f"{standin_server.url}/_standin/config", {"fail_status": 503})["fail_count"] == -1
        with pytest.raises(urllib.error.HTTPError) as failed:
            urllib.request.urlopen(request, timeout=5)
        failed.value.close()
        assert http_get_json(f"{standin_server.url}/_standin/stats")["calls_by_status"] == {"200": 1, "503": 1}
        assert standin_server.terminate() == 0
        with pytest.raises(urllib.error.URLError):
            http_get_json(f"{standin_server.url}/_standin/stats")
        port = standin_server.port
        standin_server.start()
        assert standin_server.port == port
        assert standin_server.stats()["calls"] == 0
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.read() == body  # deterministic across processes
    assert "READY" in standin_server.logs()


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
