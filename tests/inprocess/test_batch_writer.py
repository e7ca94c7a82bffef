"""The access log's line and its batch writer, on real pipes: the same JSON `logging` wrote, whole lines, and
a reader that stops reading costs dropped (and counted) lines, never memory."""

from __future__ import annotations

import contextlib
import json
import os
import select
import threading
import time
from collections.abc import Iterator

import pytest

from proxy.http.batch_writer import BatchWriter


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read_end, write_end = os.pipe()
    yield read_end, write_end
    for fd in (read_end, write_end):
        with contextlib.suppress(OSError):  # a test closed it already
            os.close(fd)


def read_all(fd: int, seconds: float = 5) -> bytes:
    """What the pipe holds now and until its write end closes (`seconds` at most)."""
    chunks, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not select.select([fd], [], [], 0.05)[0]:
            continue
        try:
            chunk = os.read(fd, 1 << 16)
        except OSError:  # EBADF: closed meanwhile
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


class Dropped:
    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, lines: int) -> None:
        with self._lock:
            self.count += lines


def test_lines_arrive_whole_in_order_and_in_few_writes(pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    dropped = Dropped()
    writer = BatchWriter(write_end, dropped, interval=0.05)
    writer.start()
    sent = [json.dumps({"n": i, "pad": "x" * (i % 300)}) for i in range(5_000)]
    for line in sent:
        writer.put(line)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(read_all(read_end)))
    reader.start()
    assert writer.close(timeout=5)
    os.close(write_end)
    reader.join(6)
    assert received[0].decode().splitlines() == sent
    assert dropped.count == 0


def test_a_blocked_reader_drops_and_counts_instead_of_growing(pipe: tuple[int, int]) -> None:
    """Nobody reads the pipe: once it is full the writer waits, at most `max_lines` wait with it, the rest
    are dropped and counted; `put` never blocks. Once the reader reads again, every line is either read or
    counted as dropped."""
    read_end, write_end = pipe
    dropped = Dropped()
    writer = BatchWriter(write_end, dropped, max_lines=1_000, interval=0.01, wake_at=100)
    writer.start()
    total, most_waiting = 30_000, 0
    started = time.monotonic()
    for i in range(total):
        writer.put(f'{{"n":{i},"pad":"{"x" * 200}"}}')  # 30,000 x 215 bytes: far more than a pipe holds
        most_waiting = max(most_waiting, writer.waiting)
        if i % 1000 == 0:
            time.sleep(0.002)  # let the writer fill the pipe and block in write(2)
    assert time.monotonic() - started < 5  # never waited on the pipe
    assert most_waiting <= 1_000
    assert dropped.count > total // 2  # the pipe (64 KiB) and the 1,000 waiting lines hold a few thousand
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(read_all(read_end)))
    reader.start()
    assert writer.close(timeout=5)
    os.close(write_end)
    reader.join(6)
    lines = received[0].decode().splitlines()
    assert all(json.loads(line)["pad"] for line in lines)  # whole lines only
    assert len(lines) + dropped.count == total


def test_a_closed_reader_costs_counted_lines_not_an_error(pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    os.close(read_end)  # EPIPE on every write (Python ignores SIGPIPE)
    dropped = Dropped()
    writer = BatchWriter(write_end, dropped, interval=0.01)
    writer.start()
    for i in range(500):
        writer.put(f'{{"n":{i}}}')
    assert writer.close(timeout=5)
    assert dropped.count == 500
