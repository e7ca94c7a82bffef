"""Following one request: its id (the client's `X-Request-ID` when it is a sane one, else a new one), the trace
it belongs to (W3C `traceparent`), and one JSON access-log line when it ends.

The line names the request id, trace id, team, endpoint, status, cache result, Braze's status and the duration;
never the query string (it may carry a legacy `api_key`) nor any header value but the ids. Lines are written
in batches (batch_writer.py): a request pays for one tuple and one deque append; the batch's lines are made
together, each of pieces made ahead.
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
_FIXED = '"level":"info","logger":"braze_proxy.access","message":"request",'  # every line's, after its time
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
# time, request id, trace (None: no traceparent header, else trace_json's piece), outcome, duration
Record = tuple[float, str, str | None, Outcome, float]


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
        self._writer = BatchWriter(_stderr_fd() if fd is None else fd, count_dropped or _uncounted, self._render)
        self._second = -1
        self._date = ""
        self._head = ""
        self._since = self._until = 0.0
        self._tails: dict[Outcome, str] = {}  # from the team on
        self._durations: dict[int, str] = {}
        self.record = self._writer.put  # a Record; see write()

    def start(self) -> None:
        if self.enabled:
            self._writer.start()
            self.record = self._writer.put  # in an event loop, the deque's own append

    def close(self, timeout: float = CLOSE_SECONDS) -> bool:
        """Write the lines still waiting (`timeout` seconds at most); True if none was left behind."""
        return self._writer.close(timeout)

    def write(
        self, rid: str, traceparent: str | None, outcome: Outcome, seconds: float, at: float | None = None
    ) -> None:
        """Queue the line of one request: `outcome` is (team, endpoint, status, cache, Braze's status), `seconds`
        its duration, `at` its time (Unix seconds; None: now). `rid` comes from `request_id()`, so it needs no
        JSON escaping. Only the record is kept here (the trace id parsed now: a header's text is never kept);
        its line is made with its batch's (`_render`). The hit path calls `record(...)` itself, the same
        without this call."""
        trace = None if traceparent is None else trace_json(traceparent)
        self.record((time.time() if at is None else at, rid, trace, outcome, seconds))

    def _render(self, records: list[Record]) -> str:
        """The lines of a batch, each ending with a newline.

        A line is pieces made ahead and the request id: the head (its time; made once a millisecond), the
        request id, the middle (the trace id to the duration's name; the outcome's part made once per outcome)
        and the end (the duration and the newline; made once per count of microseconds).
        """
        parts: list[str] = []
        head, since, until = self._head, self._since, self._until  # at * 1000 in [since, until): head's millisecond
        last, middle = None, ""  # the last untraced outcome, and its middle
        durations = self._durations
        for at, rid, trace, outcome, seconds in records:
            thousandths = at * 1000.0
            if not since <= thousandths < until:
                head, since, until = self._line_head(thousandths)
            if outcome is not last or trace is not None:
                middle, last = self._middle(outcome, trace), outcome if trace is None else None
            # (x).__round__() is round(x) without the builtin's special-method lookup
            end = durations.get(microseconds := (seconds * 1e6).__round__()) or self._end(microseconds)
            parts.append(head)
            parts.append(rid)
            parts.append(middle)
            parts.append(end)
        return "".join(parts)

    def _middle(self, outcome: Outcome, trace: str | None) -> str:
        """The line from the request id's closing quote to the duration's name (the outcome's part made once
        per outcome; bounded: emptied when full)."""
        tail = self._tails.get(outcome)
        if tail is None:
            if len(self._tails) >= MAX_TAILS:
                self._tails.clear()
            tail = self._tails[outcome] = _tail(outcome)
        return (_NO_TRACE if trace is None else trace) + tail

    def _end(self, microseconds: int) -> str:
        """The duration's value to the end of the line (made once per count; bounded: emptied when full)."""
        if len(self._durations) >= MAX_DURATIONS:
            self._durations.clear()
        # the milliseconds to 3 places as round(ms, 3) writes them: microseconds / 1000 is that very float
        end = self._durations[microseconds] = f"{microseconds / 1000!r}}}\n"
        return end

    def _line_head(self, thousandths: float) -> tuple[str, float, float]:
        """The line up to the request id's value at `thousandths` of a second (Unix time), dated as
        logs.JsonFormatter does, and the range of thousandths it holds for (remembered)."""
        millisecond = int(thousandths)
        second = millisecond // 1000
        if second != self._second:
            self._second, self._date = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        stamp = f"{self._date}.{millisecond % 1000:03d}Z"
        self._head = f'{{"time":"{stamp}",{_FIXED}"request_id":"'
        self._since, self._until = float(millisecond), float(millisecond + 1)
        return self._head, self._since, self._until


def _tail(outcome: Outcome) -> str:
    """The line from the team to the duration's value (exclusive)."""
    names = ("team", "braze_endpoint", "status", "cache", "upstream_status")
    return "," + json.dumps(dict(zip(names, outcome, strict=True)), separators=(",", ":"))[1:-1] + ',"duration_ms":'


def trace_json(traceparent: str) -> str:
    """A line's piece from the request id's closing quote through its trace id (null when the header is not a
    valid traceparent)."""
    trace = trace_id(traceparent)
    return _NO_TRACE if trace is None else f'","trace_id":"{trace}"'


def _stderr_fd() -> int:
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by an object without a descriptor (a test runner)
        return 2


def _uncounted(_lines: int) -> None:
    pass
