"""Pure: query validation and the one cache-key function, with properties over spellings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qsl, quote
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from proxy.core.credentials import scope_of
from proxy.core.endpoints import CANVAS, CANVAS_SUMMARY, EVENTS, KPI_DAU, SERVED, SESSIONS, Endpoint
from proxy.core.errors import InvalidRequest
from proxy.core.query import KeyRules, Question, parse_query

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


# --- the other endpoints ----------------------------------------------------------------------------------


def ask_at(endpoint: Endpoint, query: str) -> Question:
    return parse_query(parse_qsl(query, keep_blank_values=True), endpoint, RULES, NOW).question


def errors_at(endpoint: Endpoint, query: str) -> list[str]:
    with pytest.raises(InvalidRequest) as caught:
        ask_at(endpoint, query)
    assert caught.value.status == 400
    return caught.value.errors


def required_ids(endpoint: Endpoint) -> str:
    return "".join(f"&{f.name}=x" for f in endpoint.filters if f.required)


@pytest.mark.parametrize("endpoint", SERVED, ids=lambda e: e.name)
def test_every_endpoint_refuses_what_it_does_not_take(endpoint: Endpoint) -> None:
    ok = f"length={endpoint.max_length}{required_ids(endpoint)}"
    assert ask_at(endpoint, ok).length == endpoint.max_length
    too_long = f"length={endpoint.max_length + 1}{required_ids(endpoint)}"
    assert any(f"from 1 to {endpoint.max_length}" in e for e in errors_at(endpoint, too_long))
    assert any("unknown parameter 'colour'" in e for e in errors_at(endpoint, ok + "&colour=red"))
    for spec in endpoint.filters:
        if spec.required:
            missing = ok.replace(f"&{spec.name}=x", "")
            assert errors_at(endpoint, missing) == [f"parameter '{spec.name}' is required"]
    if endpoint.supports_hour:
        assert ask_at(endpoint, ok + "&unit=hour").unit == "hour"
    else:
        assert errors_at(endpoint, ok + "&unit=hour") == ["parameter 'unit' must be 'day' for this endpoint"]
        assert ask_at(endpoint, ok + "&unit=day") == ask_at(endpoint, ok)


@pytest.mark.parametrize("endpoint", SERVED, ids=lambda e: e.name)
def test_day_only_endpoints_send_no_unit(endpoint: Endpoint) -> None:
    names = [name for name, _ in ask_at(endpoint, f"length=2{required_ids(endpoint)}").upstream_params(UTC)]
    assert ("unit" in names) == endpoint.supports_hour
    assert names[0] == "length" and "ending_at" in names


def test_names_are_unique_and_label_safe() -> None:
    names = [e.name for e in SERVED]
    assert len(set(names)) == len(names) == 14
    assert all(name.replace("_", "").isalnum() and name.islower() for name in names)
    assert len({e.path for e in SERVED}) == 14
    assert [e.path for e in SERVED if e.path.startswith("/feed")] == ["/feed/data_series"]  # deprecated: passed on


CANVAS_BASE = "canvas_id=c1&ending_at=2026-11-20T10:00:00Z"


@pytest.mark.parametrize(
    "spelling",
    [
        CANVAS_BASE + "&length=3&include_step_breakdown=true",
        CANVAS_BASE + "&length=3&include_step_breakdown=True&include_variant_breakdown=false",
        CANVAS_BASE + "&length=3&include_step_breakdown=true&include_deleted_step_data=",
        CANVAS_BASE.replace("10:00:00Z", "23:59:59Z") + "&include_step_breakdown=TRUE&length=3&unit=day",
    ],
)
def test_canvas_spellings_share_a_key(spelling: str) -> None:
    expected = ask_at(CANVAS, CANVAS_BASE + "&length=3&include_step_breakdown=true").cache_key("p")
    assert ask_at(CANVAS, spelling).cache_key("p") == expected
    assert expected.endswith(":canvas_id=c1:include_step_breakdown")


@pytest.mark.parametrize("value", ["1", "0", "yes"])
def test_canvas_options_braze_refuses_are_refused(value: str) -> None:
    with pytest.raises(InvalidRequest, match="'include_step_breakdown' must be 'true' or 'false'"):
        ask_at(CANVAS, CANVAS_BASE + f"&length=3&include_step_breakdown={value}")


@pytest.mark.parametrize("value", ["a\u200bb", "signup\U0001f469\u200d\U0001f4bb", "x\u00a0y"])
def test_filter_values_with_format_characters_are_passed_on(value: str) -> None:
    question = ask_at(EVENTS, f"event={quote(value)}&length=3")
    assert question.filters == (("event", value),)


def test_canvas_window_by_starting_at() -> None:
    question = ask_at(CANVAS, CANVAS_BASE + "&starting_at=2026-11-18T15:00:00Z&include_variant_breakdown=true")
    assert question.length == 0
    assert question.starting_at == datetime(2026, 11, 18, tzinfo=UTC)
    assert question.upstream_params(UTC) == [
        ("starting_at", "2026-11-18T00:00:00+00:00"),
        ("ending_at", "2026-11-20T00:00:00+00:00"),
        ("canvas_id", "c1"),
        ("include_variant_breakdown", "true"),
    ]
    same = ask_at(CANVAS, CANVAS_BASE + "&starting_at=2026-11-18&include_variant_breakdown=true")
    assert same.cache_key("p") == question.cache_key("p")
    by_length = ask_at(CANVAS, CANVAS_BASE + "&length=3&include_variant_breakdown=true")
    assert by_length.cache_key("p") != question.cache_key("p")  # exact questions: Braze may answer them apart
    assert ask_at(CANVAS_SUMMARY, CANVAS_BASE + "&length=3").cache_key("p") != ask_at(
        CANVAS, CANVAS_BASE + "&length=3"
    ).cache_key("p")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("canvas_id=c1", "parameter 'length' (or 'starting_at') is required"),
        ("length=2", "parameter 'canvas_id' is required"),
        ("canvas_id=c1&length=2&starting_at=2026-11-18", "give either 'length' or 'starting_at', not both"),
        ("canvas_id=c1&starting_at=2026-11-21&ending_at=2026-11-20", "'starting_at' must not be after 'ending_at'"),
        ("canvas_id=c1&starting_at=soon", "parameter 'starting_at' must be an ISO-8601"),
        ("canvas_id=c1&length=2&include_step_breakdown=yes", "'include_step_breakdown' must be 'true' or 'false'"),
        ("canvas_id=c1&length=15", "from 1 to 14"),
    ],
)
def test_canvas_refusals(query: str, message: str) -> None:
    for endpoint in (CANVAS, CANVAS_SUMMARY):
        assert any(message in e for e in errors_at(endpoint, query)), errors_at(endpoint, query)


def test_starting_at_belongs_to_canvas_only() -> None:
    assert errors_at(SESSIONS, "length=1&starting_at=2026-11-18") == ["unknown parameter 'starting_at'"]
    assert errors_at(KPI_DAU, "length=1&include_step_breakdown=true") == ["unknown parameter 'include_step_breakdown'"]


def test_the_asked_instant_is_kept_unfloored() -> None:
    def instant(query: str) -> datetime | None:
        return parse_query(parse_qsl(query, keep_blank_values=True), SESSIONS, RULES, NOW).instant

    assert instant("length=1&ending_at=2018-06-28T23:59:59-5:00") == datetime(2018, 6, 29, 4, 59, 59, tzinfo=UTC)
    assert instant("length=1&ending_at=%202018-06-28T10:00:00Z%20") == datetime(2018, 6, 28, 10, tzinfo=UTC)
    assert instant("length=1") is None
    assert instant("length=1&ending_at=") is None  # empty means now, as omitted
