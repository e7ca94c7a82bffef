"""Pure: how long a parsed request stays valid (the bucket boundary), and the bounded memo built on it."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from proxy.core.credentials import Credential
from proxy.core.endpoints import SESSIONS
from proxy.core.query import KeyRules, ParsedQuery, parse_query
from proxy.http.memo import QuestionMemo, Resolved

NOW = datetime(2026, 11, 29, 12, 34, 56, tzinfo=UTC)
CREDENTIAL = Credential("mabc", "key", "default", "anonymous", "anonymous")
UTC_RULES = KeyRules(UTC)


def parse(query: str, now: datetime = NOW, rules: KeyRules = UTC_RULES) -> ParsedQuery:
    return parse_query(parse_qsl(query, keep_blank_values=True), SESSIONS, rules, now)


def resolved(parsed: ParsedQuery) -> Resolved:
    return Resolved(parsed.question.cache_key("mabc"), parsed.question, CREDENTIAL, parsed.valid_until)


def test_an_explicit_ending_at_is_valid_for_ever() -> None:
    assert parse("length=7&ending_at=2024-01-01T00:00:00Z").valid_until == math.inf
    assert parse("length=7&unit=hour&ending_at=2030-01-01").valid_until == math.inf


def test_now_is_valid_until_its_bucket_ends() -> None:
    assert parse("length=7&unit=hour").valid_until == datetime(2026, 11, 29, 13, tzinfo=UTC).timestamp()
    assert parse("length=7").valid_until == datetime(2026, 11, 30, tzinfo=UTC).timestamp()
    assert parse("length=7&ending_at=").valid_until == datetime(2026, 11, 30, tzinfo=UTC).timestamp()


def test_the_day_bucket_ends_at_midnight_in_the_reporting_zone() -> None:
    zone = ZoneInfo("America/New_York")  # 12:34:56Z is 07:34:56 there (EST, -5)
    parsed = parse("length=7", rules=KeyRules(zone))
    assert parsed.valid_until == datetime(2026, 11, 30, 5, tzinfo=UTC).timestamp()


def test_a_resolution_valid_for_no_later_request_is_not_kept() -> None:
    parsed = parse("length=7&unit=hour")
    memo = QuestionMemo()
    memo.put("length=7&unit=hour", None, resolved(parsed), parsed.valid_until)
    assert len(memo) == 0


def test_the_memo_answers_until_the_boundary_then_the_next_bucket_gets_its_own_key() -> None:
    query = "length=7&unit=hour"
    before = datetime(2026, 11, 29, 12, 59, 59, 999_000, tzinfo=UTC)
    memo = QuestionMemo()
    first = resolved(parse(query, before))
    memo.put(query, "Bearer t", first, before.timestamp())
    assert memo.get(query, "Bearer t", before.timestamp()) == first
    assert memo.get(query, "Bearer other", before.timestamp()) is None  # the credential is part of the request
    boundary = datetime(2026, 11, 29, 13, tzinfo=UTC)
    assert memo.get(query, "Bearer t", boundary.timestamp()) is None
    second = resolved(parse(query, boundary))
    assert second.key != first.key
    memo.put(query, "Bearer t", second, boundary.timestamp())
    assert memo.get(query, "Bearer t", (boundary + timedelta(minutes=59)).timestamp()) == second


def test_the_memo_is_bounded() -> None:
    memo = QuestionMemo(max_entries=3)
    item = resolved(parse("length=1&ending_at=2024-01-01"))
    for i in range(10):
        memo.put(f"length=1&ending_at=2024-01-01&x={i}", None, item, NOW.timestamp())
        assert len(memo) <= 3


def test_the_memo_is_bounded_in_bytes() -> None:
    memo = QuestionMemo(max_bytes=10_000)
    item = resolved(parse("length=1&ending_at=2024-01-01"))
    for i in range(20):
        memo.put(f"length=1&ending_at=2024-01-01&x={i}", "Bearer " + "k" * 3000, item, NOW.timestamp())
        assert len(memo) <= 2
