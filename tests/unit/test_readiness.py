"""/readyz decided purely (proxy/http/lifecycle.py `readiness`): draining and starting come first; on Redis,
up is ready, writes refused is degraded, and an outage is a 503 unless the outage policy keeps answering."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.http.lifecycle import ReadinessInputs, readiness
from proxy.redis.health import State


def inputs(**values: Any) -> ReadinessInputs:
    base: dict[str, Any] = {
        "started": True,
        "draining": False,
        "store": "redis",
        "redis": "up",
        "redis_seen": True,
        "fail_open": False,
    }
    return ReadinessInputs(**{**base, **values})


def test_a_draining_process_is_not_ready_whatever_else_holds() -> None:
    assert readiness(inputs(draining=True)) == (503, {"status": "draining"})
    assert readiness(ReadinessInputs.not_started(draining=True)) == (503, {"status": "draining"})


def test_before_the_components_are_built_it_is_starting() -> None:
    assert readiness(ReadinessInputs.not_started(draining=False)) == (503, {"status": "starting"})


def test_the_memory_store_is_ready_whatever_redis_says() -> None:
    status, body = readiness(inputs(store="memory", redis="down", redis_seen=False, details={"workers": 2}))
    assert (status, body) == (200, {"status": "ready", "store": "memory", "workers": 2})


def test_details_never_replace_the_verdict() -> None:
    details = {"status": "ready", "store": "memory", "redis": "up", "windows": {"checked": 3}}
    status, body = readiness(inputs(redis="down", redis_seen=True, fail_open=False, details=details))
    assert status == 503
    assert body == {"status": "unavailable", "store": "redis", "windows": {"checked": 3}, "redis": "down"}


@pytest.mark.parametrize(
    ("redis", "seen", "fail_open", "status", "word"),
    [
        ("up", True, False, 200, "ready"),
        ("degraded_writes", True, False, 200, "degraded"),  # reads work: serving
        ("down", False, False, 503, "starting"),  # never answered yet: still starting
        ("down", False, True, 503, "starting"),  # fail-open does not make a never-seen Redis ready
        ("down", True, True, 200, "degraded"),  # an outage the policy answers through
        ("down", True, False, 503, "unavailable"),
    ],
)
def test_on_redis_the_answer_follows_its_health_and_the_outage_policy(
    redis: State, seen: bool, fail_open: bool, status: int, word: str
) -> None:
    got_status, body = readiness(inputs(redis=redis, redis_seen=seen, fail_open=fail_open))
    assert (got_status, body["status"]) == (status, word)
    assert body["store"] == "redis" and body["redis"] == redis


def test_the_windows_details_are_passed_on_once_started() -> None:
    details = {"windows": {"zone": "UTC", "checked": True}}
    for redis, seen in (("up", True), ("degraded_writes", True), ("down", False), ("down", True)):
        assert readiness(inputs(redis=redis, redis_seen=seen, details=details))[1]["windows"] == details["windows"]
    assert "windows" not in readiness(inputs(draining=True, details=details))[1]
