"""The pure level: no socket, no subprocess, no sleep. `make test-unit` runs this folder under `unshare -n`
(no network at all, not even loopback); here a test that tries any of them fails at once, wherever it runs.

Audit hooks (PEP 578) see every connect, bind, name lookup and process start; sleeping is refused by
replacing time.sleep for the test. The hook stays installed for the process (hooks cannot be removed) but acts
only while a test of this folder runs.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

FORBIDDEN = (
    "socket.connect",
    "socket.bind",
    "socket.getaddrinfo",
    "socket.gethostbyname",
    "subprocess.Popen",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.fork",
)
running = {"pure": False}


class ImpureTest(RuntimeError):
    """A unit test did I/O: it belongs to tests/inprocess or tests/processes."""


def refuse_io(event: str, args: tuple[Any, ...]) -> None:
    if running["pure"] and event in FORBIDDEN:
        raise ImpureTest(f"{event} in a pure test (tests/unit): move the test to its level")


sys.addaudithook(refuse_io)


def no_sleep(seconds: float) -> None:
    raise ImpureTest(f"time.sleep({seconds}) in a pure test (tests/unit): pass the clock in instead")


@pytest.fixture(autouse=True)
def pure(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(time, "sleep", no_sleep)
    running["pure"] = True
    try:
        yield
    finally:
        running["pure"] = False
