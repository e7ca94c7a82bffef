"""Finding the external tools some tests need (promtool, prometheus, hadolint, helm-python-sdk, ...).

A missing tool skips the test on a developer's machine and fails it under CI=true, so CI can never pass by
skipping the checks this project promises.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest


def missing(what: str, install: str) -> NoReturn:
    """Fail (CI=true) or skip (elsewhere) the current test because `what` is not installed."""
    message = f"{what} is not installed ({install})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI must run this test", pytrace=False)
    pytest.skip(message)


def binary(name: str, install: str) -> str:
    """The path of executable `name` on PATH or beside this Python (where pip puts a package's binaries)."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        missing(name, install)
    return found


def module(name: str, install: str) -> ModuleType:
    """Import `name`, or fail/skip as `missing` does."""
    try:
        return importlib.import_module(name)
    except ImportError:
        missing(f"Python module {name}", install)


def require_tool(name: str) -> str:
    """The path of `name`; a missing tool fails the test in CI and skips it elsewhere."""
    return binary(name, "`make test` installs it")
