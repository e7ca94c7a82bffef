"""The pure level's guard (tests/unit/conftest.py): a test here that opens a connection, starts a process or
sleeps fails at once, even where the network is up."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from tests.unit.conftest import ImpureTest


def test_a_connection_is_refused_before_it_is_made() -> None:
    with socket.socket() as sock, pytest.raises(ImpureTest, match=r"socket\.connect"):
        sock.connect(("127.0.0.1", 9))


def test_a_listening_socket_is_refused() -> None:
    with socket.socket() as sock, pytest.raises(ImpureTest, match=r"socket\.bind"):
        sock.bind(("127.0.0.1", 0))


def test_a_process_is_refused() -> None:
    with pytest.raises(ImpureTest, match=r"subprocess\.Popen"):
        subprocess.run([sys.executable, "-c", "pass"], check=False)


def test_a_sleep_is_refused() -> None:
    with pytest.raises(ImpureTest, match=r"time\.sleep"):
        time.sleep(0.01)
