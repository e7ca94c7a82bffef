"""`make run` and `make demo` as a newcomer meets them (issue 24): a second `make run` starts at once, without
reinstalling; `make demo` points the proxy at the stand-in it started, on ports that are settings."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.external_tools import binary
from tests.support.procs import HOST, REPO_ROOT, free_port

DEMO_WAIT_S = 30.0


def make(*args: str, venv: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = [binary("make", "apt-get install -y make"), "--no-print-directory", *args]
    if venv is not None:
        command.append(f"VENV={venv}")
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False)


def fake_venv(tmp_path: Path, *stamps: str) -> Path:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    for stamp in stamps:
        (venv / stamp).touch()  # newer than pyproject.toml
    return venv


def test_make_run_installs_once_then_only_starts(tmp_path: Path) -> None:
    fresh = make("--dry-run", "run", venv=fake_venv(tmp_path / "a"))
    assert "pip install" in fresh.stdout and "-qq" in fresh.stdout, fresh.stdout
    installed = make("--dry-run", "run", venv=fake_venv(tmp_path / "b", ".installed"))
    assert installed.stdout.splitlines() == [f"{tmp_path / 'b' / 'venv'}/bin/braze-proxy"], installed.stdout


def test_the_package_finds_its_subpackages_and_lua_scripts_so_setuptools_has_nothing_to_warn_about() -> None:
    text = (REPO_ROOT / "pyproject.toml").read_text()
    assert 'include = ["proxy", "proxy.*"]' in text and "namespaces = true" in text
    assert '"proxy.lua" = ["*.lua"]' in text


def test_the_demo_points_the_proxy_at_the_stand_in_it_started_and_prints_the_real_ports() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRAZE_PROXY_", "MAKE"))}
    demo = subprocess.Popen(
        [binary("make", "apt-get install -y make"), "--no-print-directory", "demo", f"DEMO_PORT={port}"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        url = f"http://{HOST}:{port}/sessions/data_series?length=7&ending_at=2018-06-28T23:59:59-5:00"
        request = urllib.request.Request(url, headers={"Authorization": "Bearer demo-key"})
        deadline, status = time.monotonic() + DEMO_WAIT_S, None
        while time.monotonic() < deadline and status is None and demo.poll() is None:
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    status = response.status
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        assert status == 200
    finally:
        os.killpg(demo.pid, signal.SIGTERM)
        output, _ = demo.communicate(timeout=30)
    assert f"proxy: http://127.0.0.1:{port}" in output and f"http://127.0.0.1:{port}/sessions" in output, output
    assert ":8081" not in output


def test_a_stand_in_port_that_is_taken_stops_the_demo_with_one_clear_line() -> None:
    with socket.socket() as taken:  # something else listens there: the demo key must not go to it
        taken.bind((HOST, 0))
        taken.listen()
        held = taken.getsockname()[1]
        result = make("demo", f"DEMO_PORT={free_port()}", f"DEMO_STANDIN_PORT={held}")
    assert result.returncode != 0
    assert f"the stand-in did not start (is port {held} taken?)" in result.stderr, result.stderr


def test_the_pure_tests_run_with_no_network_and_ci_fails_without_unshare(tmp_path: Path) -> None:
    venv = fake_venv(tmp_path, ".installed", ".deps-installed")
    planned = make("--dry-run", "test-unit", venv=venv)
    assert "unshare -n" in planned.stdout and "-m pytest -q tests/unit" in planned.stdout, planned.stdout
    (tmp_path / "no-tools").mkdir()
    env = {"PATH": str(tmp_path / "no-tools"), "CI": "true"}  # no unshare on PATH
    command = [binary("make", "apt-get install -y make"), "--no-print-directory", "test-unit", f"VENV={venv}"]
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert "make test-unit: unshare -n is not available; CI must run" in result.stderr, result.stderr
