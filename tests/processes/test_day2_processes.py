"""Day-2 operations on real proxy processes sharing a real redis-server, against the stand-in: a purge reaches every
replica, the tokens file reloads live (and SIGHUP never stops the process), the warm file warms once across
replicas."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.load import metric
from tests.support.procs import ProxyFactory, ProxyProcess, RedisServer, StandinProcess, free_port

pytestmark = pytest.mark.timeout(90)

ADMIN = "admin-token-0123456789"
SESSIONS = "/sessions/data_series?length=3&ending_at=2020-01-01"
DAU = "/kpi/dau/data_series?length=3&ending_at=2020-01-01"


def ask(proxy: ProxyProcess, path: str, token: str = "key-a") -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(proxy.url + path, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


def call(url: str, body: Any = None, token: str = ADMIN) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def until(check: Callable[[], bool], seconds: float) -> float:
    """Poll `check` until true; how long it took. Fails after `seconds`."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if check():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"not within {seconds} s")


def calls(standin_proc: StandinProcess, path: str) -> int:
    return sum(1 for r in standin_proc.stats()["requests"] if r["path"] == path.split("?")[0])


def test_a_purge_reaches_every_replica(
    start_proxy: ProxyFactory, redis_server: RedisServer, redis_client: Any, standin_proc: StandinProcess
) -> None:
    ops = [free_port(), free_port()]
    replicas = [
        start_proxy(REDIS_URL=redis_server.url, ADMIN_TOKEN=ADMIN, METRICS_PORT=port, health_port=port) for port in ops
    ]
    for replica in replicas:  # the first fills Redis; the second reads it into its L1; both then hit in process
        for path in (SESSIONS, DAU, SESSIONS, DAU):
            assert ask(replica, path)[0] == 200
    assert (calls(standin_proc, SESSIONS), calls(standin_proc, DAU)) == (1, 1)
    assert ask(replicas[0], "/admin/teams")[0] == 404  # the admin API lives on the ops port when there is one
    status, body = call(f"http://127.0.0.1:{ops[0]}/admin/purge", {"endpoint": "sessions"})
    assert (status, body) == (200, {"purged": 1})
    took = until(lambda: "fwd=miss" in ask(replicas[1], SESSIONS)[1]["Cache-Status"], 2.0)
    assert ask(replicas[0], SESSIONS)[1]["Cache-Status"].startswith("braze-proxy; hit")
    assert (calls(standin_proc, SESSIONS), calls(standin_proc, DAU)) == (2, 1)  # one new call for both; dau untouched
    for replica in replicas:
        assert ask(replica, DAU)[1]["Cache-Status"].startswith("braze-proxy; hit")
    assert calls(standin_proc, DAU) == 1
    print(f"\npurge seen by the other replica after {took * 1000:.0f} ms")
    scraped = urllib.request.urlopen(f"http://127.0.0.1:{ops[0]}/metrics", timeout=5).read().decode()
    assert metric(scraped, "braze_proxy_admin_actions_total", action="purge", result="ok") == 1
    assert ADMIN not in replicas[0].logs() and "key-a" not in replicas[0].logs()


def write(path: Path, text: str) -> None:
    """Replace the file as Kubernetes updates a mounted Secret: a new file renamed over the old one."""
    staged = path.with_suffix(".new")
    staged.write_text(text)
    os.replace(staged, path)


def test_the_tokens_file_reloads_live_and_a_garbage_file_changes_nothing(
    start_proxy: ProxyFactory, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("# teams\nalpha:tok-alpha-xxxxxx\n")
    proxy = start_proxy(API_KEY="managed-key", CLIENT_TOKENS_FILE=tokens, RATE_LIMIT_PER_HOUR=3600)
    assert ask(proxy, SESSIONS, "tok-alpha-xxxxxx")[0] == 200
    assert ask(proxy, SESSIONS, "tok-beta-xxxxxxx")[0] == 401
    write(tokens, "alpha:tok-alpha-xxxxxx:1\nbeta:tok-beta-xxxxxxx:3\n")
    took = until(lambda: ask(proxy, SESSIONS, "tok-beta-xxxxxxx")[0] == 200, 10)
    print(f"\na new team works after {took:.1f} s")
    until(lambda: ask(proxy, SESSIONS, "tok-beta-xxxxxxx")[1].get("X-RateLimit-Limit") == "2700", 5)  # weight 3 of 4
    write(tokens, "beta:tok-beta-xxxxxxx:1\n")
    until(lambda: ask(proxy, SESSIONS, "tok-alpha-xxxxxx")[0] == 401, 10)  # removed: refused, though remembered before
    until(lambda: ask(proxy, SESSIONS, "tok-beta-xxxxxxx")[1].get("X-RateLimit-Limit") == "3600", 5)  # re-weighted
    write(tokens, "beta:tok-beta-xxxxxxx:1\ngamma:tok-secret-gamma:lots\n")
    until(lambda: "client tokens file malformed" in proxy.logs(), 10)
    assert ask(proxy, SESSIONS, "tok-beta-xxxxxxx")[0] == 200  # the list in force stays
    assert ask(proxy, SESSIONS, "tok-secret-gamma")[0] == 401
    line = next(json.loads(x) for x in proxy.logs().splitlines() if "client tokens file malformed" in x)
    assert line["line"] == 2 and "tok-secret-gamma" not in proxy.logs()
    scraped = urllib.request.urlopen(f"{proxy.url}/metrics", timeout=5).read().decode()
    assert metric(scraped, "braze_proxy_client_tokens_file_malformed") == 1
    write(tokens, "")  # empty: would let everyone in as anonymous; refused as malformed
    time.sleep(3)
    assert ask(proxy, SESSIONS, "tok-beta-xxxxxxx")[0] == 200 and ask(proxy, SESSIONS, "nobody")[0] == 401


def test_sighup_reloads_at_once_and_never_stops_the_process(start_proxy: ProxyFactory, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("alpha:tok-alpha-xxxxxx\n")
    proxy = start_proxy(API_KEY="managed-key", CLIENT_TOKENS_FILE=tokens)
    for _ in range(3):
        os.kill(proxy.pid, signal.SIGHUP)
        time.sleep(0.2)
    assert proxy.running and proxy.healthy()
    assert ask(proxy, SESSIONS, "tok-alpha-xxxxxx")[0] == 200
    assert proxy.logs().count("SIGHUP: reloading the client tokens file") == 3
    plain = start_proxy()  # no tokens file: SIGHUP has nothing to reload, and still stops nothing
    os.kill(plain.pid, signal.SIGHUP)
    time.sleep(0.3)
    assert plain.running and plain.healthy()
    workers = start_proxy(API_KEY="managed-key", CLIENT_TOKENS_FILE=tokens, args=("--workers", "2"))
    until(lambda: workers.logs().count('"proxy ready"') == 2, 10)  # (a worker still starting ignores a SIGHUP)
    os.kill(workers.pid, signal.SIGHUP)  # the supervisor passes it on to its workers
    until(lambda: workers.logs().count("SIGHUP: reloading the client tokens file") == 2, 5)
    assert workers.running and workers.healthy() and ask(workers, SESSIONS, "tok-alpha-xxxxxx")[0] == 200


def test_the_warm_file_warms_once_across_replicas(
    start_proxy: ProxyFactory,
    redis_server: RedisServer,
    redis_client: Any,
    standin_proc: StandinProcess,
    tmp_path: Path,
) -> None:
    at = (datetime.now(UTC) + timedelta(seconds=4)).strftime("%H:%M:%S")
    warm = tmp_path / "warm"
    warm.write_text(f"# the morning dashboards\nat {at}\n{SESSIONS}\n{DAU}\n")
    settings = {"REDIS_URL": redis_server.url, "API_KEY": "managed-key", "ALLOW_ANONYMOUS": "true", "WARM_FILE": warm}
    replicas = [start_proxy(**settings), start_proxy(**settings)]
    until(lambda: standin_proc.stats()["calls"] == 2, 15)
    time.sleep(2)
    assert standin_proc.stats()["calls"] == 2  # once across the replicas, not once each
    for replica in replicas:
        for path in (SESSIONS, DAU):
            assert ask(replica, path, "ignored")[1]["Cache-Status"].startswith("braze-proxy; hit")
    assert sum(r.logs().count("warm file: warming") for r in replicas) == 1
