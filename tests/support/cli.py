"""The CLI as tests drive it: `--check` in the test's own process (`check_in_process`, the `check` fixture of
tests/conftest.py), and a real `python -m proxy` with only the given BRAZE_PROXY_* variables (`run`)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from proxy.cli import main
from tests.support.procs import REPO_ROOT

Check = Callable[..., tuple[int, str]]


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


def check_in_process(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Check:
    """`braze-proxy --check` in this process with only the given BRAZE_PROXY_* variables (and no .env file):
    (exit code, stderr)."""

    def run_check(**env: str) -> tuple[int, str]:
        for name in [name for name in os.environ if name.startswith("BRAZE_PROXY_")]:
            monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.chdir(tmp_path)
        capsys.readouterr()
        code = main(["--check"])
        return code, capsys.readouterr().err

    return run_check
