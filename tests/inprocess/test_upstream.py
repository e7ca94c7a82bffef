"""The upstream side in process, against a hostile upstream on loopback that answers raw bytes: what is retried,
what is an error, what is passed on, and where the request goes."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from tests.support.harness import proxy_in_process

OLD = "length=2&ending_at=2020-02-01T00:00:00Z"
GOOD = json.dumps(
    {"message": "success", "data": [{"time": "2020-01-31", "sessions": 1}, {"time": "2020-02-01", "sessions": 2}]}
)


def http(status: str, body: bytes = b"", headers: list[tuple[str, str]] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers or [("Content-Type", "application/json")]]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Hostile:
    """Answers each request with the next script step: bytes to send, or None to close without answering."""

    steps: list[bytes | None]
    targets: list[str] = field(default_factory=list)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.targets.append(head.split(b" ", 2)[1].decode())
        step = self.steps[min(len(self.targets), len(self.steps)) - 1]
        if step is not None:
            writer.write(step)
            await writer.drain()
        writer.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
async def hostile() -> AsyncIterator[Callable[[list[bytes | None]], Hostile]]:
    servers: list[asyncio.Server] = []

    def make(steps: list[bytes | None]) -> Hostile:
        return Hostile(steps)

    async def start(h: Hostile) -> None:
        server = await asyncio.start_server(h.handle, "127.0.0.1", 0)
        servers.append(server)
        h.port = server.sockets[0].getsockname()[1]

    made: list[Hostile] = []

    def factory(steps: list[bytes | None]) -> Hostile:
        h = make(steps)
        made.append(h)
        return h

    factory.start = start  # type: ignore[attr-defined]
    yield factory
    for server in servers:
        server.close()
        await server.wait_closed()


async def serve(factory: Callable[[list[bytes | None]], Hostile], steps: list[bytes | None]) -> Hostile:
    h = factory(steps)
    await factory.start(h)  # type: ignore[attr-defined]
    return h


async def test_a_path_in_the_upstream_url_is_kept_as_a_prefix(hostile: Callable[..., Hostile]) -> None:
    h = await serve(hostile, [http("200 OK", GOOD.encode())])
    async with proxy_in_process(h.url + "/braze/v1/") as proxy:
        assert (await proxy.get(OLD)).status == 200
    assert h.targets == ["/braze/v1/sessions/data_series?length=2&unit=day&ending_at=2020-02-01T00%3A00%3A00%2B00%3A00"]


async def test_failures_before_any_answer_are_retried(hostile: Callable[..., Hostile]) -> None:
    h = await serve(hostile, [None, None, http("200 OK", GOOD.encode())])
    async with proxy_in_process(h.url, upstream_retries=2) as proxy:
        reply = await proxy.get(OLD)
    assert reply.status == 200
    assert len(h.targets) == 3


BROKEN_GZIP = http(
    "200 OK",
    gzip.compress(GOOD.encode())[:-12] + b"garbage-not-gzip",
    [("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
)
TOO_MANY_HEADERS = http("200 OK", GOOD.encode(), [(f"X-Filler-{i}", "x") for i in range(1000)])
HUGE_HEADER = http("200 OK", GOOD.encode(), [("X-Huge", "x" * 20_000)])


@pytest.mark.parametrize("answer", [BROKEN_GZIP, TOO_MANY_HEADERS, HUGE_HEADER], ids=["gzip", "headers", "header"])
async def test_an_answer_that_breaks_after_it_arrived_is_one_call_and_a_502(
    hostile: Callable[..., Hostile], answer: bytes
) -> None:
    h = await serve(hostile, [answer])
    async with proxy_in_process(h.url, upstream_retries=2) as proxy:
        reply = await proxy.get(OLD)
        assert await proxy.metric("braze_proxy_upstream_retries_total") == 0
    assert reply.status == 502, reply.body
    assert reply.json()["message"].startswith("Bad gateway")
    assert len(h.targets) == 1


JUNK = {
    "redirect": http("301 Moved Permanently", b"", [("Location", "https://elsewhere.example/x")]),
    "not modified": http("304 Not Modified"),
    "no data": http("200 OK", b'{"message":"success"}'),
    "null data": http("200 OK", b'{"message":"success","data":null}'),
    "errors": http("200 OK", b'{"message":"success","data":[],"errors":["partial"]}'),
    "unlabelled points": http("200 OK", b'{"message":"success","data":[{"sessions":1}]}'),
}


@pytest.mark.parametrize("junk", JUNK.values(), ids=JUNK.keys())
async def test_junk_is_an_upstream_error_stale_where_possible_and_never_stored(
    hostile: Callable[..., Hostile], junk: bytes
) -> None:
    h = await serve(hostile, [junk, junk, http("200 OK", GOOD.encode()), junk, junk])
    async with proxy_in_process(h.url, upstream_retries=0, ttl_settled=60, stale_while_revalidate_seconds=0) as proxy:
        first = await proxy.get(OLD)
        assert first.status == 502 and "Location" not in first.headers
        assert first.json()["message"].startswith("Bad gateway")
        assert (await proxy.get(OLD)).status == 502, "not stored: asked again"
        good = await proxy.get(OLD)
        assert good.status == 200
        proxy.clock.advance(61)
        stale = await proxy.get(OLD)
        assert stale.status == 200 and stale.body == good.body and "detail=stale-if-error" in stale.cache_status
    assert len(h.targets) == 4
