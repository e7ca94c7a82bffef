"""Lines written to a file descriptor in batches, with a bound on what may wait.

The access log's writer: a request appends its record to a deque (in an event loop, the deque's own `append`:
no Python frame, no lock, no syscall); what waits is rendered into lines and written every `interval` seconds
and once more at close. Rendering a batch at once keeps the formatting code hot in the CPU's caches for the
batch instead of evicting the request path's code on every request. Each write(2) is a run of whole lines of at
most PIPE_BUF bytes, so that on a pipe shared with other writers (the `logging` handler, the other `--workers`)
no line is ever cut by another's; to a regular file, whose writes the kernel keeps whole, a batch is one
write(2).

Who writes: the event loop itself wherever a write can never block it (a regular file, or a pipe or terminal
reopened non-blocking through /proc: an open file description of our own, so nobody else's writes turn
non-blocking). Otherwise a thread of its own, which costs a GIL hand-over per write. When the reader stops
reading (a blocked stderr), what waits is cut back to `max_lines` on every tick of the loop's timer (between two
ticks, at most one interval's records more arrive): the newest are dropped and counted, and the process does not
grow; the loop never waits for the reader. Without an event loop, `put` checks the bound itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import stat
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

MAX_LINES = 20_000  # records: a line is 250-450 bytes, so at most about 9 MB of text waits
INTERVAL_SECONDS = 0.05  # at 30,000 requests a second, batches of 1,500 lines: cache-warm, and seen at once
WAKE_AT = 128  # without an event loop: the thread writes early under load
CHUNK_BYTES = select.PIPE_BUF  # one write(2) of at most this many bytes is atomic on a pipe
WAIT_WRITABLE_SECONDS = 0.1  # a non-blocking fd that is full: how long one wait for room lasts


def loop_writable(fd: int) -> int | None:
    """An fd the event loop may write `fd`'s lines to without ever blocking: `fd` itself for a regular file,
    a non-blocking reopening of it for a pipe or terminal; None when there is none (a socket, no /proc)."""
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            return fd
        return os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None


log = logging.getLogger(__name__)
T = TypeVar("T")


def joined(lines: list[str]) -> str:
    """The default rendering: each record is a line already (without its newline)."""
    return "\n".join(lines) + "\n"


class BatchWriter(Generic[T]):
    """Writes records as ASCII lines to `fd`; `start()`, then `put()` from one thread (the event loop's), then
    `close()`. `render(records)` makes a batch's text, every line ending with a newline; it runs under a lock,
    in the thread that writes, one batch at a time.

    `count_dropped(n)` is called (from either thread) with the number of lines lost: cut because more than
    `max_lines` were waiting, or in a write the fd refused (closed, broken pipe).
    """

    def __init__(
        self,
        fd: int,
        count_dropped: Callable[[int], None],
        render: Callable[[list[T]], str] = joined,  # type: ignore[assignment]  # T is str then
        *,
        max_lines: int = MAX_LINES,
        interval: float = INTERVAL_SECONDS,
        wake_at: int = WAKE_AT,
    ) -> None:
        self._fd = fd
        self._count_dropped = count_dropped
        self._render = render
        self._lines: deque[T] = deque()  # append and popleft are atomic: no lock between the two threads
        self._max_lines = max_lines
        self._interval = interval
        self._wake_at = min(wake_at, max_lines - 1)
        self._wake = threading.Event()
        self._closing = False
        self._give_up_at = float("inf")  # monotonic: past it, close() no longer waits for a blocked fd
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop whose timer ticks, once started in one
        self._loop_writes = False  # else the thread writes
        self._timer: asyncio.TimerHandle | None = None
        self._refused = b""  # whole lines a full non-blocking fd refused, written before anything newer
        self._refused_lines = 0
        self._writing = threading.Lock()  # the loop's timer and close() (run in a thread) never write at once
        self._owned: int | None = None  # the fd this writer opened (and closes)
        self._chunk = CHUNK_BYTES  # the longest write(2): whole on a pipe up to PIPE_BUF
        # Queue one record; never blocks. Checks the bound until the loop's timer keeps it (start()).
        self.put: Callable[[T], None] = self._put_checked

    @property
    def waiting(self) -> int:
        """Lines not written yet."""
        return len(self._lines) + self._refused_lines

    @property
    def by_loop(self) -> bool:
        """Whether the event loop writes (else a thread does)."""
        return self._loop_writes

    def _put_checked(self, line: T) -> None:
        """`put` without an event loop: dropped and counted when `max_lines` already wait."""
        lines = self._lines
        waiting = len(lines)
        if waiting + self._refused_lines >= self._max_lines:
            self._count_dropped(1)
            return
        lines.append(line)
        if waiting == self._wake_at:
            self._wake.set()

    def start(self) -> None:
        """Start writing: from the running event loop when the fd allows it (see `loop_writable`), else from a
        thread (a daemon: a blocked fd never keeps the process from exiting)."""
        if self._thread is not None or self._loop is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:  # its timer keeps the bound: a record costs the deque's append alone
            self._loop, self.put = loop, self._lines.append
            self._timer = loop.call_later(self._interval, self._tick)
            fd = loop_writable(self._fd)
            if fd is not None:
                if fd == self._fd:  # a regular file: the kernel keeps each write(2) whole, however long
                    self._chunk = 1 << 62
                self._owned = fd if fd != self._fd else None
                self._fd, self._loop_writes = fd, True
                return
        self._thread = threading.Thread(target=self._run, name="braze-proxy-batch-writer", daemon=True)
        self._thread.start()

    def close(self, timeout: float) -> bool:
        """Write what waits (from any thread), waiting `timeout` seconds at most for a blocked fd; True if all
        was written."""
        self._give_up_at = time.monotonic() + timeout
        self._closing = True
        thread = self._thread
        if thread is not None:
            self._wake.set()
            thread.join(timeout)
            return not thread.is_alive() and not self.waiting
        self._write_waiting(block=True)
        written = not self.waiting
        if self._owned is not None:  # the reopened fd: later lines are counted as dropped (EBADF), never
            with self._writing, contextlib.suppress(OSError):  # written to whatever reuses its number
                os.close(self._owned)
                self._fd, self._owned = -1, None
        return written

    def _tick(self) -> None:
        if self._closing or self._loop is None:
            return
        try:
            self._trim()
            if self._loop_writes:
                self._write_waiting(block=False)
            elif self._lines:
                self._wake.set()
        finally:  # whatever happened to this batch, the next ones are still written
            self._timer = self._loop.call_later(self._interval, self._tick)

    def _trim(self) -> None:
        """Cut what waits back to `max_lines`, dropping (and counting) the newest."""
        over = len(self._lines) + self._refused_lines - self._max_lines
        dropped = 0
        with contextlib.suppress(IndexError):  # the writing thread took the rest meanwhile
            while dropped < over:
                self._lines.pop()
                dropped += 1
        if dropped:
            self._count_dropped(dropped)

    def _run(self) -> None:
        while not self._closing:
            self._wake.wait(self._interval)
            self._wake.clear()
            self._write_waiting(block=True)
        self._write_waiting(block=True)  # what was queued while the last batch was written

    def _write_waiting(self, block: bool) -> None:
        with self._writing:
            if self._refused:
                refused, self._refused, self._refused_lines = self._refused, b"", 0
                if not self._send(refused, block):
                    return  # still full: what is new waits behind it
            lines = self._lines
            waiting = len(lines)  # only what waits now: lines queued meanwhile go with the next batch
            if not waiting:
                return
            batch: list[T] = []
            take, add = lines.popleft, batch.append
            with contextlib.suppress(IndexError):  # the loop's timer cut the newest meanwhile (a thread writes)
                for _ in range(waiting):
                    add(take())
            try:
                text = self._render(batch)
            except Exception:  # a bug in the rendering: this batch is lost, counted and logged, never the rest
                self._count_dropped(len(batch))
                log.exception("could not render %d access-log lines", len(batch))
                return
            self._send(text.encode("ascii", "replace"), block)

    def _send(self, data: bytes, block: bool) -> bool:
        """Write `data` (whole lines) in runs of whole lines (of at most PIPE_BUF bytes but to a regular file);
        True when nothing is left.
        A full non-blocking fd: wait (boundedly when closing) if `block`, else keep the rest for later."""
        start, size = 0, len(data)
        while start < size:  # each round writes at least one whole line
            end = start + self._chunk
            if end < size:
                cut = data.rfind(b"\n", start, end)
                end = cut + 1 if cut >= start else data.index(b"\n", end) + 1  # a line longer than a chunk: alone
            chunk = memoryview(data)[start:end]
            while chunk:
                try:
                    written = os.write(self._fd, chunk)
                except BlockingIOError:  # full: a run of at most PIPE_BUF bytes on a pipe is all or nothing
                    if block and not (self._closing and time.monotonic() > self._give_up_at):
                        select.select([], [self._fd], [], WAIT_WRITABLE_SECONDS)
                        continue
                    rest = bytes(chunk) + data[end:]  # a line longer than a chunk may have gone in part
                    if block:  # closing, and out of time
                        self._count_dropped(rest.count(b"\n"))
                        return True
                    self._refused, self._refused_lines = rest, rest.count(b"\n")
                    return False
                except OSError:  # closed, broken pipe: these lines cannot be written
                    self._count_dropped(data.count(b"\n", start))
                    return True
                chunk = chunk[written:]
            start = end
        return True
