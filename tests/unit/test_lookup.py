"""The lookup decisions (proxy/core/lookup.py), directly: what to do with what the cache holds, what may rescue
a failed fill, and the answer each outcome gives. No I/O: `now` is passed in."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.core.cache_status import CacheStatus
from proxy.core.entry import Entry
from proxy.core.errors import (
    InvalidRequest,
    ProxyError,
    RateLimited,
    RelayedError,
    Unavailable,
    UpstreamError,
    UpstreamTimeout,
)
from proxy.core.lookup import Fill, Revalidate, Serve, forwarded, hit, next_step, rescue, stale

STORED = 1_000.0
FRESH = 60.0  # fresh until STORED + FRESH
STALE = 3_600.0  # usable until STORED + STALE


def entry(status: int = 200, link: str = "") -> Entry:
    return Entry(b'{"data":[]}', status, "application/json", STORED, STORED + FRESH, STORED + STALE, link)


def test_nothing_found_is_filled_with_nothing_to_rescue_it() -> None:
    assert next_step(None, STORED, swr_seconds=30) == Fill(None)


def test_a_fresh_entry_is_served_up_to_the_last_instant_of_its_freshness() -> None:
    e = entry()
    assert next_step(e, STORED, swr_seconds=30) == Serve(e)
    assert next_step(e, STORED + FRESH - 0.001, swr_seconds=30) == Serve(e)
    assert next_step(e, STORED + FRESH, swr_seconds=30) != Serve(e)  # fresh_until is the first stale instant


def test_within_stale_while_revalidate_the_entry_is_served_while_one_refresh_runs() -> None:
    e = entry()
    assert next_step(e, STORED + FRESH, swr_seconds=30) == Revalidate(e)
    assert next_step(e, STORED + FRESH + 29.9, swr_seconds=30) == Revalidate(e)
    assert next_step(e, STORED + FRESH + 30, swr_seconds=30) == Fill(e)  # past it: filled, the entry kept to rescue


def test_without_stale_while_revalidate_a_stale_entry_is_filled_and_kept_for_a_rescue() -> None:
    e = entry()
    assert next_step(e, STORED + FRESH, swr_seconds=0) == Fill(e)


def test_an_entry_past_its_stale_window_is_filled_with_nothing_to_rescue_it() -> None:
    e = entry()
    assert next_step(e, STORED + STALE, swr_seconds=0) == Fill(None)
    # a stale-while-revalidate longer than the stale window never serves what may no longer be served
    assert next_step(e, STORED + STALE, swr_seconds=10 * STALE) == Fill(None)


@given(now=st.floats(0, 10 * STALE, allow_nan=False), swr=st.floats(0, 10 * STALE, allow_nan=False))
def test_a_step_never_serves_an_entry_that_is_no_longer_usable(now: float, swr: float) -> None:
    e = entry()
    step = next_step(e, now, swr)
    if isinstance(step, Serve):
        assert e.is_fresh(now)
    elif isinstance(step, Revalidate):
        assert not e.is_fresh(now) and e.is_usable(now) and now < e.fresh_until + swr
    else:
        assert step.stale is None or (step.stale.is_usable(now) and not step.stale.is_fresh(now))
        assert step.stale is not None or not e.is_usable(now)


@pytest.mark.parametrize(
    ("error", "rescues"),
    [
        (UpstreamError("boom", upstream_status=502), True),
        (UpstreamTimeout(), True),
        (RateLimited(5.0), True),
        (Unavailable(), True),
        (RelayedError(503, b"{}", None), True),
        (InvalidRequest(), False),  # the client's own mistake is answered, never papered over
        (ProxyError(), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_a_failed_fill_is_rescued_by_a_usable_stale_entry_only_if_the_error_allows(
    error: ProxyError, rescues: bool
) -> None:
    e = entry()
    assert rescue(e, error, STORED + FRESH + 1) == (e if rescues else None)


def test_nothing_rescues_once_the_stale_window_is_over_or_without_an_entry() -> None:
    assert rescue(entry(), UpstreamTimeout(), STORED + STALE) is None
    assert rescue(None, UpstreamTimeout(), STORED + FRESH + 1) is None


def test_a_hit_carries_the_entry_its_age_and_the_seconds_of_freshness_left() -> None:
    e = entry(link='<https://x/next>; rel="next"')
    answer = hit(e, STORED + 20.6)
    assert (answer.status, answer.body, answer.content_type, answer.link) == (200, e.body, e.content_type, e.link)
    assert answer.age == 20
    assert answer.cache_status == CacheStatus("hit", ttl=39)
    assert answer.cache_status.render() == "braze-proxy; hit; ttl=39"
    assert hit(e, STORED, detail="window").cache_status.detail == "window"


def test_a_stale_answer_says_how_stale_and_why() -> None:
    e = entry()
    answer = stale(e, STORED + FRESH + 10, "stale-if-error", fwd_status=503)
    assert answer.body == e.body and answer.age == int(FRESH + 10)
    assert answer.cache_status.render() == "braze-proxy; fwd=stale; fwd-status=503; ttl=-10; detail=stale-if-error"


@pytest.mark.parametrize(
    ("had_stale", "stored", "collapsed", "rendered"),
    [
        (False, True, False, "braze-proxy; fwd=miss; fwd-status=200; stored"),
        (True, True, False, "braze-proxy; fwd=stale; fwd-status=200; stored"),
        (False, False, False, "braze-proxy; fwd=miss; fwd-status=200"),
        (False, True, True, "braze-proxy; fwd=miss; fwd-status=200; collapsed"),  # a joiner stored nothing itself
        (True, False, True, "braze-proxy; fwd=stale; fwd-status=200; collapsed"),
    ],
)
def test_a_forwarded_answer_is_brazes_status_and_bytes_with_how_it_was_had(
    had_stale: bool, stored: bool, collapsed: bool, rendered: str
) -> None:
    e = entry()
    answer = forwarded(e, had_stale=had_stale, stored=stored, collapsed=collapsed)
    assert (answer.status, answer.body, answer.age) == (200, e.body, None)  # no Age: it is not from the cache
    assert answer.cache_status.render() == rendered
    assert answer.cache_status.kind == ("collapsed" if collapsed else "miss")
