"""The access log's batch writer on real pipes, files and sockets: whole lines in order, written by the event
loop where it can never block it (else by a thread), and a reader that stops reading costs dropped (and counted)
lines, never memory nor a blocked loop."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from proxy.http.batch_writer import BatchWriter
from tests.unit.test_batch_writer import Dropped, pipe, read_all

__all__ = ["pipe"]  # the fixture, shared with the pure tests of the writer


def read_in_background(read_end: int) -> Callable[[], list[str]]:
    """Read the pipe in a thread from now on; the function returned waits for the end (6 s at most) and gives
    the lines read."""
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(read_all(read_end)))
    reader.start()

    def lines() -> list[str]:
        reader.join(6)
        return received[0].decode().splitlines()

    return lines


def test_lines_arrive_whole_in_order_and_in_few_writes(pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    dropped = Dropped()
    writer = BatchWriter(write_end, dropped, interval=0.05)
    writer.start()
    assert not writer.by_loop  # no event loop here: a thread writes
    sent = [json.dumps({"n": i, "pad": "x" * (i % 300)}) for i in range(5_000)]
    for line in sent:
        writer.put(line)
    lines = read_in_background(read_end)
    assert writer.close(timeout=5)
    os.close(write_end)
    assert lines() == sent
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
    lines = read_in_background(read_end)
    assert writer.close(timeout=5)
    os.close(write_end)
    read = lines()
    assert all(json.loads(line)["pad"] for line in read)  # whole lines only
    assert len(read) + dropped.count == total


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


async def test_in_an_event_loop_a_pipe_is_written_by_the_loop_through_a_non_blocking_fd_of_its_own(
    pipe: tuple[int, int],
) -> None:
    read_end, write_end = pipe
    dropped = Dropped()
    writer = BatchWriter(write_end, dropped, interval=0.01)
    writer.start()
    assert writer.by_loop
    assert os.get_blocking(write_end)  # the shared fd (stderr, for the others) stays blocking
    lines = read_in_background(read_end)
    sent = [json.dumps({"n": i, "pad": "x" * (i % 300)}) for i in range(3_000)]
    for i, line in enumerate(sent):
        writer.put(line)
        if i % 500 == 0:
            await asyncio.sleep(0.02)  # the loop's timer writes what waits
    assert writer.close(timeout=5)
    os.close(write_end)  # with the writer's own fd closed by close(): the reader sees the end
    assert lines() == sent
    assert dropped.count == 0


async def test_a_blocked_reader_never_blocks_the_loop_and_costs_counted_lines(pipe: tuple[int, int]) -> None:
    """In an event loop `put` is the deque's bare append; the loop's timer cuts what waits back to `max_lines`
    on every tick (the newest go, counted), so at most one interval's records more ever wait."""
    read_end, write_end = pipe
    dropped = Dropped()
    writer = BatchWriter(write_end, dropped, max_lines=1_000, interval=0.01)
    writer.start()
    assert writer.by_loop
    total, most_waiting, most_after_a_tick = 30_000, 0, 0
    started = time.monotonic()
    for i in range(total):
        writer.put(f'{{"n":{i},"pad":"{"x" * 200}"}}')  # far more than a pipe holds, and nobody reads
        most_waiting = max(most_waiting, writer.waiting)
        if i % 1000 == 999:
            await asyncio.sleep(0.01)  # one interval: the timer has ticked when this returns
            most_after_a_tick = max(most_after_a_tick, writer.waiting)
    assert time.monotonic() - started < 5
    assert most_after_a_tick <= 1_000
    assert most_waiting <= 2_000  # the bound, and the 1,000 put between two ticks
    assert dropped.count > total // 2
    lines = read_in_background(read_end)
    assert writer.close(timeout=5)
    os.close(write_end)
    read = lines()
    assert all(json.loads(line)["pad"] for line in read)  # whole lines only
    assert len(read) + dropped.count == total
    assert [json.loads(line)["n"] for line in read] == sorted(json.loads(line)["n"] for line in read)


async def test_a_socket_written_by_a_thread_is_still_bounded_by_the_loops_timer() -> None:
    """stderr a socket nobody reads: a thread writes and blocks, the loop's timer still cuts what waits."""
    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    dropped = Dropped()
    try:
        writer = BatchWriter(ours.fileno(), dropped, max_lines=500, interval=0.01)
        writer.start()
        assert not writer.by_loop
        total, most_after_a_tick = 20_000, 0
        for i in range(total):
            writer.put(f'{{"n":{i},"pad":"{"x" * 200}"}}')
            if i % 500 == 499:
                await asyncio.sleep(0.01)
                most_after_a_tick = max(most_after_a_tick, writer.waiting)
        assert most_after_a_tick <= 500
        assert dropped.count > total // 2
        received: list[bytes] = []
        reader = threading.Thread(target=lambda: received.append(_recv_all(theirs)))
        reader.start()
        assert writer.close(timeout=5)
        ours.shutdown(socket.SHUT_WR)
        reader.join(6)
        read = received[0].decode().splitlines()
        assert all(json.loads(line)["pad"] for line in read)
        assert len(read) + dropped.count == total
    finally:
        ours.close()
        theirs.close()


def _recv_all(sock: socket.socket) -> bytes:
    sock.settimeout(5)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


async def test_a_regular_file_is_written_by_a_thread_from_lines_the_loop_rendered(tmp_path: Path) -> None:
    """A write to a file can wait on the disk (O_NONBLOCK does not apply): a thread makes the write(2)s, on the
    caller's fd; the loop renders, so the thread never holds the GIL for Python work of its own."""
    path = tmp_path / "stderr.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    rendered_in: set[str] = set()

    def render(lines: list[str]) -> str:
        rendered_in.add(threading.current_thread().name)
        return "".join(f"{line}\n" for line in lines)

    try:
        writer = BatchWriter(fd, Dropped(), render, interval=0.01)
        writer.start()
        assert not writer.by_loop
        sent = [f'{{"n":{i}}}' for i in range(1_000)]
        for i, line in enumerate(sent):
            writer.put(line)
            if i % 250 == 249:
                await asyncio.sleep(0.02)
        assert writer.close(timeout=5)
        os.write(fd, b"after\n")  # the fd is still the caller's
    finally:
        os.close(fd)
    assert path.read_text().splitlines() == [*sent, "after"]
    assert rendered_in == {threading.current_thread().name}  # the loop's thread only (close() ran here too)


async def test_a_socket_is_written_by_a_thread() -> None:
    """No non-blocking reopening of a socket through /proc: a thread writes, the loop never blocks on it."""
    ours, theirs = socket.socketpair()
    try:
        writer = BatchWriter(ours.fileno(), Dropped(), interval=0.01)
        writer.start()
        assert not writer.by_loop
        for i in range(100):
            writer.put(f'{{"n":{i}}}')
        assert writer.close(timeout=5)
        ours.shutdown(socket.SHUT_WR)
        received = b""
        theirs.settimeout(5)
        while chunk := theirs.recv(65536):
            received += chunk
        assert received.decode().splitlines() == [f'{{"n":{i}}}' for i in range(100)]
    finally:
        ours.close()
        theirs.close()
