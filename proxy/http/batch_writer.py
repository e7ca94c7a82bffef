"""Lines written to a file descriptor in batches, with a bound on what may wait.

The access log's writer: a request appends its record to a deque (in an event loop, the deque's own `append`:
no Python frame, no lock, no syscall). Every `interval` seconds the loop's timer renders what waits into lines,
all at once, and has them written; once more at close. Rendering a batch at once keeps the formatting code hot
in the CPU's caches for the batch instead of evicting the request path's code on every request. Each write(2)
is a run of whole lines of at most PIPE_BUF bytes, so that on a pipe shared with other writers (the `logging`
handler, the other `--workers`) no line is ever cut by another's; to a regular file, whose writes the kernel
keeps whole, a batch is one write(2).

Who writes: the event loop itself where a write can never block it: a pipe or terminal reopened non-blocking
through /proc (an open file description of our own, so nobody else's writes turn non-blocking). Otherwise a
thread of its own: a socket, and a regular file, whose writes O_NONBLOCK cannot stop from waiting on the disk
(ext4 makes a write wait for a journal commit, seen here to last seconds). The loop still renders; the thread
only makes the write(2)s, one GIL hand-over per batch. When the reader stops reading (a blocked stderr, a
stalled disk), what waits is cut back to `max_lines` on every tick of the loop's timer (between two ticks, at
most one interval's records more arrive): the newest are dropped and counted, and the process does not grow;
the loop never waits for the reader. Without an event loop, `put` checks the bound itself and the thread renders.
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
    """An fd the event loop may write `fd`'s lines to without ever blocking: a non-blocking reopening of it for
    a pipe or terminal; None when there is none (a regular file, a socket, no /proc)."""
    if is_regular_file(fd):
        return None  # O_NONBLOCK does not apply to a file: its writes can wait on the disk
    try:
        return os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None


def is_regular_file(fd: int) -> bool:
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        return False


log = logging.getLogger(__name__)
T = TypeVar("T")


def joined(lines: list[str]) -> str:
    """The default rendering: each record is a line already (without its newline)."""
    return "\n".join(lines) + "\n"


class BatchWriter(Generic[T]):
    """Writes records as ASCII lines to `fd`; `start()`, then `put()` from one thread (the event loop's), then
    `close()`. `render(records)` makes a batch's text, every line ending with a newline, one batch at a time:
    in the event loop once started in one, else (and at close) in the thread that writes.

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
        self._records: deque[T] = deque()  # append and popleft are atomic: no lock between the two threads
        self._chunks: deque[tuple[bytes, int]] = deque()  # rendered, waiting for write(2): (text, its lines)
        self._chunk_lines = 0
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
        self._rendering = threading.Lock()  # one batch rendered at a time (the loop's timer, close())
        self._writing = threading.Lock()  # one writer at a time (the loop's timer or the thread, close())
        self._counting = threading.Lock()  # _chunks and _chunk_lines change together
        self._owned: int | None = None  # the fd this writer opened (and closes)
        self._chunk = 1 << 62 if is_regular_file(fd) else CHUNK_BYTES  # the longest write(2): whole on a pipe
        # Queue one record; never blocks. Checks the bound until the loop's timer keeps it (start()).
        self.put: Callable[[T], None] = self._put_checked

    @property
    def waiting(self) -> int:  # lines not written yet
        return len(self._records) + self._chunk_lines

    @property
    def by_loop(self) -> bool:  # whether the event loop writes (else a thread does)
        return self._loop_writes

    def _put_checked(self, record: T) -> None:
        """`put` without an event loop: dropped and counted when `max_lines` already wait."""
        records = self._records
        waiting = len(records)
        if waiting + self._chunk_lines >= self._max_lines:
            self._count_dropped(1)
            return
        records.append(record)
        if waiting == self._wake_at:
            self._wake.set()

    def start(self) -> None:
        """In a running event loop its timer renders (and keeps the bound), and the loop writes where the fd
        allows it (`loop_writable`); else a daemon thread writes (a blocked fd never keeps the process up)."""
        if self._thread is not None or self._loop is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:  # its timer keeps the bound: a record costs the deque's append alone
            self._loop, self.put = loop, self._records.append
            self._timer = loop.call_later(self._interval, self._tick)
            fd = loop_writable(self._fd)
            if fd is not None:
                self._fd, self._owned, self._loop_writes = fd, fd, True
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
        self._render_waiting()
        self._write_chunks(block=True)
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
            self._render_waiting()
            if self._loop_writes:
                self._write_chunks(block=False)
            elif self._chunks:
                self._wake.set()
        finally:  # whatever happened to this batch, the next ones are still written
            self._timer = self._loop.call_later(self._interval, self._tick)

    def _trim(self) -> None:
        """Cut what waits back to `max_lines`, dropping (and counting) the newest records."""
        over = len(self._records) + self._chunk_lines - self._max_lines
        dropped = 0
        with contextlib.suppress(IndexError):  # the thread's last batch at close took them meanwhile
            while dropped < over:
                self._records.pop()
                dropped += 1
        if dropped:
            self._count_dropped(dropped)

    def _run(self) -> None:
        while not self._closing:
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._loop is None:  # else the loop's timer renders
                self._render_waiting()
            self._write_chunks(block=True)
        self._render_waiting()  # what was queued while the last batch was written
        self._write_chunks(block=True)

    def _render_waiting(self) -> None:
        """The records waiting now, rendered into one chunk for write(2) (later ones go with the next)."""
        with self._rendering:
            records = self._records
            waiting = len(records)
            if not waiting:
                return
            batch: list[T] = []
            take, add = records.popleft, batch.append
            with contextlib.suppress(IndexError):  # the loop's timer cut the newest meanwhile
                for _ in range(waiting):
                    add(take())
            try:
                data = self._render(batch).encode("ascii", "replace")
            except Exception:  # a bug in the rendering: this batch is lost, counted and logged, never the rest
                self._count_dropped(len(batch))
                log.exception("could not render %d access-log lines", len(batch))
                return
            with self._counting:
                self._chunks.append((data, len(batch)))
                self._chunk_lines += len(batch)

    def _write_chunks(self, block: bool) -> None:
        """Write the rendered chunks in order; a full non-blocking fd keeps the rest (unless `block`)."""
        with self._writing:
            while self._chunks:
                data, lines = self._chunks[0]  # only this writer takes from the left
                rest = self._send(data, block)
                with self._counting:
                    if rest:  # full: what is new waits behind it
                        left = rest.count(b"\n")
                        self._chunks[0] = (rest, left)
                        self._chunk_lines -= lines - left
                        return
                    self._chunks.popleft()
                    self._chunk_lines -= lines

    def _send(self, data: bytes, block: bool) -> bytes:
        """Write `data` (whole lines) in runs of whole lines (of at most PIPE_BUF bytes but to a regular file);
        returns what is left: nothing once written, or dropped (and counted) when the fd refuses it.
        A full non-blocking fd: wait (boundedly when closing) if `block`, else return the rest for later."""
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
                        return b""
                    return rest
                except OSError:  # closed, broken pipe: these lines cannot be written
                    self._count_dropped(data.count(b"\n", start))
                    return b""
                chunk = chunk[written:]
            start = end
        return b""
