"""Answers made as bytes (rendered.py), over a raw connection to the proxy in process: pipelined keep-alive
requests each get a whole answer in order, with their own request id, a miss as well as hits; an HTTP/1.0
request and a `Connection: close` get aiohttp's answer, with the same headers and body, and the connection
closes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.support.harness import InProcessProxy, proxy_in_process, standin_in_process

QUERY = "length=3&ending_at=2020-01-01T00:00:00Z"
TARGET = f"/sessions/data_series?{QUERY}"
SAME_EVERY_TIME = {"Date", "X-Request-ID", "Connection"}  # what may differ between two answers of one hit


@pytest.fixture
async def proxy() -> AsyncIterator[InProcessProxy]:
    async with standin_in_process() as standin, proxy_in_process(standin.url) as proxy:
        assert "fwd=miss" in (await proxy.get(QUERY)).cache_status
        assert (await proxy.get(QUERY)).cache_status.startswith("braze-proxy; hit;")  # remembered: rendered next
        yield proxy


def request(version: str = "1.1", **headers: str) -> bytes:
    lines = [f"GET {TARGET} HTTP/{version}", "Host: proxy", "Authorization: Bearer key-a"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def answer(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    """One HTTP answer off the stream, framed by its Content-Length."""
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).decode("latin-1").split("\r\n")[:-2]
    headers = dict(line.split(": ", 1) for line in head[1:])
    assert len(headers) == len(head) - 1, "a header name twice"
    return head[0], headers, await asyncio.wait_for(reader.readexactly(int(headers["Content-Length"])), 5)


async def connect(proxy: InProcessProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    server = proxy.client.server
    return await asyncio.open_connection(server.host, server.port)


async def test_pipelined_hits_each_get_a_whole_answer_in_order(proxy: InProcessProxy) -> None:
    expected = await proxy.get(QUERY)
    reader, writer = await connect(proxy)
    try:
        writer.write(request(X_Request_ID="first") + request() + request(X_Request_ID="third"))
        answers = [await answer(reader) for _ in range(3)]
        writer.write(request(X_Request_ID="later"))  # the connection stays open for more
        answers.append(await answer(reader))
    finally:
        writer.close()
    for status, headers, body in answers:
        assert status == "HTTP/1.1 200 OK" and body == expected.body
        assert headers["Cache-Status"].startswith("braze-proxy; hit;")
        assert "Connection" not in headers
        assert list(headers)[-1] == "X-Request-ID"  # the rendered head: the request id goes last
    ids = [headers["X-Request-ID"] for _, headers, _ in answers]
    assert ids[0] == "first" and ids[2] == "third" and ids[3] == "later" and ids[1] not in ids[::2]
    assert {k: v for k, v in answers[0][1].items() if k not in SAME_EVERY_TIME} == {
        k: v for k, v in expected.headers.items() if k not in SAME_EVERY_TIME
    }
    assert await proxy.metric("braze_proxy_requests_total", braze_endpoint="sessions", cache="hit") == 6


async def test_a_miss_and_the_hit_after_it_are_rendered_alike() -> None:
    async with standin_in_process() as standin, proxy_in_process(standin.url) as proxy:
        reader, writer = await connect(proxy)
        try:
            writer.write(request(X_Request_ID="miss"))
            miss = await answer(reader)
            writer.write(request(X_Request_ID="hit"))
            hit = await answer(reader)
        finally:
            writer.close()
        via_aiohttp = await proxy.get(QUERY)  # the same question again, through aiohttp's client
    assert "fwd=miss" in miss[1]["Cache-Status"] and hit[1]["Cache-Status"].startswith("braze-proxy; hit;")
    for status, headers, body in (miss, hit):
        assert status == "HTTP/1.1 200 OK" and body == via_aiohttp.body
        assert list(headers)[-1] == "X-Request-ID"
        assert headers["Content-Type"] == via_aiohttp.headers["Content-Type"]
        assert headers["X-RateLimit-Limit"] == via_aiohttp.headers["X-RateLimit-Limit"]
    assert (miss[1]["X-Request-ID"], hit[1]["X-Request-ID"]) == ("miss", "hit")
    assert standin.state.calls == 1


@pytest.mark.parametrize(
    ("sent", "status_line"),
    [(request("1.0"), "HTTP/1.0 200 OK"), (request(Connection="close"), "HTTP/1.1 200 OK")],
    ids=["http-1.0", "connection-close"],
)
async def test_a_request_that_closes_gets_the_same_answer_and_the_connection_closes(
    proxy: InProcessProxy, sent: bytes, status_line: str
) -> None:
    rendered = await proxy.get(QUERY)
    reader, writer = await connect(proxy)
    try:
        writer.write(sent)
        status, headers, body = await answer(reader)
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the proxy
    finally:
        writer.close()
    assert status == status_line and body == rendered.body
    assert headers["Cache-Status"].startswith("braze-proxy; hit;")
    assert list(headers)[-1] != "X-Request-ID"  # aiohttp's Response, not the rendered head
    assert {k: v for k, v in headers.items() if k not in SAME_EVERY_TIME} == {
        k: v for k, v in rendered.headers.items() if k not in SAME_EVERY_TIME
    }
