"""Cache-Status (RFC 9211), directly: one value rendered in one place, in the RFC's order, and each error's own
status. The kind doubles as the `cache` metric label, so it stays within a fixed set."""

from __future__ import annotations

from typing import get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.core.cache_status import BYPASS, CACHE_NAME, HEADER, CacheStatus, Kind
from proxy.core.errors import InvalidRequest, RateLimited, UpstreamError


def test_the_header_and_the_cache_name() -> None:
    assert HEADER == "Cache-Status"
    assert CACHE_NAME == "braze-proxy"


@pytest.mark.parametrize(
    ("status", "rendered"),
    [
        (CacheStatus("hit", ttl=39), "braze-proxy; hit; ttl=39"),
        (CacheStatus("miss", fwd="miss", fwd_status=200, stored=True), "braze-proxy; fwd=miss; fwd-status=200; stored"),
        (CacheStatus("stale", fwd="stale", ttl=-5, detail="x"), "braze-proxy; fwd=stale; ttl=-5; detail=x"),
        (
            CacheStatus("collapsed", fwd="miss", fwd_status=200, collapsed=True),
            "braze-proxy; fwd=miss; fwd-status=200; collapsed",
        ),
        (BYPASS, "braze-proxy; fwd=bypass"),
        (CacheStatus("error", fwd="miss", detail="budget-spent"), "braze-proxy; fwd=miss; detail=budget-spent"),
        (CacheStatus("miss"), "braze-proxy"),
    ],
)
def test_each_status_renders_its_parameters_in_order(status: CacheStatus, rendered: str) -> None:
    assert status.render() == rendered


def test_a_ttl_of_zero_is_said_not_dropped() -> None:
    assert CacheStatus("hit", ttl=0).render() == "braze-proxy; hit; ttl=0"


def test_only_a_hit_says_hit() -> None:
    for kind in get_args(Kind):
        assert ("; hit" in CacheStatus(kind).render()) == (kind == "hit")


@given(
    kind=st.sampled_from(get_args(Kind)),
    fwd=st.sampled_from([None, "miss", "stale", "bypass"]),
    fwd_status=st.none() | st.integers(100, 599),
    ttl=st.none() | st.integers(-86_400, 86_400),
    stored=st.booleans(),
    collapsed=st.booleans(),
    detail=st.none() | st.sampled_from(["stale-if-error", "budget-spent", "braze-rate-limited"]),
)
def test_every_rendering_is_the_name_then_known_parameters_in_order(
    kind: Kind,
    fwd: str | None,
    fwd_status: int | None,
    ttl: int | None,
    stored: bool,
    collapsed: bool,
    detail: str | None,
) -> None:
    status = CacheStatus(kind, fwd, fwd_status, ttl, stored, collapsed, detail)  # type: ignore[arg-type]
    parts = status.render().split("; ")
    assert parts[0] == CACHE_NAME
    names = [p.split("=", 1)[0] for p in parts[1:]]
    order = ["hit", "fwd", "fwd-status", "ttl", "stored", "collapsed", "detail"]
    assert names == sorted(names, key=order.index)
    assert ("fwd" in names) == (fwd is not None) and ("ttl" in names) == (ttl is not None)
    assert ("stored" in names) == stored and ("collapsed" in names) == collapsed


def test_errors_carry_their_own_cache_status() -> None:
    assert InvalidRequest().cache_status() == BYPASS  # never looked at the cache
    assert RateLimited(3.0).cache_status().render() == "braze-proxy; fwd=miss; detail=budget-spent"
    assert UpstreamError("boom").cache_status().kind == "error"
