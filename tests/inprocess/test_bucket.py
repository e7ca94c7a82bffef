"""The token bucket: the pure arithmetic of proxy/bucket.py, and lua/token_bucket.lua + observe.lua held to it.

The Lua scripts run on a real redis-server with Redis's own clock (TIME). A script's `now` is bracketed by
TIME read just before and just after it runs; the Python arithmetic evaluated at both ends must agree with
what the script decided and stored.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.core.bucket import BucketParams, BucketState, Decision, observe, reserve

T0 = 1_700_000_000.0

rates = st.floats(min_value=0.01, max_value=100.0, allow_nan=False)
capacities = st.integers(min_value=1, max_value=50)
max_waits = st.floats(min_value=0.0, max_value=5.0, allow_nan=False)


@st.composite
def params(draw: st.DrawFn) -> BucketParams:
    return BucketParams(draw(rates), float(draw(capacities)), draw(max_waits))


# --- the Lua scripts against the Python arithmetic, on a real redis-server -------------------------------------


def _lua(name: str) -> str:
    return resources.files("proxy").joinpath("lua", name).read_text()


class LuaBucket:
    """Runs the shipped scripts with a sync client, and reads the hash back as a BucketState."""

    def __init__(self, client: redis.Redis, p: BucketParams) -> None:
        self.client = client
        self.p = p
        self.take = client.register_script(_lua("token_bucket.lua"))
        self.observe = client.register_script(_lua("observe.lua"))

    def now(self) -> float:
        seconds, micros = self.client.time()
        return seconds + micros / 1e6

    def seed(self, key: str, state: BucketState) -> None:
        fields: dict[str, Any] = {"tokens": repr(state.tokens), "ts": repr(state.last)}
        fields["blocked_until"] = repr(state.blocked_until)
        if state.up_remaining is not None and state.up_reset is not None:
            fields |= {"up_remaining": repr(state.up_remaining), "up_reset": repr(state.up_reset)}
        self.client.delete(key)
        self.client.hset(key, mapping=fields)

    def reserve(self, key: str, team: str = "", weight: float = 1.0, headroom: float = 0.0) -> Decision:
        p = self.p
        args = [repr(p.rate), repr(p.capacity), repr(p.max_wait), 60_000, team, repr(weight), 5.0, 15.0, headroom, 100]
        allowed, tokens, seconds, reason = self.take(keys=[key, key + ":teams", key + ":active"], args=args)
        return Decision(bool(allowed), float(tokens), float(seconds), reason.decode())

    def state(self, key: str) -> BucketState:
        raw = {k.decode(): float(v) for k, v in self.client.hgetall(key).items()}
        return BucketState(
            tokens=raw["tokens"],
            last=raw["ts"],
            blocked_until=raw.get("blocked_until", 0.0),
            up_remaining=raw.get("up_remaining"),
            up_reset=raw.get("up_reset"),
        )


def _assert_bracketed(lua: Decision, before: Decision, after: Decision, p: BucketParams) -> None:
    """The script decided at some instant between `before` and `after`: it agrees with one of them."""
    assert (lua.allowed, lua.reason) in {(before.allowed, before.reason), (after.allowed, after.reason)}
    slack = 1e-3 * max(1.0, p.rate)
    if lua.allowed:
        low, high = sorted((before.tokens, after.tokens))
        assert low - slack <= lua.tokens <= high + slack
    if (lua.allowed, lua.reason) == (before.allowed, before.reason) == (after.allowed, after.reason):
        low, high = sorted((before.wait, after.wait))
        assert low - slack <= lua.wait <= high + slack


offsets = st.one_of(st.just(None), st.floats(min_value=-30, max_value=30, allow_nan=False))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    p=params(),
    tokens=st.floats(min_value=-10, max_value=50, allow_nan=False),
    idle=st.floats(min_value=0, max_value=7200, allow_nan=False),
    blocked=offsets,
    up_remaining=st.one_of(st.just(None), st.integers(min_value=0, max_value=3)),
    up_reset=st.floats(min_value=-30, max_value=30, allow_nan=False),
)
def test_lua_reserve_matches_the_python_arithmetic(
    redis_client: redis.Redis,
    p: BucketParams,
    tokens: float,
    idle: float,
    blocked: float | None,
    up_remaining: int | None,
    up_reset: float,
) -> None:
    lua = LuaBucket(redis_client, p)
    key = "test:{budget:prop}"
    start = lua.now()
    state = BucketState(
        tokens=max(min(tokens, p.capacity), -p.max_wait * p.rate - 1),
        last=start - idle,
        blocked_until=0.0 if blocked is None else start + blocked,
        up_remaining=None if up_remaining is None else float(up_remaining),
        up_reset=None if up_remaining is None else start + up_reset,
    )
    lua.seed(key, state)
    t0 = lua.now()
    got = lua.reserve(key)
    t1 = lua.now()
    before, state_before = reserve(state, p, t0)
    after, state_after = reserve(state, p, t1)
    _assert_bracketed(got, before, after, p)
    stored = lua.state(key)
    if got.allowed:
        # The script stored its own `now`: the arithmetic at that instant gives the same tokens.
        assert t0 - 1e-3 <= stored.last <= t1 + 1e-3
        refilled = min(p.capacity, state.tokens + max(0.0, stored.last - state.last) * p.rate)
        assert stored.tokens == pytest.approx(refilled - 1, abs=1e-6 * max(1.0, p.rate))
        spent = {s.up_remaining for s, d in ((state_before, before), (state_after, after)) if d.allowed}
        assert stored.up_remaining in spent
        assert stored.blocked_until == state.blocked_until
        assert redis_client.pttl(key) > 0, "an idle bucket expires"
    else:
        assert stored == state, "a refusal writes nothing"


def test_lua_allows_the_burst_then_reserves_then_refuses(redis_client: redis.Redis) -> None:
    p = BucketParams(rate=0.5, capacity=5, max_wait=2.0)  # 2 s of waiting is one more token
    lua = LuaBucket(redis_client, p)
    key = "test:{budget:burst}"
    decisions = [lua.reserve(key) for _ in range(8)]
    assert [d.allowed for d in decisions] == [True] * 6 + [False] * 2
    assert [d.wait for d in decisions[:5]] == [0.0] * 5
    assert decisions[5].wait == pytest.approx(2.0, abs=0.05)
    assert decisions[6].reason == "tokens"
    assert decisions[6].wait == pytest.approx(2.0, abs=0.05)  # one more token is 2 s past the longest wait
    assert lua.state(key).tokens == pytest.approx(-1.0, abs=0.05)


def test_lua_refills_after_idle_and_caps_at_the_burst(redis_client: redis.Redis) -> None:
    p = BucketParams(rate=1.0, capacity=5, max_wait=0.0)
    lua = LuaBucket(redis_client, p)
    now = lua.now()
    lua.seed("test:{budget:idle}", BucketState(tokens=0.0, last=now - 2.5))
    assert lua.reserve("test:{budget:idle}").tokens == pytest.approx(1.5, abs=0.05)
    lua.seed("test:{budget:capped}", BucketState(tokens=-1.0, last=now - 3600))
    assert lua.reserve("test:{budget:capped}").tokens == pytest.approx(4.0, abs=1e-9)


def test_lua_blocks_every_caller_until_the_block_ends(redis_client: redis.Redis) -> None:
    p = BucketParams(rate=100.0, capacity=50, max_wait=0.0)
    lua = LuaBucket(redis_client, p)
    key = "test:{budget:blocked}"
    lua.observe(keys=[key], args=["", "", repr(lua.now() + 3.0), 60_000])
    refused = lua.reserve(key)
    assert (refused.allowed, refused.reason) == (False, "blocked")
    assert refused.wait == pytest.approx(3.0, abs=0.1)


observations = st.tuples(
    st.one_of(st.just(None), st.integers(min_value=0, max_value=1000)),
    # Fractions matter: a reset rounded on the way into Redis would no longer equal the same window's next one.
    st.one_of(st.just(None), st.sampled_from([T0 + 60, T0 + 60.123456, T0 + 120.5, T0 + 3600])),
    st.one_of(st.just(None), st.sampled_from([T0 + 1, T0 + 3.000001, T0 + 30.25])),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(observations, min_size=1, max_size=8))
def test_lua_observe_matches_the_python_arithmetic(
    redis_client: redis.Redis, seen: list[tuple[int | None, float | None, float | None]]
) -> None:
    """observe.lua has no clock: any sequence of Braze answers leaves exactly the state bucket.observe computes."""
    lua = LuaBucket(redis_client, BucketParams(1, 5, 0))
    key = "test:{budget:observe}"
    redis_client.delete(key)
    redis_client.hset(key, mapping={"tokens": "5", "ts": repr(T0)})
    state = BucketState(tokens=5.0, last=T0)
    for remaining, reset, blocked in seen:
        args = ["" if v is None else repr(float(v)) for v in (remaining, reset, blocked)]
        lua.observe(keys=[key], args=[*args, 60_000])
        state = observe(state, None if remaining is None else float(remaining), reset, blocked)
    assert lua.state(key) == state
