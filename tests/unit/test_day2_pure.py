"""The day-2 decisions without I/O: the tokens file's parser, the teams' shares, what a stored name holds, purge
bodies, the warm file and its daily time, when refresh ahead plans a refresh, and the settings' cross-checks."""

from __future__ import annotations

from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from proxy.core.credentials import Credential
from proxy.core.day2_files import Malformed, parse_tokens_file, parse_warm_file
from proxy.core.endpoints import CAMPAIGNS, SESSIONS
from proxy.core.entry import Entry
from proxy.core.errors import InvalidRequest
from proxy.core.query import Question
from proxy.core.series import series_key
from proxy.core.shares import share, standing
from proxy.core.stored_names import describe, purge_request
from proxy.day2.warm import due_between
from proxy.fill.refresh_ahead import RefreshAhead, lead
from proxy.obs.metrics import Metrics
from proxy.settings.model import Settings

# --- the tokens file -------------------------------------------------------------------------------------------


def test_a_tokens_file_has_one_team_a_line_with_comments_and_blank_lines() -> None:
    teams = parse_tokens_file(b"# the teams\n\nanalytics:tok-1-xxxxxxxxxx\n  growth:tok-2-xxxxxxxxxx:2.5  \n")
    assert [(t.name, t.token, t.weight) for t in teams] == [
        ("analytics", "tok-1-xxxxxxxxxx", 1.0),
        ("growth", "tok-2-xxxxxxxxxx", 2.5),
    ]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("a:secret-1-xxxxxxx\nb:secret-2-xxxxxxx:heavy\n", 2),
        ("a:secret-1-xxxxxxx\n\nb secret-2-xxxxxxx\n", 3),
        ("a:secret-1-xxxxxxx,b:secret-2-xxxxxxx\n", 1),
        ("a:secret-1-xxxxxxx\na:secret-2-xxxxxxx\n", 2),
        ("a:secret-1-xxxxxxx\nb:secret-1-xxxxxxx\n", 2),
        ("a:secret-1-xxxxxxx\nb:secret-2-xxxxxxx:5000\n", 2),
        ("# nothing\n\n", 0),
        ("a:admin-secret-0123456789\n", 1),
    ],
)
def test_a_malformed_file_names_the_line_never_the_token(text: str, line: int) -> None:
    with pytest.raises(Malformed) as raised:
        parse_tokens_file(text.encode(), forbidden=frozenset(["admin-secret-0123456789"]))
    assert raised.value.line == line
    assert "secret" not in str(raised.value)


# --- shares ----------------------------------------------------------------------------------------------------


def test_a_share_is_the_weight_s_part_and_never_more_than_the_budget_left() -> None:
    weights = {"a": 3.0, "b": 1.0}
    assert share(4000, 3.0, weights) == 3000
    now = 7200 * 1000 + 10.0
    assert standing(3000, 10, 4000, 10, now).remaining == 2990
    assert standing(3000, 10, 4000, 3995, now).remaining == 5  # others borrowed: only what the budget has left
    assert standing(1000, 1500, 4000, 1500, now).remaining == 0  # past its share: borrowing
    held = standing(1000, 2, 4000, 2, now)
    assert held.reset == 7200 * 1000 + 3600
    assert held.headers() == {
        "X-RateLimit-Limit": "1000",
        "X-RateLimit-Remaining": "998",
        "X-RateLimit-Reset": str(held.reset),
    }


# --- what a stored name holds, and purges ----------------------------------------------------------------------

ENDING = datetime(2024, 3, 1, tzinfo=UTC)


def test_a_stored_name_says_what_it_holds_and_whether_a_purge_matches() -> None:
    question = Question(SESSIONS, 7, "day", ENDING, (("app_id", "a:b/c"), ("segment_id", "s")))
    held = describe(question.cache_key("p" + "0" * 32))
    assert held is not None
    assert (held.kind, held.endpoint, held.unit, held.length) == ("entry", "sessions", "day", 7)
    assert held.filters == {"app_id": "a:b/c", "segment_id": "s"}
    assert held.matches("sessions", {}) and held.matches("sessions", {"app_id": "a:b/c"})
    assert not held.matches("sessions", {"app_id": "a"}) and not held.matches("dau", {})
    assert describe(question.cache_key("p1") + ":exact") is not None
    series = describe(series_key(question, "m" + "1" * 32, "Europe/London"))
    assert series is not None and series.kind == "series" and series.matches("sessions", {"segment_id": "s"})
    shown = held.shown()
    assert "0" * 32 not in str(shown) and len(str(shown["scope"])) == 8
    assert describe("health-probe") is None and describe("{budget:default:default}") is None


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"endpoint": "nope"}, "unknown endpoint 'nope'"),
        ({"endpoint": "campaigns", "filters": {"app_id": "a"}}, "unknown filter 'app_id' for campaigns"),
        ({"endpoint": "campaigns", "filters": {"campaign_id": 7}}, "filter 'campaign_id' must be a string"),
        ({"endpoint": "campaigns", "filters": ["campaign_id"]}, "'filters' must be an object"),
        ("campaigns", "must be a JSON object"),
    ],
)
def test_a_purge_body_naming_what_does_not_exist_is_refused(body: Any, named: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        purge_request(body)
    assert named in raised.value.message


def test_a_purge_body() -> None:
    assert purge_request({"endpoint": CAMPAIGNS.name}) == ("campaigns", {})
    assert purge_request({"endpoint": "campaigns", "filters": {"campaign_id": "c"}}) == (
        "campaigns",
        {"campaign_id": "c"},
    )


# --- the warm file ---------------------------------------------------------------------------------------------


def test_the_warm_file_has_a_time_and_questions() -> None:
    warm = parse_warm_file("# morning\nat 08:45\n/sessions/data_series?length=30\n\n/kpi/dau/data_series?length=7\n")
    assert warm.at == time(8, 45) and len(warm.questions) == 2
    for bad in ("at 25:00\n/x", "/sessions/data_series?length=3\n", "at 08:00\nsessions?length=3\n"):
        with pytest.raises(ValueError, match="warm file"):
            parse_warm_file(bad)


def test_the_daily_time_is_due_once_in_the_reporting_zone() -> None:
    zone = ZoneInfo("America/New_York")
    at = datetime(2024, 3, 1, 8, 45, tzinfo=zone).timestamp()
    assert due_between(time(8, 45), zone, at - 1, at)
    assert not due_between(time(8, 45), zone, at, at + 1)
    assert not due_between(time(8, 45), zone, at - 7200, at - 3600)
    assert due_between(time(23, 59, 59), zone, at - 9 * 3600, at)  # yesterday's, seen after midnight


# --- refresh ahead ---------------------------------------------------------------------------------------------


def entry(stored: float, fresh_for: float) -> Entry:
    return Entry(b"{}", 200, "application/json", stored, stored + fresh_for, stored + fresh_for + 60)


def test_the_lead_is_a_fifth_of_the_freshness_within_bounds() -> None:
    assert lead(entry(0, 300)) == 60  # capped
    assert lead(entry(0, 100)) == 20
    assert lead(entry(0, 5)) == 1  # at least a second ...
    assert lead(entry(0, 1)) == 0.5  # ... but never more than half of it


def test_a_hit_plans_one_refresh_per_entry() -> None:
    ahead = RefreshAhead(renew=_never, room=_never, metrics=Metrics(), clock=lambda: 0.0)
    credential = Credential("m1", "key", "default", "a", "a", 2.0)
    question = Question(SESSIONS, 3, "day", ENDING, ())
    first = entry(0, 100)
    for _ in range(3):
        ahead.seen("k", question, credential, first)
    assert ahead.due(79.0) == []
    (planned,) = ahead.due(80.0)
    assert planned.credential.team == "~background" and planned.credential.scope == "m1"  # same cache key
    ahead.seen("k", question, credential, first)  # more hits on the same entry: nothing more
    assert ahead.due(99.0) == []
    ahead.seen("k", question, credential, entry(100, 100))  # the refreshed entry: planned again
    ahead.seen("old", question, credential, entry(0, 10))
    assert [p.key for p in ahead.due(500.0)] == []  # both expired before they came due: nothing to refresh
    ahead.prune(500.0)
    ahead.seen("old", question, credential, entry(490, 100))
    assert len(ahead.due(580.0)) == 1


async def _never(*args: object) -> Any:
    raise AssertionError("not called")


# --- settings --------------------------------------------------------------------------------------------------


def make(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_day2_settings_are_checked(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("a:tok-a-xxxxxxxxxx\n")
    assert make(api_key="k", client_tokens_file=str(tokens)).client_tokens_file == str(tokens)
    problems = {
        "not both": {"api_key": "k", "client_tokens": "a:tok-a-0123456789abc", "client_tokens_file": str(tokens)},
        "no such file": {"api_key": "k", "client_tokens_file": str(tmp_path / "missing")},
        "needs BRAZE_PROXY_API_KEY": {"client_tokens_file": str(tokens)},
        "WARM_FILE needs": {"warm_file": str(tokens)},
        "at least 16": {"admin_token": "short"},
        "differ from the API key": {
            "api_key": "same-key-0123456789",
            "admin_token": "same-key-0123456789",
            "allow_anonymous": True,
        },
        "every client token": {
            "api_key": "k",
            "client_tokens": "a:team-token-0123456789",
            "admin_token": "team-token-0123456789",
        },
    }
    bad = tmp_path / "bad"
    bad.write_text("a:tok-a-xxxxxxxxxx\nb:tok-very-secret-:heavy\n")
    problems["CLIENT_TOKENS_FILE: line 2"] = {"api_key": "k", "client_tokens_file": str(bad)}
    problems["warm file line 1"] = {"api_key": "k", "allow_anonymous": True, "warm_file": str(bad)}
    for message, values in problems.items():
        with pytest.raises(ValueError, match=message) as raised:
            make(**values)
        assert "tok-very-secret-" not in str(raised.value)
