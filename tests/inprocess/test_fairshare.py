"""The fair-share Lua script held to the Python arithmetic on a real redis-server (the arithmetic alone:
tests/unit/test_fairshare.py)."""

from __future__ import annotations

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.core.bucket import BucketParams, BucketState, reserve
from proxy.core.fairshare import ShareParams, TeamView, decayed
from tests.inprocess.test_bucket import LuaBucket

# --- the Lua script against the arithmetic ----------------------------------------------------------------------


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    tokens=st.floats(min_value=0, max_value=10, allow_nan=False),
    usage=st.floats(min_value=0, max_value=50, allow_nan=False),
    others=st.floats(min_value=0, max_value=50, allow_nan=False),
    weight=st.sampled_from([1.0, 2.0, 3.0]),
    other_weight=st.sampled_from([1.0, 3.0]),
)
def test_lua_refuses_a_team_over_its_share_exactly_when_the_arithmetic_does(
    redis_client: redis.Redis, tokens: float, usage: float, others: float, weight: float, other_weight: float
) -> None:
    p = BucketParams(rate=0.001, capacity=10.0, max_wait=0.0)  # no refill to speak of during the test
    share = ShareParams.for_capacity(p.capacity)
    lua = LuaBucket(redis_client, p)
    key = "test:{budget:fair}"
    now = lua.now()
    redis_client.delete(key, key + ":teams", key + ":active")
    redis_client.hset(key, mapping={"tokens": repr(tokens), "ts": repr(now), "share_total": repr(usage + others),
                                    "share_at": repr(now), "active_weight": repr(weight + other_weight)})  # fmt: skip
    redis_client.hset(
        key + ":teams", mapping={"me": f"{usage!r} {now!r} {weight!r}", "you": f"0 {now!r} {other_weight!r}"}
    )
    redis_client.zadd(key + ":active", {"me": now, "you": now})
    t0 = lua.now()
    got = lua.reserve(key, team="me", weight=weight, headroom=share.headroom)
    t1 = lua.now()
    wants = []
    for t in (t0, t1):  # the script decided at an instant between these: usage had decayed that much
        u, total = decayed(usage, now, t, share.half_life), decayed(usage + others, now, t, share.half_life)
        view = TeamView(usage=u, total=total, weight=weight, active_weight=weight + other_weight)
        wants.append(reserve(BucketState(tokens=tokens, last=now), p, t, view, share)[0])
    assert (got.allowed, got.reason) in {(w.allowed, w.reason) for w in wants}
    if got.reason == "share":
        assert got.wait == pytest.approx(wants[0].wait, rel=1e-6)
    stored = float(redis_client.hget(key + ":teams", "me").decode().split()[0])
    spent = 1 if got.allowed else 0
    # Usage decays between `now` and the script's instant (longer on a busy machine): bound it by t0 and t1.
    low, high = (decayed(usage, now, t, share.half_life) + spent for t in (t1, t0))
    assert low - 1e-6 <= stored <= high + 1e-6, (low, stored, high)


def test_lua_forgets_teams_that_went_quiet(redis_client: redis.Redis) -> None:
    p = BucketParams(rate=1.0, capacity=10.0, max_wait=0.0)
    lua = LuaBucket(redis_client, p)
    key = "test:{budget:quiet}"
    now = lua.now()
    redis_client.delete(key, key + ":teams", key + ":active")
    redis_client.hset(key, mapping={"active_weight": "4"})
    redis_client.hset(key + ":teams", mapping={"old": f"3 {now - 60!r} 3", "me": f"0 {now!r} 1"})
    redis_client.zadd(key + ":active", {"old": now - 60, "me": now})
    assert lua.reserve(key, team="me", weight=1.0, headroom=5.0).allowed
    assert redis_client.hkeys(key + ":teams") == [b"me"]
    assert float(redis_client.hget(key, "active_weight") or 0) == pytest.approx(1.0)
    assert all(redis_client.pttl(k) > 0 for k in (key, key + ":teams", key + ":active"))
