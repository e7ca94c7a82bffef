"""The access log's line: the same JSON `logging` wrote, built without any I/O. The batch writer on real pipes:
tests/inprocess/test_batch_writer.py."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from proxy.http.access_log import AccessLog, request_id
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
        access = AccessLog(enabled=True, fd=write_end)  # the same writer as stderr's, on a pipe we read
        access.enabled = True  # whatever the test run's logging level
        access.write(rid, traceparent, (team, "sessions", 200, "miss", upstream), 0.0138)
        record = logging.getLogger("braze_proxy.access").makeRecord(
            "braze_proxy.access", logging.INFO, __file__, 1, "request", (), None, extra=fields
        )
        access.start()
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


TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENTS = [  # (the header, the trace id its line names)
    (None, None),
    (f"00-{TRACE}-00f067aa0ba902b7-01", TRACE),
    (f"  00-{TRACE}-00f067aa0ba902b7-01 ", TRACE),
    ("00-bad", None),
    ("0" * 8000, None),  # the largest a header may be: the line keeps nothing of it
]


def parse_time(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=120, allow_nan=False),
            st.sampled_from([None, "reports", 'ops "β"']),
            st.sampled_from(TRACEPARENTS),
            st.floats(min_value=0, max_value=2.5, allow_nan=False),
        ),
        min_size=1,
        max_size=40,
    )
)
@example([(0.0, None, (None, None), 0.0009999999), (0.0, None, (None, None), 0.001), (0.0, None, (None, None), 0.0)])
def test_every_line_of_a_run_has_its_own_fields(
    requests: list[tuple[float, str | None, tuple[str | None, str | None], float]],
) -> None:
    """Many lines through one AccessLog, rendered as one batch (its remembered pieces reused and mixed, its
    times in any order): each holds its own time to the millisecond, team, trace and duration, the duration
    as round(ms, 3) writes it."""
    start = 1_800_000_000.25
    with tempfile.TemporaryFile() as file:
        access = AccessLog(enabled=True, fd=file.fileno())
        access.enabled = True
        ids = [request_id(None) for _ in requests]
        for rid, (seconds, team, (traceparent, _), later) in zip(ids, requests, strict=True):
            access.write(rid, traceparent, (team, "sessions", 200, "hit", None), seconds, at=start + later)
        access.start()
        assert access.close(timeout=5)
        file.seek(0)
        lines = file.read().decode().splitlines()
    assert len(lines) == len(requests)
    for line, rid, (seconds, team, (_, trace), later) in zip(lines, ids, requests, strict=True):
        got = json.loads(line)
        at = start + later
        assert at - 0.001 - 1e-6 < parse_time(got["time"]) <= at + 1e-6  # its own millisecond, never a neighbour's
        assert got["time"].startswith("2027-01-15T08:00:0") and got["time"].endswith("Z")
        assert got["request_id"] == rid and got["team"] == team
        assert got["trace_id"] == trace
        assert line.endswith(f',"duration_ms":{round(seconds * 1e6) / 1000!r}}}')
