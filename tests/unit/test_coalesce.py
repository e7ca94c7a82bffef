"""In-process Flights: one producer per key, waiters share its outcome. The cross-replica lock on a real
redis-server: tests/inprocess/test_coalesce.py."""

from __future__ import annotations

import asyncio

import pytest

from proxy.fill.flights import Flights
from proxy.fill.lock import Marker, decode_marker, encode_marker

# --- Flights: one task per key in a process ---------------------------------------------------------------------


class Upstream:
    """Counts calls; each call waits for `release` so callers pile up on it."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()

    async def call(self, value: str) -> str:
        self.calls += 1
        await self.release.wait()
        return value


async def test_concurrent_runs_of_one_key_share_one_call() -> None:
    flights: Flights[str] = Flights()
    upstream = Upstream()
    callers = [asyncio.ensure_future(flights.run("k", lambda: upstream.call("answer"))) for _ in range(100)]
    await asyncio.sleep(0)
    assert len(flights) == 1
    assert flights.running("k") and not flights.running("other")
    upstream.release.set()
    results = await asyncio.gather(*callers)
    assert upstream.calls == 1
    assert [value for value, _ in results] == ["answer"] * 100
    assert [joined for _, joined in results] == [False] + [True] * 99
    assert len(flights) == 0 and not flights.running("k"), "a finished flight is forgotten"


async def test_different_keys_fly_separately() -> None:
    flights: Flights[str] = Flights()
    upstream = Upstream()
    upstream.release.set()
    results = await asyncio.gather(
        flights.run("a", lambda: upstream.call("a")), flights.run("b", lambda: upstream.call("b"))
    )
    assert results == [("a", False), ("b", False)]
    assert upstream.calls == 2


async def test_a_failure_reaches_every_waiter_and_the_next_run_calls_again() -> None:
    flights: Flights[str] = Flights()
    calls = 0

    async def failing() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        raise RuntimeError("upstream down")

    outcomes = await asyncio.gather(*(flights.run("k", failing) for _ in range(10)), return_exceptions=True)
    assert calls == 1
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    with pytest.raises(RuntimeError):
        await flights.run("k", failing)
    assert calls == 2


async def test_a_caller_that_goes_away_does_not_cancel_the_call_for_the_others() -> None:
    flights: Flights[str] = Flights()
    upstream = Upstream()
    first = asyncio.ensure_future(flights.run("k", lambda: upstream.call("answer")))
    second = asyncio.ensure_future(flights.run("k", lambda: upstream.call("answer")))
    await asyncio.sleep(0)
    first.cancel()  # the client hung up
    await asyncio.sleep(0)
    assert [t.cancelled() for t in flights.tasks()] == [False]
    upstream.release.set()
    assert await second == ("answer", True)
    assert upstream.calls == 1


def marker(status: int = 502, body: bytes = b'{"message":"Bad gateway"}') -> Marker:
    return Marker("error", status, body)


def test_markers_round_trip_and_foreign_bytes_are_none() -> None:
    for m in (marker(), Marker("passed_on", 401, b'{"message":"Invalid API key"}', "application/json; x=1", None),
              Marker("error", 429, b"{}", retry_after=12.5)):  # fmt: skip
        assert decode_marker(encode_marker(m)) == m
    for foreign in (b"", b"E1|200|1|2|3|x\n{}", b"M1|other|200||a\n", b"M1|error|x||a\n", b"M1|error|200||a"):
        assert decode_marker(foreign) is None
