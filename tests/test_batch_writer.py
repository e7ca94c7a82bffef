"""The access log's line and its batch writer, on real pipes: the same JSON `logging` wrote, whole lines, and
a reader that stops reading costs dropped (and counted) lines, never memory."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from proxy.http.access_log import AccessLog, request_id
from proxy.http.batch_writer import BatchWriter
from proxy.obs.logs import JsonFormatter


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


@pytest.mark.parametrize("team", [None, "reports", 'ops "β" \\ team'])
@pytest.mark.parametrize(("trace", "upstream"), [(None, None), ("4bf92f3577b34da6a3ce929d0e0e4736", 200)])
def test_the_line_is_what_logging_wrote(team: str | None, trace: str | None, upstream: int | None) -> None:
    """Through AccessLog to a real pipe, against logs.JsonFormatter's line for the same fields, byte for byte
    but for the time (compared to the millisecond: the two read the clock apart)."""
    rid, traceparent = request_id(None), None if trace is None else f"00-{trace}-00f067aa0ba902b7-01"
    fields = {"request_id": rid, "trace_id": trace, "team": team, "braze_endpoint": "sessions", "status": 200,
              "cache": "miss", "upstream_status": upstream, "duration_ms": 13.8}  # fmt: skip
    read_end, write_end = os.pipe()
    try:
        access = AccessLog(enabled=True)
        access._writer = BatchWriter(write_end, Dropped())  # the same writer as stderr's, on a pipe we read
        access.enabled = True  # whatever the test run's logging level
        access.write(rid=rid, traceparent=traceparent, endpoint="sessions", team=team, status=200, cache="miss",
                     upstream_status=upstream, seconds=0.0138)  # fmt: skip
        record = logging.getLogger("braze_proxy.access").makeRecord(
            "braze_proxy.access", logging.INFO, __file__, 1, "request", (), None, extra=fields
        )
        access._writer.start()
        assert access.close(timeout=5)
        line = read_all(read_end, seconds=0.5).decode()
    finally:
        os.close(read_end)
        os.close(write_end)
    expected = JsonFormatter().format(record)
    assert line.endswith("\n") and line.count("\n") == 1 and line.isascii()
    got, want = json.loads(line), json.loads(expected)
    assert abs(parse_time(got.pop("time")) - parse_time(want.pop("time"))) < 0.5
    assert list(got.items()) == list(want.items())  # the same fields, values and order
    assert line.split('"level"', 1)[1] == expected.split('"level"', 1)[1] + "\n"  # and the same bytes


def parse_time(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


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
