"""rendered.py: a hit's head as bytes made ahead, the same headers aiohttp would send, refused where it cannot be
made safely. Over a real connection (keep-alive, pipelining, HTTP/1.0, Connection: close):
tests/inprocess/test_rendered_hits.py."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.core.credentials import Credential
from proxy.core.entry import Entry
from proxy.core.query import Question
from proxy.http.memo import Resolved
from proxy.http.rendered import REQUEST_ID_FIELD, RenderedResponse, head_for, http_date, render_head, renderable


@given(st.integers(min_value=0, max_value=2**34))
def test_the_date_is_the_rfc_9110_date_of_that_second(second: int) -> None:
    text = http_date(second)
    assert text == time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(second))
    assert parsedate_to_datetime(text).timestamp() == second


def test_the_head_is_the_status_line_the_headers_and_the_request_id_last() -> None:
    head = render_head(200, [("Content-Type", "application/json"), ("Age", "3")], 42, 1_800_000_000)
    assert head == (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nAge: 3\r\nContent-Length: 42\r\n"
        b"Date: Fri, 15 Jan 2027 08:00:00 GMT\r\nX-Request-ID: "
    )
    assert head.endswith(REQUEST_ID_FIELD.encode())


@pytest.mark.parametrize("value", ["text/html\r\nSet-Cookie: a=b", "a\nb", "a\x00b", "a\x7fb"])
def test_a_value_with_a_control_character_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="control character"):
        render_head(200, [("Content-Type", value)], 0, 0)
    with pytest.raises(ValueError, match="control character"):
        render_head(200, [(value, "x")], 0, 0)


def test_a_tab_is_allowed_as_aiohttp_allows_it() -> None:
    assert b"X-A: a\tb\r\n" in render_head(200, [("X-A", "a\tb")], 0, 0)


@pytest.mark.parametrize(("status", "expected"), [(200, True), (404, True), (429, True), (500, True),
                                                  (204, False), (304, False), (101, False)])  # fmt: skip
def test_only_an_answer_with_a_body_is_rendered(status: int, expected: bool) -> None:
    assert renderable(status) is expected
    assert (head_for(status, [("Age", "1")], 0, 0) is not None) is expected


def test_what_render_head_refuses_has_no_head() -> None:
    assert head_for(200, [("Content-Type", "a\r\nb")], 0, 0) is None
    assert head_for(599, [], 0, 0) is None


def test_a_rendered_response_shows_its_headers_and_body_when_asked() -> None:
    head = render_head(200, [("Content-Type", "application/json"), ("Cache-Status", "braze-proxy; hit")], 2, 0)
    response = RenderedResponse(200, head, "rid-1", b"{}")
    assert response.status == 200 and response.keep_alive
    assert response.headers["Cache-Status"] == "braze-proxy; hit"
    assert response.headers["X-Request-ID"] == "rid-1"
    assert response.headers["Content-Length"] == "2"
    assert response.body == b"{}"


@pytest.mark.parametrize("status", [599, 999])
def test_an_unknown_status_is_refused(status: int) -> None:
    with pytest.raises(ValueError):
        render_head(status, [], 0, 0)


def test_a_value_that_is_not_latin_1_is_refused() -> None:
    with pytest.raises(ValueError):
        render_head(200, [("Content-Type", "application/json; name=\u2603")], 0, 0)


def test_a_remembered_head_is_rendered_again_when_anything_in_it_changes() -> None:
    """memo.Resolved keeps the last head: the same bytes while the entry, its TTL and age, the team's rates
    (replaced, never changed, when they change) and the second are the same; a new head when any of them is not."""
    entry = Entry(b'{"data":[]}', 200, "application/json", 1000.0, 1100.0, 1200.0)
    resolved = Resolved("k", cast(Question, None), cast(Credential, None), valid_until=2000.0)
    rates = {"X-RateLimit-Remaining": "10"}
    first = resolved.head(entry, 1010.2, rates, 1010)
    assert first is not None and resolved.head(entry, 1010.7, rates, 1010) is first
    assert b"Age: 10\r\n" in first and b"ttl=89" in first and b"X-RateLimit-Remaining: 10\r\n" in first
    assert resolved.head(entry, 1011.2, rates, 1011) != first  # a second later: Age, TTL and Date
    newer = {"X-RateLimit-Remaining": "9"}
    assert b"X-RateLimit-Remaining: 9\r\n" in (resolved.head(entry, 1011.3, newer, 1011) or b"")
    same_again = dict(newer)  # equal, but a new dict: rendered again, not trusted by value
    assert resolved.head(entry, 1011.4, same_again, 1011) == resolved.head(entry, 1011.4, newer, 1011)
    assert resolved.head(Entry(b"", 204, "application/json", 1000.0, 1100.0, 1200.0), 1011.5, rates, 1011) is None
