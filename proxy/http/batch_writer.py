"""Lines written to a file descriptor in batches, by one thread, with a bound on what may wait.

The access log's writer: a request appends its line to a deque (no lock, no syscall); a thread writes what
waits every `interval` seconds, as soon as `wake_at` lines wait, and once more at close. Each write(2) is a
run of whole lines of at most PIPE_BUF bytes, so that on a pipe shared with other writers (the `logging`
handler, the other `--workers`) no line is ever cut by another's. When the reader stops reading (a blocked
stderr), at most `max_lines` wait: later lines are dropped and counted, and the process does not grow.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections import deque
from collections.abc import Callable

MAX_LINES = 20_000  # a line is 250-450 bytes: at most about 9 MB waits
INTERVAL_SECONDS = 0.25
WAKE_AT = 128  # lines: the writer wakes early under load: few lines wait (a bounded, cache-warm working set)
CHUNK_BYTES = select.PIPE_BUF  # one write(2) of at most this many bytes is atomic on a pipe
WAIT_WRITABLE_SECONDS = 0.1  # a non-blocking fd that is full: how long one wait for room lasts


class BatchWriter:
    """Writes ASCII lines (without their newline) to `fd` from a thread of its own; `start()`, then `put()`
    from one thread (the event loop's), then `close()`.

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

    @property
    def waiting(self) -> int:
        """Lines not written yet."""
        return len(self._lines)

    def put(self, line: str) -> None:
        """Queue one line (never blocks; dropped and counted when `max_lines` already wait)."""
        lines = self._lines
        waiting = len(lines)
        if waiting >= self._max_lines:
            self._count_dropped(1)
            return
        lines.append(line)
        if waiting == self._wake_at:
            self._wake.set()

    def start(self) -> None:
        """Start the writing thread (a daemon: a blocked fd never keeps the process from exiting)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="braze-proxy-batch-writer", daemon=True)
            self._thread.start()

    def close(self, timeout: float) -> bool:
        """Write what waits and stop the thread, waiting `timeout` seconds at most; True if all was written."""
        thread = self._thread
        if thread is None:
            return not self._lines
        self._give_up_at = time.monotonic() + timeout
        self._closing = True
        self._wake.set()
        thread.join(timeout)
        return not thread.is_alive() and not self._lines

    def _run(self) -> None:
        while not self._closing:
            self._wake.wait(self._interval)
            self._wake.clear()
            self._write_waiting()
        self._write_waiting()  # what was queued while the last batch was written

    def _write_waiting(self) -> None:
        lines = self._lines
        waiting = len(lines)  # only what waits now: lines queued meanwhile go with the next batch
        if not waiting:
            return
        take = lines.popleft
        data = ("\n".join([take() for _ in range(waiting)]) + "\n").encode("ascii", "replace")
        start, size = 0, len(data)
        while start < size:  # each round writes at least one whole line
            end = start + CHUNK_BYTES
            if end < size:
                cut = data.rfind(b"\n", start, end)
                end = cut + 1 if cut >= start else data.index(b"\n", end) + 1  # a line longer than a chunk: alone
            self._write(memoryview(data)[start:end])
            start = end

    def _write(self, data: memoryview) -> None:
        while data:
            try:
                written = os.write(self._fd, data)
            except BlockingIOError:  # an fd someone made non-blocking, and full: wait for room, boundedly
                if self._closing and time.monotonic() > self._give_up_at:
                    break
                select.select([], [self._fd], [], WAIT_WRITABLE_SECONDS)
                continue
            except OSError:  # closed, broken pipe: these lines cannot be written
                break
            data = data[written:]
        if data:
            self._count_dropped(bytes(data).count(b"\n"))  # whole lines not written (a cut one counts)
