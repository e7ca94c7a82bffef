"""The token bucket's pure arithmetic (proxy/budget): bursts, refills, reservations and Braze's own figures.
The Lua scripts held to it on a real redis-server: tests/inprocess/test_bucket.py."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from proxy.core.bucket import BucketParams, BucketState, Decision, block_after_429, fresh_state, observe, reserve

T0 = 1_700_000_000.0
EPS = 1e-9

rates = st.floats(min_value=0.01, max_value=100.0, allow_nan=False)
capacities = st.integers(min_value=1, max_value=50)
max_waits = st.floats(min_value=0.0, max_value=5.0, allow_nan=False)
gaps = st.floats(min_value=0.0, max_value=5.0, allow_nan=False)


@st.composite
def params(draw: st.DrawFn) -> BucketParams:
    return BucketParams(draw(rates), float(draw(capacities)), draw(max_waits))


# --- pure arithmetic ----------------------------------------------------------------------------------------------


def test_per_hour_converts_to_tokens_per_second() -> None:
    p = BucketParams.per_hour(3600, 5, 2.0)
    assert (p.rate, p.capacity, p.max_wait) == (1.0, 5.0, 2.0)


@given(params())
def test_a_fresh_bucket_allows_its_burst_at_once(p: BucketParams) -> None:
    state = fresh_state(p, T0)
    for i in range(int(p.capacity)):
        decision, state = reserve(state, p, T0)
        assert decision.allowed and decision.wait == 0.0, i
    assert state.tokens == pytest.approx(0.0, abs=EPS)


@given(params())
def test_past_the_burst_tokens_are_reserved_ahead_up_to_max_wait_then_refused(p: BucketParams) -> None:
    state = replace(fresh_state(p, T0), tokens=0.0)
    waits = []
    for _ in range(10_000):
        decision, state = reserve(state, p, T0)
        if not decision.allowed:
            assert decision.reason == "tokens"
            assert decision.wait > 0
            break
        waits.append(decision.wait)
    else:
        pytest.fail("never refused")
    assert waits == sorted(waits), "reservations are served first come, first served"
    assert all(w <= p.max_wait + EPS for w in waits)
    # k reservations past an empty bucket wait k / rate each (up to float rounding at the edge).
    assert math.floor(p.max_wait * p.rate - 1e-9) <= len(waits) <= math.floor(p.max_wait * p.rate + 1e-9)


@given(params(), st.floats(min_value=0, max_value=10 * 86400.0), st.floats(min_value=-5, max_value=50))
def test_refill_after_idle_is_capped_at_the_burst(p: BucketParams, idle: float, tokens: float) -> None:
    tokens = min(tokens, p.capacity)
    state = BucketState(tokens=tokens, last=T0)
    decision, after = reserve(state, p, T0 + idle)
    expected = min(p.capacity, tokens + idle * p.rate)
    if decision.allowed:
        # T0 + idle rounds to the clock's resolution near 1.7e9 (~2.4e-7 s).
        assert after.tokens == pytest.approx(expected - 1, rel=1e-9, abs=1e-6 * p.rate)
        assert after.last == T0 + idle
    else:
        assert after == state, "a refusal changes nothing"
    assert decision.tokens <= p.capacity


@given(params(), st.lists(gaps, min_size=1, max_size=60))
@example(BucketParams(rate=26.0, capacity=1.0, max_wait=1.0), [0.0, 0.0])  # the second call's time rounds down
def test_calls_made_by_any_instant_never_exceed_burst_plus_rate_times_elapsed(
    p: BucketParams, deltas: list[float]
) -> None:
    """The conformance property: reserved calls happen at now + wait, and never faster than the bucket."""
    state = fresh_state(p, T0)
    now = T0
    due: list[float] = []
    for gap in deltas:
        now += gap
        decision, state = reserve(state, p, now)
        if decision.allowed:
            assert decision.wait <= p.max_wait + EPS
            due.append(now + decision.wait)
    due.sort()
    for i, at in enumerate(due):
        # now + wait rounds to the clock's resolution near 1.7e9 (math.ulp, ~2.4e-7 s): at a high rate that
        # is more than 1e-6 of a token (rate 26/s: 6e-6), so the slack is in time, not tokens.
        assert i + 1 <= p.capacity + p.rate * (at - T0 + math.ulp(at)) + 1e-6


@given(params(), st.floats(min_value=-3, max_value=0))
def test_a_refused_caller_is_allowed_once_its_retry_after_has_passed(p: BucketParams, tokens: float) -> None:
    state = BucketState(tokens=max(tokens, -p.max_wait * p.rate), last=T0)
    refused, _ = reserve(state, p, T0)
    if refused.allowed:
        return
    allowed, _ = reserve(state, p, T0 + refused.wait + 1e-5)
    assert allowed.allowed
    early, _ = reserve(state, p, T0 + refused.wait * 0.5)
    assert not early.allowed or refused.wait < 1e-5


@given(params(), st.floats(min_value=0.001, max_value=3600))
def test_a_block_after_429_refuses_until_it_ends(p: BucketParams, ahead: float) -> None:
    state = replace(fresh_state(p, T0), blocked_until=T0 + ahead)
    decision, after = reserve(state, p, T0)
    assert decision == Decision(False, p.capacity, pytest.approx(ahead, abs=1e-6), "blocked")
    assert after == state
    decision, _ = reserve(state, p, T0 + ahead)
    assert decision.allowed


@given(params(), st.integers(min_value=0, max_value=20), st.floats(min_value=1, max_value=3600))
def test_never_plans_past_what_braze_says_remains(p: BucketParams, remaining: int, ahead: float) -> None:
    p = replace(p, capacity=50.0, max_wait=0.0)
    state = observe(fresh_state(p, T0), remaining, T0 + ahead, None)
    allowed = 0
    for _ in range(60):
        decision, state = reserve(state, p, T0)
        if not decision.allowed:
            break
        allowed += 1
    assert allowed == min(remaining, 50)
    if remaining < 50:
        assert decision.reason == "braze"
        assert decision.wait == pytest.approx(ahead, abs=1e-6)
        # Braze's window rolled over: its old count no longer binds.
        assert reserve(state, p, T0 + ahead)[0].allowed


def test_observe_keeps_the_newest_window_and_the_lowest_count_within_it() -> None:
    s = fresh_state(BucketParams(1, 5, 0), T0)
    s = observe(s, 100, T0 + 60, None)
    assert (s.up_remaining, s.up_reset) == (100, T0 + 60)
    s = observe(s, 120, T0 + 60, None)  # an older answer of the same window, arriving late
    assert s.up_remaining == 100
    s = observe(s, 90, T0 + 60, None)
    assert s.up_remaining == 90
    s = observe(s, 500, T0 + 30, None)  # a previous window
    assert (s.up_remaining, s.up_reset) == (90, T0 + 60)
    s = observe(s, 499, T0 + 3660, None)  # the next window
    assert (s.up_remaining, s.up_reset) == (499, T0 + 3660)
    s = observe(s, None, T0 + 9999, None)  # a reset without a count says nothing
    assert (s.up_remaining, s.up_reset) == (499, T0 + 3660)


def test_observe_only_ever_extends_a_block() -> None:
    s = fresh_state(BucketParams(1, 5, 0), T0)
    s = observe(s, None, None, T0 + 10)
    s = observe(s, None, None, T0 + 5)
    assert s.blocked_until == T0 + 10
    assert observe(s, None, None, T0 + 20).blocked_until == T0 + 20


def test_block_after_429_prefers_reset_then_retry_after_then_backoff() -> None:
    assert block_after_429(T0 + 3, 10, 1, T0) == T0 + 3
    assert block_after_429(T0 - 3, 10, 1, T0) == T0 + 10  # a reset in the past is ignored
    assert block_after_429(None, 0, 1, T0) == T0 + 1
    assert [block_after_429(None, None, n, T0) - T0 for n in (0, 1, 2, 3, 4, 7, 30)] == [1, 1, 2, 4, 8, 60, 60]
