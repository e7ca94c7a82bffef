"""Start-up: bad settings stop the process with one clear line; --help explains the settings.

Each kind of bad setting is checked in this process (`main(["--check"])`: the same Settings() and the same
one-line report as a start-up); real processes show that a start-up stops the same way, with its exit code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from proxy.settings.model import Settings
from tests.support.cli import run
from tests.support.external_tools import require_tool
from tests.support.procs import REPO_ROOT, RedisServer, free_port
from tests.support.redis_topologies import Node


@pytest.mark.parametrize(("name", "value"), [("BRAZE_PROXY_PORT", "http"), ("BRAZE_PROXY_WORKSPACES", '{"eu": ')])
def test_a_real_start_up_stops_the_same_way(name: str, value: str) -> None:
    """A validation error and a source (JSON) error, through a real process started without --check."""
    result = run(**{name: value})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and name in lines[0], result.stderr
    assert result.stdout == ""


def test_a_malformed_token_list_names_the_variable_without_echoing_secrets() -> None:
    result = run(BRAZE_PROXY_API_KEY="k-secret-123", BRAZE_PROXY_CLIENT_TOKENS="team-without-token-s3cr3t")
    assert result.returncode == 2
    assert "BRAZE_PROXY_CLIENT_TOKENS" in result.stderr
    assert "s3cr3t" not in result.stderr and "k-secret-123" not in result.stderr


def test_check_accepts_good_settings(redis_server: RedisServer) -> None:
    result = run("--check", BRAZE_PROXY_REDIS_URL=redis_server.url, BRAZE_PROXY_TTL_OPEN_HOUR="2.5")
    assert result.returncode == 0, result.stderr
    assert f"cache and budget in Redis at {redis_server.url}" in result.stdout
    managed = run(
        "--check",
        BRAZE_PROXY_API_KEY="managed-key",
        BRAZE_PROXY_CLIENT_TOKENS="alpha:tok-a-0123456789:3, beta:tok-b-0123456789",
        BRAZE_PROXY_WORKSPACES='{"eu": {"key_sha256": ["' + "ab" * 32 + '"], "rate_limit_per_hour": 5000}}',
    )
    assert managed.returncode == 0, managed.stderr
    assert "cache and budget in process" in managed.stdout
    anonymous = run("--check", BRAZE_PROXY_API_KEY="managed-key", BRAZE_PROXY_ALLOW_ANONYMOUS="true")
    assert anonymous.returncode == 0, anonymous.stderr


def test_check_fails_on_a_redis_nothing_answers_on_within_its_bound() -> None:
    port = free_port()
    started = time.monotonic()
    result = run("--check", BRAZE_PROXY_REDIS_URL=f"redis://:hunter2-secret@127.0.0.1:{port}/0")
    assert result.returncode == 2
    assert time.monotonic() - started < 20
    assert f"error: Redis at redis://***@127.0.0.1:{port}/0 could not be reached" in result.stderr, result.stderr
    assert "hunter2" not in result.stderr + result.stdout and "settings are valid" not in result.stdout


def test_check_fails_on_a_redis_that_refuses_the_password() -> None:
    """The issue's case: a wrong password passed --check, then the proxy said "ready" while /readyz stayed 503."""
    require_tool("redis-server")
    with Node(password="the-right-one") as node:
        wrong = run("--check", BRAZE_PROXY_REDIS_URL=f"redis://:the-wrong-one@127.0.0.1:{node.port}/0")
        missing = run("--check", BRAZE_PROXY_REDIS_URL=f"redis://127.0.0.1:{node.port}/0")
        right = run("--check", BRAZE_PROXY_REDIS_URL=f"redis://:the-right-one@127.0.0.1:{node.port}/0")
    assert wrong.returncode == 2 and "refused the credentials" in wrong.stderr, wrong.stderr
    assert missing.returncode == 2 and "BRAZE_PROXY_REDIS_URL" in missing.stderr, missing.stderr
    assert "the-wrong-one" not in wrong.stderr
    assert right.returncode == 0, right.stderr


def test_check_fails_on_an_unknown_variable_such_as_a_typo_of_the_redis_url() -> None:
    result = run("--check", BRAZE_PROXY_REDIS_URI="redis://127.0.0.1:6379/0")
    assert result.returncode == 2
    assert "error: BRAZE_PROXY_REDIS_URI is not a setting (a typo?)" in result.stderr
    assert "settings are valid" not in result.stdout


def test_the_same_port_for_metrics_and_traffic_stops_check_and_start_up() -> None:
    for args in (("--check",), ()):
        result = run(*args, BRAZE_PROXY_PORT="8080", BRAZE_PROXY_METRICS_PORT="8080")
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "BRAZE_PROXY_METRICS_PORT is BRAZE_PROXY_PORT (8080)" in lines[0], result.stderr


def test_help_shows_the_json_settings_defaults() -> None:
    result = run("--help")
    assert "PydanticUndefined" not in result.stdout
    assert 'BRAZE_PROXY_BUDGET_GROUPS  (default: {"campaigns": {"rate_limit_per_hour": 600000.0' in result.stdout


GOOD = "0123456789abcdef"  # a token of the minimum length


def test_a_bad_weight_stops_a_real_start_up_naming_the_team() -> None:
    """Issue 26: a weight Python's float() would take (1e-320, 1_0, inf) is not a weight."""
    result = run(BRAZE_PROXY_API_KEY="k-secret-123-abcdef", BRAZE_PROXY_CLIENT_TOKENS=f"ok:{GOOD},heavy:{GOOD}1:1e-320")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "team 'heavy': its weight" in lines[0], result.stderr
    assert GOOD not in result.stderr


def test_help_lists_every_setting() -> None:
    result = run("--help")
    assert result.returncode == 0
    for name in Settings.model_fields:
        assert f"BRAZE_PROXY_{name.upper()}" in result.stdout


def test_a_taken_port_is_one_clear_line(start_proxy) -> None:  # type: ignore[no-untyped-def]
    running = start_proxy()
    result = run(
        BRAZE_PROXY_HOST="127.0.0.1", BRAZE_PROXY_PORT=str(running.port), BRAZE_PROXY_UPSTREAM_URL="http://127.0.0.1:9"
    )
    assert result.returncode == 3
    assert f"cannot listen on 127.0.0.1:{running.port}" in result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert all(json.loads(line) for line in lines), lines  # the JSON log format, even for this
    assert not any(json.loads(line).get("message") == "proxy ready" for line in lines)  # never before the bind


def test_check_refuses_unknown_variables_and_explains_derived_values() -> None:
    result = run("--check", BRAZE_PROXY_UPSTREAM_TIMOUT="3", BRAZE_PROXY_UPSTREAM_TIMEOUT="4")
    assert result.returncode == 2, result.stderr
    assert "BRAZE_PROXY_UPSTREAM_TIMOUT is not a setting" in result.stderr
    assert "BRAZE_PROXY_UPSTREAM_TIMEOUT " not in result.stderr
    result = run("--check", BRAZE_PROXY_UPSTREAM_TIMEOUT="4")
    # The fill lock and the replicas' wait: the retry budget (15) + the upstream timeout (4) + 2.
    assert "one fill (a miss's upstream call, its retries and backoffs) may take up to 21 s" in result.stdout
    assert "replicas hold a fill's lock and wait for another's fill this long" in result.stdout


def test_check_refuses_unknown_variables_in_the_env_file_too(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("BRAZE_PROXY_TTL_SETLED=60\nBRAZE_PROXY_TTL_SETTLED=60\n")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BRAZE_PROXY_")}
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "--check"],
        env={**clean, "PYTHONPATH": str(REPO_ROOT)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "BRAZE_PROXY_TTL_SETLED is not a setting" in result.stderr
    assert "BRAZE_PROXY_TTL_SETTLED " not in result.stderr


def test_stale_while_revalidate_longer_than_the_stale_window_is_refused_not_clamped() -> None:
    result = run(BRAZE_PROXY_STALE_SECONDS="30", BRAZE_PROXY_STALE_WHILE_REVALIDATE_SECONDS="60")
    assert result.returncode == 2
    assert "STALE_WHILE_REVALIDATE_SECONDS must not exceed" in result.stderr


def test_floor_ending_at_is_gone_so_now_requests_cannot_make_a_key_each() -> None:
    """Issue 15 #9: FLOOR_ENDING_AT=false made every request without ending_at its own key; it is no setting."""
    assert "floor_ending_at" not in Settings.model_fields
    result = run("--check", BRAZE_PROXY_FLOOR_ENDING_AT="false")
    assert "BRAZE_PROXY_FLOOR_ENDING_AT is not a setting" in result.stderr
