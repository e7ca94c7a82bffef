"""The access log's line and its batch writer, on real pipes: the same JSON `logging` wrote, whole lines, and
a reader that stops reading costs dropped (and counted) lines, never memory."""

from __future__ import annotations

import json
import os
import threading
import time

from proxy.http.batch_writer import BatchWriter
from tests.unit.test_batch_writer import Dropped, pipe, read_all

__all__ = ["pipe"]  # the fixture, shared with the pure tests of the writer


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
