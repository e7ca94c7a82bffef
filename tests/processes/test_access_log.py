"""Following one request on a real proxy process: X-Request-ID kept or made, traceparent's trace id, and one
JSON access-log line per request that never holds a credential."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import aiohttp

from tests.support.load import wait_for
from tests.support.procs import ProxyFactory, ProxyProcess, StandinProcess, free_port

KEY = "5f2c9a3e-7777-4a6b-9c1d-cccccccccccc"
LEGACY = "5f2c9a3e-8888-4a6b-9c1d-dddddddddddd"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
QUERY = "length=2&ending_at=2018-06-28"


def access_lines(proxy: ProxyProcess, count: int) -> list[dict[str, Any]]:
    """The access-log lines so far, waiting (5 s at most) until there are `count`."""
    deadline = time.monotonic() + 5
    while True:
        lines = [json.loads(line) for line in proxy.logs().splitlines() if line.startswith("{")]
        found = [line for line in lines if line.get("logger") == "braze_proxy.access"]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


async def test_request_ids_round_trip_and_each_request_is_one_line(start_proxy: ProxyFactory) -> None:
    proxy = start_proxy()
    url = f"{proxy.url}/sessions/data_series"
    async with aiohttp.ClientSession() as session:
        headers = {
            "Authorization": f"Bearer {KEY}",
            "X-Request-ID": "client-id-42",
            "traceparent": f"00-{TRACE}-00f067aa0ba902b7-01",
        }
        async with session.get(f"{url}?{QUERY}", headers=headers) as first:
            assert first.headers["X-Request-ID"] == "client-id-42"
        async with session.get(f"{url}?{QUERY}", headers={"Authorization": f"Bearer {KEY}"}) as hit:
            made = hit.headers["X-Request-ID"]
            assert made and made != "client-id-42"
        async with session.get(
            f"{url}?{QUERY}&api_key={LEGACY}", headers={"X-Request-ID": "bad id " + "x" * 200}
        ) as legacy:
            assert not legacy.headers["X-Request-ID"].startswith("bad")
        async with session.get(f"{url}?length=0", headers={"Authorization": f"Bearer {KEY}"}) as bad:
            assert bad.status == 400 and bad.headers["X-Request-ID"]
    lines = access_lines(proxy, 4)
    assert len(lines) == 4
    first_line, hit_line, _, bad_line = lines
    assert first_line["request_id"] == "client-id-42"
    assert first_line["trace_id"] == TRACE
    assert first_line["braze_endpoint"] == "sessions"
    assert (first_line["status"], first_line["cache"], first_line["upstream_status"]) == (200, "miss", 200)
    assert first_line["duration_ms"] > 0
    assert (hit_line["request_id"], hit_line["cache"], hit_line["upstream_status"]) == (made, "hit", None)
    assert (bad_line["status"], bad_line["cache"]) == (400, "bypass")  # refused before any cache was asked
    logs = proxy.logs()
    assert KEY not in logs and LEGACY not in logs and "api_key" not in logs


async def test_the_access_log_can_be_turned_off(start_proxy: ProxyFactory) -> None:
    proxy = start_proxy(ACCESS_LOG="false")
    async with aiohttp.ClientSession() as session:
        url = f"{proxy.url}/sessions/data_series?{QUERY}"
        async with session.get(url, headers={"Authorization": f"Bearer {KEY}"}) as reply:
            assert reply.status == 200 and reply.headers["X-Request-ID"]
    await asyncio.sleep(0.3)
    assert access_lines(proxy, 0) == []


async def test_n_requests_then_sigterm_leaves_exactly_n_lines(start_proxy: ProxyFactory) -> None:
    """Lines are written in batches: the ones still waiting at SIGTERM are written before the process exits."""
    proxy = start_proxy()
    url = f"{proxy.url}/sessions/data_series"
    ids: list[str] = []
    async with aiohttp.ClientSession() as session:

        async def one(i: int) -> None:
            query = f"length={1 + i % 40}&ending_at=2018-06-28" if i % 7 else "length=0"  # misses, hits, 400s
            async with session.get(f"{url}?{query}", headers={"Authorization": f"Bearer {KEY}"}) as reply:
                await reply.read()
                ids.append(reply.headers["X-Request-ID"])

        for start in range(0, N_REQUESTS, 50):
            await asyncio.gather(*(one(i) for i in range(start, min(N_REQUESTS, start + 50))))
    assert proxy.terminate() == 0
    lines = [json.loads(line) for line in proxy.logs().splitlines() if '"braze_proxy.access"' in line]
    assert len(lines) == N_REQUESTS
    assert sorted(line["request_id"] for line in lines) == sorted(ids)
    assert {line["cache"] for line in lines} >= {"miss", "hit", "bypass"}
    logs = proxy.logs()
    # Every line is out before the process says it stopped (whether the timer or the shutdown wrote the last
    # batch depends on how long the machine took to send the SIGTERM: not asserted).
    assert logs.rindex('"braze_proxy.access"') < logs.index('"stopped"')
    assert KEY not in logs


N_REQUESTS = 400


async def test_on_a_pipe_n_requests_then_sigterm_leave_exactly_n_lines(standin_proc: StandinProcess) -> None:
    """As under a container runtime, stderr is a pipe (the event loop writes to a non-blocking reopening of it):
    N requests, SIGTERM, N lines, every one whole."""
    port = free_port()
    env = {
        **os.environ,
        "BRAZE_PROXY_UPSTREAM_URL": standin_proc.url,
        "BRAZE_PROXY_LOG_LEVEL": "INFO",
        "BRAZE_PROXY_WINDOWS": "false",
        "BRAZE_PROXY_HOST": "127.0.0.1",
        "BRAZE_PROXY_PORT": str(port),
    }
    # Started once, before any request; its output is read by a thread.
    proc = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, "-m", "proxy"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert proc.stdout is not None
    read: list[bytes] = []
    reader = threading.Thread(target=lambda: read.append(proc.stdout.read() if proc.stdout else b""), daemon=True)
    reader.start()
    try:
        url = f"http://127.0.0.1:{port}/sessions/data_series"
        async with aiohttp.ClientSession() as session:

            async def healthy() -> bool:
                try:
                    async with session.get(f"http://127.0.0.1:{port}/healthz") as reply:
                        return reply.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            assert await wait_for(healthy, 15), "the proxy did not answer /healthz within 15 s"

            async def one(i: int) -> None:
                query = f"length={1 + i % 30}&ending_at=2018-06-28"
                async with session.get(f"{url}?{query}", headers={"Authorization": f"Bearer {KEY}"}) as reply:
                    await reply.read()
                    assert reply.status == 200

            for start in range(0, N_REQUESTS, 50):
                await asyncio.gather(*(one(i) for i in range(start, start + 50)))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    reader.join(10)
    proc.stdout.close()
    output = read[0].decode()
    lines = [json.loads(line) for line in output.splitlines() if '"braze_proxy.access"' in line]
    assert len(lines) == N_REQUESTS
    assert {line["cache"] for line in lines} >= {"miss", "hit"}
    assert output.rindex('"braze_proxy.access"') < output.index('"stopped"')
