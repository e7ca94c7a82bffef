"""The dashboard against a real Prometheus scraping a real proxy under load.

Real processes on 127.0.0.1 only: redis-server, the Braze stand-in, the proxy, and Prometheus (scraping
every second, evaluating the alert rules too). A short scripted load walks the proxy through hits, misses,
collapsed requests, stale-while-revalidate, upstream 500s (retries, stale-if-error), budget waits and
rejections, and an upstream 429. Then every panel query of config/grafana-dashboard.json goes to
Prometheus' HTTP API and must return data, and every alert rule must evaluate without error.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, Self

import pytest
import yaml

from tests.support.external_tools import binary
from tests.support.procs import HOST, ProxyProcess, RedisServer, StandinProcess, _Process, free_port
from tests.support.promql_names import GRAFANA_INTERVALS, substitute

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "config" / "grafana-dashboard.json"
RULES = REPO / "config" / "prometheus-alerts.yml"
JOB = "braze-proxy"
# All of a query's series lie within the last minute or two of this test: a window that holds them all.
QUERY_VALUES = {"namespace": ".*", "job": JOB, "pod": ".*", "instance": ".*"} | dict.fromkeys(GRAFANA_INTERVALS, "2m")
DATA_WAIT_S = 30.0
REQUEST_TIMEOUT_S = 10.0


class PrometheusServer(_Process):
    """Prometheus on 127.0.0.1, scraping `targets` every second and evaluating `rule_files`."""

    name = "prometheus"

    def __init__(self, binary_path: str, workdir: Path, targets: list[str], rule_files: list[Path]) -> None:
        super().__init__()
        self.binary = binary_path
        self.workdir = workdir
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in rule_files],
            "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": targets}]}],
        }
        self.config_file = workdir / "prometheus.yml"
        self.config_file.write_text(yaml.safe_dump(config))

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = 30) -> Self:
        argv = [
            self.binary,
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address={HOST}:{self.port}",
            "--storage.tsdb.retention.time=1h",
            "--log.level=warn",
        ]
        self._spawn(argv)
        self._wait_until(self.ready, timeout, "answer on /-/ready")
        return self

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path>; the `data` of a successful answer (AssertionError otherwise)."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                body = json.load(response)
        except urllib.error.HTTPError as error:
            raise AssertionError(f"{path} {params}: HTTP {error.code}: {error.read()[:500]!r}") from None
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector `expr` evaluates to now."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        return list(data["result"])


def poll(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Call `check` every 0.25 s until it is true; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout:g} s waiting for {what}")


# --- the load ----------------------------------------------------------------------------------------------


def get(proxy: ProxyProcess, length: int, unit: str = "day", app: str | None = None) -> int:
    """One request for the question `length`/`unit` (of the series of app `app`); its HTTP status. Windows of
    one series are answered from one fetch: a question of another app is a series of its own."""
    url = f"{proxy.url}/sessions/data_series?length={length}&unit={unit}" + (f"&app_id={app}" if app else "")
    try:
        with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT_S) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as error:
        error.read()
        return int(error.code)


def get_all(proxy: ProxyProcess, lengths: list[int], unit: str = "day", apps: list[str] | None = None) -> list[int]:
    """Requests for `lengths` (of the series of `apps`), all at once (16 at a time); their statuses."""
    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(lambda n, app: get(proxy, n, unit, app), lengths, apps or [None] * len(lengths)))


def run_load(proxy: ProxyProcess, standin_proc: StandinProcess) -> None:
    """Walk the proxy through every outcome the dashboard shows (about 15 s, every step bounded)."""
    # Misses, then hits.
    assert get_all(proxy, list(range(1, 6))) == [200] * 5
    assert get_all(proxy, list(range(1, 6)) * 3) == [200] * 15
    # Ten identical requests during one slow upstream call: one miss, nine collapsed.
    standin_proc.config(latency=0.5)
    assert get_all(proxy, [60] * 10, apps=["slow"] * 10) == [200] * 10
    standin_proc.config(latency=0.0)
    # Past freshness (1 s) but within stale-while-revalidate (2 s): stale at once, refreshed behind.
    assert get_all(proxy, [1, 2]) == [200, 200]
    time.sleep(1.5)
    assert get_all(proxy, [1, 2]) == [200, 200]
    # Braze fails: retries, then stale answers past the revalidation window, and a 502 for a new question.
    time.sleep(3.0)
    standin_proc.config(fail_status=500, fail_count=-1)
    statuses = get_all(proxy, [3, 4, 70], apps=["", "", "failing"])
    standin_proc.config(fail_status=None)
    assert statuses[:2] == [200, 200] and statuses[2] >= 500, statuses
    # More misses at once than the bucket (burst 5, 10 per second, 0.5 s at most) allows: waits, then refusals.
    statuses = get_all(proxy, list(range(10, 50)), apps=[f"flood-{n}" for n in range(10, 50)])
    assert 200 in statuses and 429 in statuses, statuses
    time.sleep(1.0)
    # Braze answers 429: the proxy holds off until Braze's reset and refuses (or serves stale) meanwhile.
    standin_proc.config(force_429_for=2)
    statuses = [get(proxy, 80, app="late-1"), get(proxy, 81, app="late-2"), get(proxy, 5)]
    assert statuses[0] == 429 and statuses[1] == 429, statuses


# --- the test ----------------------------------------------------------------------------------------------


def panel_targets() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (f"{panel['title']} / {target['refId']}", substitute(target["expr"], QUERY_VALUES))
        for panel in dashboard["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[PrometheusServer, ProxyProcess, StandinProcess]]:
    prometheus_binary = binary("prometheus", "apt-get install -y --no-install-recommends prometheus")
    binary("redis-server", "apt-get install -y redis-server")
    with RedisServer() as redis, StandinProcess() as standin_proc:
        env = {
            "BRAZE_PROXY_UPSTREAM_URL": standin_proc.url,
            "BRAZE_PROXY_API_KEY": "k",
            "BRAZE_PROXY_ALLOW_ANONYMOUS": "true",
            "BRAZE_PROXY_REDIS_URL": redis.url,
            "BRAZE_PROXY_TTL_OPEN_DAY": "1",
            "BRAZE_PROXY_TTL_RECENT_DAY": "1",
            "BRAZE_PROXY_TTL_SETTLED": "1",
            "BRAZE_PROXY_STALE_WHILE_REVALIDATE_SECONDS": "2",
            "BRAZE_PROXY_UPSTREAM_RETRIES": "1",
            "BRAZE_PROXY_RATE_LIMIT_PER_HOUR": "36000",
            "BRAZE_PROXY_RATE_LIMIT_BURST": "5",
            "BRAZE_PROXY_RATE_LIMIT_MAX_WAIT_SECONDS": "0.5",
        }
        with ProxyProcess(env=env) as proxy:
            server = PrometheusServer(prometheus_binary, tmp_path, [f"{HOST}:{proxy.port}"], [RULES])
            with server:
                yield server, proxy, standin_proc


def test_every_dashboard_query_returns_data_from_a_real_prometheus(
    stack: tuple[PrometheusServer, ProxyProcess, StandinProcess],
) -> None:
    prometheus, proxy, standin_proc = stack
    poll(lambda: bool(prometheus.query(f'up{{job="{JOB}"}} == 1')), DATA_WAIT_S, "the first scrape")
    # A miss and a hit scraped before the load, so that the load shows as a rate (a counter's first
    # sample is its baseline: increments before it never show in rate()).
    assert get_all(proxy, [99]) + get_all(proxy, [99]) == [200, 200]
    born = 'braze_proxy_requests_total{braze_endpoint="sessions", cache=~"hit|miss"} > 0'  # both start at 0
    poll(lambda: len(prometheus.query(born)) == 2, DATA_WAIT_S, "the warm-up's first scrape")
    run_load(proxy, standin_proc)

    # Prometheus has seen the whole load once the last step's series was scraped twice (rate() needs two).
    last = 'count_over_time(braze_proxy_rate_limit_rejections_total{reason="upstream_429"}[2m]) >= 2'
    poll(lambda: bool(prometheus.query(last)), DATA_WAIT_S, "the load's last requests in Prometheus")

    empty: list[str] = []

    def all_answer() -> bool:
        empty[:] = [where for where, expr in panel_targets() if not prometheus.query(expr)]
        return not empty

    deadline = time.monotonic() + DATA_WAIT_S
    while not all_answer() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert empty == [], f"dashboard queries without data: {empty}"

    # The key panels show what the load did, not just that series exist.
    queries = dict(panel_targets())

    def values(where: str, label: str) -> dict[str, float]:
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in prometheus.query(queries[where])}

    by_cache = values("Requests by cache status / A", "cache")
    assert {"hit", "miss", "stale", "collapsed", "error"} <= set(by_cache), by_cache
    assert by_cache["hit"] > 0 and by_cache["miss"] > 0, by_cache
    assert 0 < values("Cache hit ratio / A", "")[""] < 1
    assert values("Upstream calls against the budget / A", "")[""] > 0
    budgets = {
        (r["metric"]["workspace"], r["metric"]["group"]): float(r["value"][1])
        for r in prometheus.query(queries["Upstream calls against the budget / B"])
    }
    assert budgets[("default", "default")] == 36000 and budgets[("default", "campaigns")] == 600000, budgets
    assert budgets[("default", "events_products")] == 200, budgets  # a fifth of Braze's 1,000 an hour
    assert {"200", "500", "429"} <= set(values("Upstream responses by code / A", "code"))
    assert {"revalidate", "upstream_error"} <= set(values("Stale answers by reason / A", "reason"))
    assert {"tokens", "upstream_429"} <= set(values("Budget waits and rejections / B", "reason"))


def test_alert_rules_evaluate_cleanly_on_real_data(
    stack: tuple[PrometheusServer, ProxyProcess, StandinProcess],
) -> None:
    prometheus, proxy, _ = stack
    poll(lambda: bool(prometheus.query(f'up{{job="{JOB}"}} == 1')), DATA_WAIT_S, "the first scrape")
    assert get_all(proxy, [1, 1, 2]) == [200, 200, 200]
    expected = {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]}

    since = time.time()

    def evaluated() -> bool:
        """Every rule evaluated after the first scrape (an earlier evaluation saw no target: absent)."""
        rules = [rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]]
        return {r["name"] for r in rules} == expected and all(
            not r["lastEvaluation"].startswith("0001-")
            and datetime.fromisoformat(r["lastEvaluation"][:26].rstrip("Z") + "+00:00").timestamp() > since
            and r["health"] != "unknown"
            for r in rules
        )

    poll(evaluated, DATA_WAIT_S, "every alert rule evaluated")
    rules = [rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]]
    assert {r["name"]: r["health"] for r in rules} == dict.fromkeys(expected, "ok")
    # A healthy proxy under light load raises none of them.
    assert [r["name"] for r in rules if r["state"] != "inactive"] == []
