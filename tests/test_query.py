"""Pure: query validation and the one cache-key function, with properties over spellings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qsl, quote
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from proxy.credentials import scope_of
from proxy.endpoints import SESSIONS
from proxy.errors import InvalidRequest
from proxy.query import KeyRules, Question, parse_query

NOW = datetime(2026, 11, 29, 12, 34, 56, tzinfo=UTC)
RULES = KeyRules(UTC)


def ask(query: str, rules: KeyRules = RULES, now: datetime = NOW) -> Question:
    return parse_query(parse_qsl(query, keep_blank_values=True), SESSIONS, rules, now).question


def key(query: str, rules: KeyRules = RULES) -> str:
    return ask(query, rules).cache_key("pabc")


def errors(query: str) -> list[str]:
    with pytest.raises(InvalidRequest) as caught:
        ask(query)
    assert caught.value.status == 400
    return caught.value.errors


def test_the_canonical_key() -> None:
    assert key("length=7&ending_at=2018-06-28T23:59:59-5:00") == "v1:pabc:sessions:7:day:1530230400"
    assert key("length=7&unit=hour&ending_at=2018-06-28T23:59:59Z&app_id=a%3Ab") == (
        "v1:pabc:sessions:7:hour:1530226800:app_id=a%3Ab"
    )


@pytest.mark.parametrize(
    "spelling",
    [
        "length=3&unit=day&ending_at=2018-06-28T12:00:00Z",
        "unit=day&ending_at=2018-06-28T12:00:00Z&length=3",
        "length=3&ending_at=2018-06-28T12:00:00Z",
        "length=3&unit=DAY&ending_at=2018-06-28T12:00:00%2B00:00",
        "length=3&unit=Day&ending_at=2018-06-28T07:00:00-5:00",
        "length=3&ending_at=2018-06-28T17:30:00%2B0530",
        "length=3&ending_at=2018-06-28",
        "length=3&ending_at=2018-06-28T23:59:59.999Z",
        "length=3&ending_at=2018-06-28T12:00:00Z&app_id=&segment_id=",
        "length=3&ending_at=2018-06-28T12:00:00 00:00",
    ],
)
def test_spellings_of_one_question_share_a_key(spelling: str) -> None:
    assert key(spelling) == key("length=3&ending_at=2018-06-28T00:00:00Z")


def test_different_questions_differ() -> None:
    base = "length=3&ending_at=2018-06-28T12:00:00Z"
    keys = {
        key(base),
        key(base.replace("length=3", "length=4")),
        key(base + "&unit=hour"),
        key(base.replace("28T", "27T")),
        key(base + "&app_id=a"),
        key(base + "&segment_id=a"),
        key(base + "&app_id=a&segment_id=b"),
        key(base + "&app_id=b&segment_id=a"),
    }
    assert len(keys) == 8


def test_the_reporting_zone_moves_day_boundaries() -> None:
    ny = KeyRules(ZoneInfo("America/New_York"))
    late_utc = "length=1&ending_at=2018-06-29T02:00:00Z"  # June 28th, 22:00 in New York
    assert key(late_utc, ny) == key("length=1&ending_at=2018-06-28T12:00:00-04:00", ny)
    assert key(late_utc, RULES) != key("length=1&ending_at=2018-06-28T12:00:00Z", RULES)


def test_without_flooring_each_instant_is_its_own_key() -> None:
    exact = KeyRules(UTC, floor=False)
    assert key("length=1&ending_at=2018-06-28T12:00:00Z", exact) != key(
        "length=1&ending_at=2018-06-28T13:00:00Z", exact
    )
    assert key("length=1&ending_at=2018-06-28T12:00:00Z", exact) == key(
        "length=1&ending_at=2018-06-28T07:00:00-5:00", exact
    )


def test_omitted_ending_at_is_now() -> None:
    assert ask("length=1").ending_at == datetime(2026, 11, 29, tzinfo=UTC)
    assert ask("length=1&unit=hour").ending_at == datetime(2026, 11, 29, 12, tzinfo=UTC)


def test_upstream_params_are_explicit_and_ordered() -> None:
    question = ask("segment_id=s&app_id=a&length=2&ending_at=2018-06-28T23:59:59-5:00")
    assert question.upstream_params(UTC) == [
        ("length", "2"),
        ("unit", "day"),
        ("ending_at", "2018-06-29T00:00:00+00:00"),
        ("app_id", "a"),
        ("segment_id", "s"),
    ]


def test_legacy_api_key_is_a_credential_not_a_question() -> None:
    parsed = parse_query([("length", "1"), ("api_key", "secret-key")], SESSIONS, RULES, NOW)
    assert parsed.legacy_api_key == "secret-key"
    assert "secret" not in parsed.question.cache_key(scope_of("p", "secret-key"))
    assert parsed.question == ask("length=1")


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("", "'length' is required"),
        ("length=", "'length' is required"),
        ("length=0", "from 1 to 100"),
        ("length=101", "from 1 to 100"),
        ("length=-1", "from 1 to 100"),
        ("length=1.5", "from 1 to 100"),
        ("length=%EF%BC%95", "from 1 to 100"),  # a full-width digit
        ("length=99999999999999999999", "from 1 to 100"),
        ("length=1&unit=week", "'day' or 'hour'"),
        ("length=1&ending_at=tomorrow", "ISO-8601"),
        ("length=1&colour=red", "unknown parameter 'colour'"),
        ("length=1&length=2", "more than once"),
        ("length=1&app_id=" + "x" * 129, "printable"),
        ("length=1&app_id=a%0Ab", "printable"),
        ("length=1&app_id=%20a", "printable"),
    ],
)
def test_invalid_input_names_the_problem(query: str, fragment: str) -> None:
    assert any(fragment in error for error in errors(query))


def test_every_problem_is_listed() -> None:
    assert len(errors("length=0&unit=week&ending_at=x&bogus=1")) == 4


def test_error_messages_do_not_echo_long_or_control_input() -> None:
    (message,) = errors("length=1&" + "\x01" * 100 + "=1")
    assert "\x01" not in message and len(message) < 80


# --- properties -----------------------------------------------------------------------------------------

instants = st.datetimes(min_value=datetime(2010, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)).map(
    lambda d: d.replace(microsecond=0)
)
offsets = st.integers(min_value=-12 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
filter_values = st.text(st.characters(codec="utf-8", categories=["L", "N", "P", "S"]), min_size=1, max_size=20)


@st.composite
def questions(draw: st.DrawFn) -> dict[str, str]:
    params = {"length": str(draw(st.integers(1, 100)))}
    params["unit"] = draw(st.sampled_from(["day", "hour"]))
    params["ending_at"] = draw(instants).isoformat()
    for name in ("app_id", "segment_id"):
        if draw(st.booleans()):
            params[name] = draw(filter_values)
    return params


def encode(params: dict[str, str]) -> str:
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params.items())


@given(questions(), st.randoms(use_true_random=False), offsets)
def test_order_case_and_offset_do_not_change_the_key(params: dict[str, str], rnd: object, offset: timezone) -> None:
    respelled = dict(params)
    instant = datetime.fromisoformat(params["ending_at"])
    respelled["ending_at"] = instant.astimezone(offset).isoformat()
    respelled["unit"] = params["unit"].upper()
    items = list(respelled.items())
    rnd.shuffle(items)  # type: ignore[attr-defined]
    assert key(encode(dict(items))) == key(encode(params))


@given(questions(), questions())
def test_different_questions_never_share_a_key(a: dict[str, str], b: dict[str, str]) -> None:
    qa, qb = ask(encode(a)), ask(encode(b))
    assert (qa == qb) == (qa.cache_key("p1") == qb.cache_key("p1"))


@given(questions(), st.uuids().map(str))  # Braze REST API keys are UUIDs
def test_credentials_never_appear_in_keys(params: dict[str, str], secret: str) -> None:
    assume(all(secret not in value for value in params.values()))  # the question itself may not contain it
    scope = scope_of("p", secret)
    cache_key = ask(encode(params)).cache_key(scope)
    assert secret not in cache_key
    assert cache_key != ask(encode(params)).cache_key(scope_of("p", secret + "x"))
