"""Following one request: its id (the client's `X-Request-ID` when it is a sane one, else a new one), the trace
it belongs to (W3C `traceparent`), and one JSON access-log line when it ends.

The line names the request id, trace id, team, endpoint, status, cache result, Braze's status and the duration;
never the query string (it may carry a legacy `api_key`) nor any header value but the ids. Lines are written
in batches (batch_writer.py): a hit pays for one f-string of pieces made ahead and one deque append.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable

from multidict import istr

from proxy.http.batch_writer import BatchWriter

log = logging.getLogger("braze_proxy.access")

REQUEST_ID = istr("X-Request-ID")  # case-insensitive already: no folding on every response
TRACEPARENT = istr("traceparent")
_SANE_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")  # what a log line and a header can carry safely
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
_PREFIX = os.urandom(6).hex()  # per process: ids of two replicas never collide
_COUNTER = itertools.count(1)
CLOSE_SECONDS = 5.0  # at shutdown, how long the last lines may take to be written
MAX_TAILS = 1_000  # line tails remembered, one per (team, endpoint, status, outcome): a few dozen in practice
MAX_DURATIONS = 10_000  # duration texts remembered, one per count of microseconds
_NO_TRACE = '","trace_id":null'  # the request id's closing quote and a null trace id


def request_id(given: str | None) -> str:
    """The client's id when it is a sane one (kept as is, so callers can find their request); else a new one."""
    if given is not None and _SANE_ID.fullmatch(given):
        return given
    return f"{_PREFIX}-{next(_COUNTER):x}"


def trace_id(traceparent: str | None) -> str | None:
    """The trace id of a valid W3C `traceparent` (version 00, not all zeros), else None."""
    if traceparent is None:
        return None
    m = _TRACEPARENT.fullmatch(traceparent.strip())
    if m is None or m[1] == "0" * 32 or m[2] == "0" * 16:
        return None
    return m[1]


Outcome = tuple[str | None, str, int, str, int | None]  # team, endpoint, status, cache, upstream status


class AccessLog:
    """One JSON line per proxied request, built without `logging` (no LogRecord, no attribute walk, no
    `json.dumps` of the whole line) and written in batches (batch_writer.py): the same fields, in the same order,
    as `logging` would write them through logs.JsonFormatter.

    On when the setting says so and the `braze_proxy.access` logger is enabled for INFO (so
    BRAZE_PROXY_LOG_LEVEL=WARNING turns it off, as before). `start()` before serving, `close()` after the last
    request: lines still waiting are written then.
    """

    def __init__(
        self, enabled: bool, count_dropped: Callable[[int], None] | None = None, fd: int | None = None
    ) -> None:
        """`fd`: where the lines go (stderr's by default)."""
        self.enabled = enabled and log.isEnabledFor(logging.INFO)
        self._writer = BatchWriter(_stderr_fd() if fd is None else fd, count_dropped or _uncounted)
        self._second = -1
        self._date = ""
        self._millisecond = -1
        self._head = ""
        self._tails: dict[Outcome, str] = {}  # from the team on
        self._untraced: dict[Outcome, str] = {}  # from the trace id (null) on
        self._durations: dict[int, str] = {}
        self._put = self._writer.put

    def start(self) -> None:
        if self.enabled:
            self._writer.start()

    def close(self, timeout: float = CLOSE_SECONDS) -> bool:
        """Write the lines still waiting (`timeout` seconds at most); True if none was left behind."""
        return self._writer.close(timeout)

    def write(
        self, rid: str, traceparent: str | None, outcome: Outcome, seconds: float, at: float | None = None
    ) -> None:
        """Queue the line of one request: `outcome` is (team, endpoint, status, cache, Braze's status), `seconds`
        its duration, `at` its time (Unix seconds; None: now). `rid` comes from `request_id()`, so it needs no
        JSON escaping.

        The line is pieces made ahead and the request id: the head (its time, made once a millisecond), the
        request id, the middle (trace id to the duration's name, made once per team and outcome when there is
        no trace) and the end (the duration, made once per count of microseconds). Either of the last two not
        made yet is made, and the line tried again.
        """
        millisecond = int((time.time() if at is None else at) * 1000)
        if millisecond != self._millisecond:
            self._millisecond, self._head = millisecond, self._line_head(millisecond)
        microseconds = round(seconds * 1e6)
        try:
            middle = self._untraced[outcome] if traceparent is None else _trace_json(traceparent) + self._tails[outcome]
            end = self._durations[microseconds]
        except KeyError:  # a piece not made yet
            middle, end = self._make(outcome, traceparent, microseconds)
        self._put(f"{self._head}{rid}{middle}{end}")

    def _make(self, outcome: Outcome, traceparent: str | None, microseconds: int) -> tuple[str, str]:
        """The middle and end of a line, made and remembered (bounded: emptied when full)."""
        if outcome not in self._tails:
            if len(self._tails) >= MAX_TAILS:
                self._tails.clear()
                self._untraced.clear()
            self._tails[outcome] = _tail(outcome)
            self._untraced[outcome] = _NO_TRACE + self._tails[outcome]
        if microseconds not in self._durations:
            if len(self._durations) >= MAX_DURATIONS:
                self._durations.clear()
            # the milliseconds to 3 places as round(ms, 3) writes them: microseconds / 1000 is that very float
            self._durations[microseconds] = f"{microseconds / 1000!r}}}"
        middle = self._untraced[outcome] if traceparent is None else _trace_json(traceparent) + self._tails[outcome]
        return middle, self._durations[microseconds]

    def _line_head(self, millisecond: int) -> str:
        """The line up to the request id's value, at `millisecond` (Unix time), dated as logs.JsonFormatter does."""
        second = millisecond // 1000
        if second != self._second:
            self._second, self._date = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        stamp = f"{self._date}.{millisecond % 1000:03d}Z"
        return f'{{"time":"{stamp}","level":"info","logger":"braze_proxy.access","message":"request","request_id":"'


def _tail(outcome: Outcome) -> str:
    """The line from the team to the duration's value (exclusive)."""
    names = ("team", "braze_endpoint", "status", "cache", "upstream_status")
    return "," + json.dumps(dict(zip(names, outcome, strict=True)), separators=(",", ":"))[1:-1] + ',"duration_ms":'


def _trace_json(traceparent: str) -> str:
    trace = trace_id(traceparent)
    return _NO_TRACE if trace is None else f'","trace_id":"{trace}"'


def _stderr_fd() -> int:
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by an object without a descriptor (a test runner)
        return 2


def _uncounted(_lines: int) -> None:
    pass
