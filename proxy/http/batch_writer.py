"""Lines written to a file descriptor in batches, with a bound on what may wait.

The access log's writer: a request appends its line to a deque (no lock, no syscall); what waits is written
every `interval` seconds, as soon as `wake_at` lines wait, and once more at close. Each write(2) is a run of
whole lines of at most PIPE_BUF bytes, so that on a pipe shared with other writers (the `logging` handler, the
other `--workers`) no line is ever cut by another's; to a regular file, whose writes the kernel keeps whole, a
batch is one write(2).

Who writes: the event loop itself wherever a write can never block it (a regular file, or a pipe or terminal
reopened non-blocking through /proc: an open file description of our own, so nobody else's writes turn
non-blocking). Otherwise a thread of its own, which costs a GIL hand-over per write. When the reader stops
reading (a blocked stderr), at most `max_lines` wait: later lines are dropped and counted, and the process does
not grow; the loop never waits for the reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import stat
import threading
import time
from collections import deque
from collections.abc import Callable

MAX_LINES = 20_000  # a line is 250-450 bytes: at most about 9 MB waits
INTERVAL_SECONDS = 0.25
WAKE_AT = 128  # lines: written early under load: few lines wait (a bounded, cache-warm working set)
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


class BatchWriter:
    """Writes ASCII lines (without their newline) to `fd`; `start()`, then `put()` from one thread (the event
    loop's), then `close()`.

    `count_dropped(n)` is called (from either thread) with the number of lines lost: refused because
    `max_lines` were waiting, or in a write the fd refused (closed, broken pipe).
    """

    def __init__(
        self,
        fd: int,
        count_dropped: Callable[[int], None],
        *,
        max_lines: int = MAX_LINES,
        interval: float = INTERVAL_SECONDS,
        wake_at: int = WAKE_AT,
    ) -> None:
        self._fd = fd
        self._count_dropped = count_dropped
        self._lines: deque[str] = deque()  # append and popleft are atomic: no lock between the two threads
        self._max_lines = max_lines
        self._interval = interval
        self._wake_at = min(wake_at, max_lines - 1)
        self._wake = threading.Event()
        self._closing = False
        self._give_up_at = float("inf")  # monotonic: past it, close() no longer waits for a blocked fd
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # set when the event loop writes
        self._timer: asyncio.TimerHandle | None = None
        self._refused = b""  # whole lines a full non-blocking fd refused, written before anything newer
        self._refused_lines = 0
        self._writing = threading.Lock()  # the loop's timer and close() (run in a thread) never write at once
        self._owned: int | None = None  # the fd this writer opened (and closes)
        self._chunk = CHUNK_BYTES  # the longest write(2): whole on a pipe up to PIPE_BUF

    @property
    def waiting(self) -> int:
        """Lines not written yet."""
        return len(self._lines) + self._refused_lines

    @property
    def by_loop(self) -> bool:
        """Whether the event loop writes (else a thread does)."""
        return self._loop is not None

    def put(self, line: str) -> None:
        """Queue one line (never blocks; dropped and counted when `max_lines` already wait)."""
        lines = self._lines
        waiting = len(lines)
        if waiting + self._refused_lines >= self._max_lines:
            self._count_dropped(1)
            return
        lines.append(line)
        if waiting == self._wake_at:
            if self._loop is not None:
                self._write_waiting(block=False)
            else:
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
        fd = loop_writable(self._fd) if loop is not None else None
        if loop is not None and fd is not None:
            if fd == self._fd:  # a regular file: the kernel keeps each write(2) whole, however long
                self._chunk = 1 << 62
            self._owned = fd if fd != self._fd else None
            self._fd, self._loop = fd, loop
            self._timer = loop.call_later(self._interval, self._tick)
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
        if not self._closing and self._loop is not None:
            self._write_waiting(block=False)
            self._timer = self._loop.call_later(self._interval, self._tick)

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
            take = lines.popleft
            self._send(("\n".join([take() for _ in range(waiting)]) + "\n").encode("ascii", "replace"), block)

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
