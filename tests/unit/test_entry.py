"""Pure: the cached entry and its wire format."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from proxy.core.entry import Entry, decode, encode


def test_round_trip_keeps_exact_bytes() -> None:
    body = b'{"message":"success","data":[{"time":"2018-06-28","sessions":1}]}\n'
    entry = Entry(body, 200, "application/json; charset=utf-8", 100.0, 160.0, 3700.0)
    assert decode(encode(entry)) == entry


@given(
    st.binary(max_size=2048),
    st.integers(100, 599),
    st.floats(0, 4e9, allow_nan=False).map(lambda f: round(f, 3)),
    st.text(st.characters(blacklist_characters="\n|", codec="ascii"), max_size=40),
)
def test_any_body_round_trips(body: bytes, status: int, stored: float, ctype: str) -> None:
    # Times are kept to the millisecond: the test's own sums are rounded there too (1.562 + 1 is 2.5620000000000003).
    entry = Entry(body, status, ctype, stored, round(stored + 1, 3), round(stored + 2, 3))
    assert decode(encode(entry)) == entry


def test_foreign_bytes_are_a_miss_not_an_answer() -> None:
    for data in (b"", b"{}", b"E1|", b"E1|200|x|y|z|application/json\n{}", b"E2|200|1|2|3|a\nbody", "E1|junk"):
        assert decode(data) is None


def test_freshness_and_age() -> None:
    entry = Entry(b"{}", 200, "application/json", 100.0, 160.0, 3700.0)
    assert entry.is_fresh(159.9) and not entry.is_fresh(160.0)
    assert entry.is_usable(3699.0) and not entry.is_usable(3700.0)
    assert entry.age(130.7) == 30 and entry.ttl(130.7) == 29 and entry.ttl(200) == 0
