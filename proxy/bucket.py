"""Pure token-bucket arithmetic with reservations, plus what Braze told us. Mirrors lua/token_bucket.lua.

A caller that would have to wait at most `max_wait` reserves its token now (tokens may go below zero)
and sleeps the returned wait: one decision per request, no polling, first come first served.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class BucketParams:
    rate: float  # tokens per second
    capacity: float  # burst
    max_wait: float  # seconds

    @classmethod
    def per_hour(cls, per_hour: float, burst: int, max_wait: float) -> BucketParams:
        return cls(per_hour / 3600.0, float(burst), max_wait)


@dataclass(frozen=True, slots=True)
class BucketState:
    tokens: float
    last: float  # when tokens was computed, epoch seconds
    blocked_until: float = 0.0  # Braze answered 429: nobody calls before this
    up_remaining: float | None = None  # Braze's X-RateLimit-Remaining, minus what we spent since
    up_reset: float | None = None  # Braze's X-RateLimit-Reset


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    tokens: float  # left after this decision (may be negative: reserved ahead)
    wait: float  # allowed: sleep this long first; refused: retry after this long
    reason: str = ""  # refused: "tokens" (our bucket), "braze" (Braze's remaining), "blocked" (after a 429)


def fresh_state(params: BucketParams, now: float) -> BucketState:
    return BucketState(tokens=params.capacity, last=now)


def reserve(state: BucketState, params: BucketParams, now: float) -> tuple[Decision, BucketState]:
    """Take one token for a call at `now` (or reserve one within max_wait)."""
    if now < state.blocked_until:
        return Decision(False, state.tokens, state.blocked_until - now, "blocked"), state
    braze_window = state.up_remaining is not None and state.up_reset is not None and now < state.up_reset
    if braze_window and state.up_remaining is not None and state.up_reset is not None and state.up_remaining < 1:
        return Decision(False, state.tokens, state.up_reset - now, "braze"), state
    tokens = min(params.capacity, state.tokens + max(0.0, now - state.last) * params.rate)
    after = tokens - 1
    wait = -after / params.rate if after < 0 else 0.0
    if wait > params.max_wait:
        return Decision(False, tokens, wait - params.max_wait, "tokens"), state
    spent = state.up_remaining - 1 if braze_window and state.up_remaining is not None else state.up_remaining
    return Decision(True, after, wait), replace(state, tokens=after, last=now, up_remaining=spent)


def observe(
    state: BucketState, remaining: float | None, reset: float | None, blocked_until: float | None
) -> BucketState:
    """Fold in Braze's rate-limit headers (and a 429's block). Mirrors lua/observe.lua."""
    if remaining is not None and reset is not None:
        if state.up_reset is None or reset > state.up_reset:
            state = replace(state, up_remaining=remaining, up_reset=reset)
        elif reset == state.up_reset:
            known = state.up_remaining if state.up_remaining is not None else remaining
            state = replace(state, up_remaining=min(known, remaining))
    if blocked_until is not None and blocked_until > state.blocked_until:
        state = replace(state, blocked_until=blocked_until)
    return state


def block_after_429(reset: float | None, retry_after: float | None, streak: int, now: float) -> float:
    """Until when nobody may call after Braze answered 429 (epoch seconds).

    Braze's X-RateLimit-Reset when it lies ahead, else Retry-After, else an exponential backoff
    (1, 2, 4 ... 60 s) on the count of consecutive 429s.
    """
    if reset is not None and reset > now:
        return reset
    if retry_after is not None and retry_after > 0:
        return now + retry_after
    return now + min(60.0, 2.0 ** max(0, streak - 1))
