"""Redis health's pure transitions (hysteresis). The probe against a real redis-server that stops and
recovers: tests/processes/test_health.py."""

from __future__ import annotations

from proxy.core.errors import StoreError
from proxy.redis.health import State, after_failure, after_probe


def test_a_refused_write_degrades_writes_and_anything_else_is_down() -> None:
    assert after_failure("up", refused_write=True) == "degraded_writes"
    assert after_failure("degraded_writes", refused_write=True) == "degraded_writes"
    assert after_failure("down", refused_write=True) == "down"
    for state in ("up", "degraded_writes", "down"):
        assert after_failure(state, refused_write=False) == "down"  # type: ignore[arg-type]


async def test_a_busy_process_says_nothing_about_redis() -> None:
    from proxy.redis.health import RedisHealth

    async def fine() -> None:
        return None

    seen: list[State] = []
    health = RedisHealth(fine, fine, seen.append)
    health.failed(StoreError("redis: every connection of this process stayed busy", busy=True))
    assert health.state == "up" and seen == ["up"]
    health.failed(StoreError("redis: TimeoutError"))
    assert health.state == "down"
    await health.close()


def test_recovery_takes_several_good_probes_in_a_row() -> None:
    state: State = "down"
    streak = 0
    for _ in range(2):
        state, streak = after_probe(state, streak, reachable=True, writable=True, needed=3)
        assert state == "down"
    state, streak = after_probe(state, streak, reachable=False, writable=False, needed=3)
    assert (state, streak) == ("down", 0), "one bad probe starts the count again"
    for _ in range(3):
        state, streak = after_probe(state, streak, reachable=True, writable=True, needed=3)
    assert state == "up"


def test_a_reachable_redis_that_refuses_writes_recovers_only_to_degraded_writes() -> None:
    state: State = "down"
    streak = 0
    for _ in range(3):
        state, streak = after_probe(state, streak, reachable=True, writable=False, needed=3)
    assert state == "degraded_writes"
    state, streak = after_probe(state, streak, reachable=True, writable=True, needed=3)
    assert state == "degraded_writes", "one good write is not yet a recovery"
    state, streak = after_probe(state, streak, reachable=False, writable=False, needed=3)
    assert state == "down", "worse at once"
