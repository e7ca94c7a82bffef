"""Start-up: bad settings stop the process with one clear line; --help explains the settings."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from proxy.settings import Settings
from tests.procs import REPO_ROOT


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BRAZE_PROXY_")}
    return subprocess.run(
        [sys.executable, "-m", "proxy", *args],
        env={**clean, **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("BRAZE_PROXY_PORT", "http", "BRAZE_PROXY_PORT"),
        ("BRAZE_PROXY_PORT", "70000", "BRAZE_PROXY_PORT"),
        ("BRAZE_PROXY_UPSTREAM_URL", "ftp://example", "BRAZE_PROXY_UPSTREAM_URL: must be an http(s) URL"),
        ("BRAZE_PROXY_REDIS_URL", "localhost:6379", "BRAZE_PROXY_REDIS_URL: must start with redis://"),
        ("BRAZE_PROXY_REPORTING_TIMEZONE", "Mars/Olympus", "unknown IANA time zone 'Mars/Olympus'"),
        ("BRAZE_PROXY_TTL_OPEN_DAY", "-1", "BRAZE_PROXY_TTL_OPEN_DAY"),
        ("BRAZE_PROXY_RATE_LIMIT_PER_HOUR", "lots", "BRAZE_PROXY_RATE_LIMIT_PER_HOUR"),
        ("BRAZE_PROXY_REDIS_OUTAGE_POLICY", "maybe", "BRAZE_PROXY_REDIS_OUTAGE_POLICY"),
        ("BRAZE_PROXY_CLIENT_TOKENS", "team:tok", "needs BRAZE_PROXY_API_KEY"),
    ],
)
def test_bad_settings_stop_start_up_with_one_line(name: str, value: str, fragment: str) -> None:
    result = run(**{name: value})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0]
    assert "Traceback" not in result.stderr


def test_a_malformed_token_list_names_the_variable_without_echoing_secrets() -> None:
    result = run(BRAZE_PROXY_API_KEY="k-secret-123", BRAZE_PROXY_CLIENT_TOKENS="team-without-token-s3cr3t")
    assert result.returncode == 2
    assert "BRAZE_PROXY_CLIENT_TOKENS" in result.stderr
    assert "s3cr3t" not in result.stderr and "k-secret-123" not in result.stderr


def test_check_accepts_good_settings() -> None:
    result = run("--check", BRAZE_PROXY_REDIS_URL="redis://127.0.0.1:1/0", BRAZE_PROXY_TTL_OPEN_HOUR="2.5")
    assert result.returncode == 0, result.stderr


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


def test_readme_and_example_env_document_every_setting() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    example = (REPO_ROOT / "config" / "example.env").read_text()
    for name in Settings.model_fields:
        variable = f"BRAZE_PROXY_{name.upper()}"
        assert f"`{variable}`" in readme, variable
        assert f"{variable}=" in example, variable
