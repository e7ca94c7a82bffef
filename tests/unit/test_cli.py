"""Start-up: bad settings stop with one clear line, checked in this process (`main(["--check"])`: the same
Settings() and the same one-line report as a start-up). Real processes: tests/processes/test_cli.py."""

from __future__ import annotations

import pytest

from proxy.settings.model import Settings
from tests.support.cli import Check
from tests.support.procs import REPO_ROOT


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("BRAZE_PROXY_PORT", "http", "BRAZE_PROXY_PORT"),
        ("BRAZE_PROXY_PORT", "70000", "BRAZE_PROXY_PORT"),
        ("BRAZE_PROXY_UPSTREAM_URL", "ftp://example", "BRAZE_PROXY_UPSTREAM_URL: must be an http(s) URL"),
        ("BRAZE_PROXY_REDIS_URL", "localhost:6379", "redis+sentinel://, rediss+sentinel://, redis+cluster://"),
        ("BRAZE_PROXY_UPSTREAM_PROXY", "proxy:3128", "BRAZE_PROXY_UPSTREAM_PROXY: must be an http(s) URL of a proxy"),
        ("BRAZE_PROXY_REPORTING_TIMEZONE", "Mars/Olympus", "unknown IANA time zone 'Mars/Olympus'"),
        ("BRAZE_PROXY_TTL_OPEN_DAY", "-1", "BRAZE_PROXY_TTL_OPEN_DAY"),
        ("BRAZE_PROXY_RATE_LIMIT_PER_HOUR", "lots", "BRAZE_PROXY_RATE_LIMIT_PER_HOUR"),
        ("BRAZE_PROXY_REDIS_OUTAGE_POLICY", "maybe", "BRAZE_PROXY_REDIS_OUTAGE_POLICY"),
        ("BRAZE_PROXY_CLIENT_TOKENS", "team:tok-0123456789abcdef", "needs BRAZE_PROXY_API_KEY"),
        ("BRAZE_PROXY_ENDPOINT_GROUPS", '{"event": "campaigns"}', "ENDPOINT_GROUPS: 'event' is not an endpoint"),
        ("BRAZE_PROXY_ENDPOINT_GROUPS", '{"events": "nowhere"}', "'events' moves to 'nowhere', which has no budget"),
        ("BRAZE_PROXY_API_KEY", "managed-key", "managed-key mode needs BRAZE_PROXY_CLIENT_TOKENS"),
        ("BRAZE_PROXY_WORKSPACES", '{"eu": {"key_sha256": ["not-a-hash"]}}', "never the keys"),
        ("BRAZE_PROXY_WORKSPACES", '{"eu": ', "BRAZE_PROXY_WORKSPACES"),
        ("BRAZE_PROXY_BUDGET_GROUPS", '{"campaigns": {"rate_limit_per_hour": 0}}', "BRAZE_PROXY_BUDGET_GROUPS"),
        ("BRAZE_PROXY_UPSTREAM_URL", "https://user:secret@rest.iad-01.braze.com", "must not carry a user or password"),
    ],
)
def test_bad_settings_stop_start_up_with_one_line(check: Check, name: str, value: str, fragment: str) -> None:
    code, stderr = check(**{name: value})
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert fragment in lines[0]
    assert "Traceback" not in stderr
    assert "secret" not in stderr  # a password in a URL is never repeated


GOOD = "0123456789abcdef"  # a token of the minimum length


@pytest.mark.parametrize(
    ("tokens", "fragment"),
    [
        (f"a:{GOOD}:0", "team 'a': its weight must be a plain decimal from 0.001 to 1000"),
        (f"a:{GOOD}:lots", "team 'a': its weight"),
        (f"a:{GOOD}:1e-320", "team 'a': its weight"),
        (f"a:{GOOD}:1_0", "team 'a': its weight"),
        (f"a:{GOOD}:inf", "team 'a': its weight"),
        (f"a:{GOOD}:nan", "team 'a': its weight"),
        (f"a:{GOOD}:-1", "team 'a': its weight"),
        (f"a:{GOOD}:0.0001", "team 'a': its weight"),
        (f"a:{GOOD}:1001", "team 'a': its weight"),
        (f"a:{GOOD}:1:2", "team 'a': an entry is name:token or name:token:weight"),
        (f"ok:{GOOD}1,a b:{GOOD}", "entry 2 does not start with a team name"),
        (f":{GOOD}", "entry 1 does not start with a team name"),
        (f"a:{GOOD},a:{GOOD}2", "team 'a' appears twice"),
        (f"a:{GOOD},b:{GOOD}", "teams 'a' and 'b' share one token"),
        ("a:s3cr3t", "team 'a': its token must be 16 to 512 printable characters"),
        ("a:k-secret-123-abcdef", "team 'a': its token is the Braze API key itself"),
        (" , ,", "holds no entry"),
    ],
)
def test_malformed_team_tokens_stop_start_up_naming_the_team_never_the_token(
    check: Check, tokens: str, fragment: str
) -> None:
    code, stderr = check(BRAZE_PROXY_API_KEY="k-secret-123-abcdef", BRAZE_PROXY_CLIENT_TOKENS=tokens)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "BRAZE_PROXY_CLIENT_TOKENS" in lines[0] and fragment in lines[0], stderr
    assert "k-secret-123" not in stderr and GOOD not in stderr and "s3cr3t" not in stderr


def test_token_lists_forgive_spaces_and_a_trailing_comma(check: Check) -> None:
    code, stderr = check(
        BRAZE_PROXY_API_KEY="k-secret-123-abcdef", BRAZE_PROXY_CLIENT_TOKENS=f" a : {GOOD} : 2.5 , b:{GOOD}1 ,"
    )
    assert code == 0, stderr


def test_the_reference_and_example_env_are_generated_from_the_settings_model() -> None:
    from proxy.devtools.settings_reference import example_env, markdown_reference

    assert (REPO_ROOT / "config" / "example.env").read_text() == example_env(), (
        "run: python -m proxy.devtools.settings_reference"
    )
    assert (REPO_ROOT / "docs" / "configuration.md").read_text() == markdown_reference()
    for name in Settings.model_fields:
        variable = f"BRAZE_PROXY_{name.upper()}"
        assert f"`{variable}`" in markdown_reference(), variable
        assert f"{variable}=" in example_env(), variable
