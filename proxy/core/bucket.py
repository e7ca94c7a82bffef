"""Pure token-bucket arithmetic with reservations, plus what Braze told us. Mirrors lua/token_bucket.lua.

A caller that would have to wait at most `max_wait` reserves its token now (tokens may go below zero)
and sleeps the returned wait: one decision per request, no polling, first come first served.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from proxy.core.fairshare import ShareParams, TeamView, over_share, share_wait

UNDER_SHARE_WAIT = 2.0  # a team under its share (sharing the budget) may wait this many times max_wait
MAX_BLOCK = 3600.0  # Braze's window is an hour: no block outlasts it
BOGUS_AFTER = 86400.0  # a reset further ahead than this is not Braze's hourly window


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
    # refused: "tokens" (our bucket), "share" (the team is over its share), "braze" (Braze's remaining), "blocked"
    # (after a 429)
    reason: str = ""


def fresh_state(params: BucketParams, now: float) -> BucketState:
    return BucketState(tokens=params.capacity, last=now)


def reserve(
    state: BucketState, params: BucketParams, now: float, team: TeamView | None = None, share: ShareParams | None = None
) -> tuple[Decision, BucketState]:
    """Take one token for a call at `now` (or reserve one within max_wait). With `team` and `share`, a team over
    its share is refused once the bucket is down to the headroom (fairshare.py)."""
    if now < state.blocked_until:
        return Decision(False, state.tokens, state.blocked_until - now, "blocked"), state
    braze_window = state.up_remaining is not None and state.up_reset is not None and now < state.up_reset
    if braze_window and state.up_remaining is not None and state.up_reset is not None and state.up_remaining < 1:
        return Decision(False, state.tokens, state.up_reset - now, "braze"), state
    tokens = min(params.capacity, state.tokens + max(0.0, now - state.last) * params.rate)
    longest = params.max_wait
    if team is not None and share is not None:
        if over_share(team):
            if tokens < share.headroom + 1:
                return Decision(False, tokens, share_wait(params.rate, team), "share"), state
        elif team.active_weight > team.weight:
            longest *= UNDER_SHARE_WAIT  # other teams' reservations are ahead of it: it may wait behind them
    after = tokens - 1
    wait = -after / params.rate if after < 0 else 0.0
    if wait > longest:
        return Decision(False, tokens, wait - longest, "tokens"), state
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
    """Until when nobody may call after Braze answered 429 (epoch seconds), never past Braze's hour.

    Braze's X-RateLimit-Reset when it lies ahead, else Retry-After, else an exponential backoff
    (1, 2, 4 ... 60 s) on the count of consecutive 429s.
    """
    if reset is not None and reset > now:
        until = reset
    elif retry_after is not None and retry_after > 0:
        until = now + retry_after
    else:
        until = now + min(60.0, 2.0 ** max(0, streak - 1))
    return min(until, now + MAX_BLOCK)


def sane_reset(reset: float | None, now: float) -> tuple[float | None, bool]:
    """Braze's X-RateLimit-Reset (epoch seconds) if it is believable, and whether it was not.

    A reset more than a day ahead is bogus: read as milliseconds if that makes it sensible (then it has
    usually passed already and blocks nothing), else ignored.
    """
    if reset is None or reset <= now + BOGUS_AFTER:
        return reset, False
    as_seconds = reset / 1000.0
    if now - BOGUS_AFTER <= as_seconds <= now + BOGUS_AFTER:
        return as_seconds, True
    return None, True
