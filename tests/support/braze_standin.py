"""A stand-in for Braze's export series (`GET /sessions/data_series` and its siblings,
tests/support/standin_endpoints.py) and the rest of its read-only export surface (lists, details, catalogs, ...:
tests/support/standin_exports.py), served on loopback for tests. Any other request (a write, an unknown path) is
answered as Braze would, and counted.

It follows the contract in braze-api.md, counts what it serves and injects faults, and is driven over
HTTP admin routes (`/_standin/stats|reset|config`) so a test can steer it in-process or as another process:
`python -m tests.support.braze_standin --port N [--latency S] [--zone Z]` prints `READY http://127.0.0.1:N` and
serves until SIGTERM/SIGINT.

Order of checks for a data request: latency, `fail_status`, the `hang`/`reset` modes, auth (401),
rate limit (429; every call that passes auth spends one), parameters (400), then the answer, which the
`malformed`/`not_success`/`huge`/`slow_body` modes reshape. `status` 0 in the request log means no HTTP
answer was sent (connection closed, or still pending).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import json
import math
import signal
import time
import zoneinfo
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from tests.support import standin_endpoints, standin_exports
from tests.support.standin_endpoints import SPECS
from tests.support.standin_time import Cut, buckets, parse_iso

__all__ = ["SPECS", "Cut", "StandinServer", "StandinState", "buckets", "main", "parse_iso"]

MODES = frozenset({"normal", "hang", "reset", "malformed", "not_success", "huge", "slow_body"})
HANG_LIMIT_S = 120.0
MAX_LOGGED = 10_000
SLOW_BODY_CHUNKS = 20


class StandinState:
    """Everything the stand-in knows: fault settings (plain attributes tests may set) and counters."""

    def __init__(self, latency: float = 0.0, zone: str = "UTC", clock: Callable[[], float] = time.time) -> None:
        self.base_latency = latency
        self.base_zone = zone
        self.clock = clock  # epoch seconds: decides which buckets are still open
        self.generation = 0
        self._release = asyncio.Event()
        self.reset()

    def reset(self, now: float | None = None) -> None:
        """Back to a fresh stand-in: counters zeroed, faults cleared, rate limit refilled."""
        now = self.clock() if now is None else now
        self.latency = self.base_latency
        self.zone = self.base_zone  # IANA zone whose days and hours the buckets are cut in
        self.revision = 0  # a change alters the values of buckets that have not closed yet
        self.fail_status: int | None = None
        self.fail_count = 0
        self.rate_limit = 250_000
        self.remaining = self.rate_limit
        self.reset_in = 3600.0
        self.reset_at = now + self.reset_in
        self.force_429_until = 0.0
        self.retry_after = False
        self.reset_header = "seconds"  # how X-RateLimit-Reset is written: seconds, milliseconds, far (10 years on)
        self.mode = "normal"
        self.huge_bytes = 5 * 1024 * 1024
        self.slow_seconds = 10.0
        self.rejected_keys: set[str] = set()
        self.forbidden_keys: set[str] = set()  # keys without the permission of the export rows: Braze's 403
        self.calls = 0
        self.calls_by_status: collections.Counter[str] = collections.Counter()
        self.requests: collections.deque[dict[str, Any]] = collections.deque(maxlen=MAX_LOGGED)
        # A new generation keeps requests still in flight from counting into the fresh counters.
        self.generation += 1
        self.release_waiters()

    def release_waiters(self) -> None:
        """Wake every request parked in a hang, latency or slow body (they then drop the connection)."""
        self._release.set()
        self._release = asyncio.Event()

    async def pause(self, seconds: float) -> bool:
        """Sleep up to `seconds`; return True if released early by a reset or stop."""
        event = self._release
        try:
            await asyncio.wait_for(event.wait(), timeout=max(0.0, seconds))
        except TimeoutError:
            return False
        return True

    def configure(self, cfg: Mapping[str, Any], now: float) -> list[str]:
        """Apply an admin config object; return the errors (nothing is applied if there are any)."""
        checks: dict[str, Any] = {
            "latency": _number(0),
            "fail_status": _int(100, 599, nullable=True),
            "fail_count": _int(-1),
            "rate_limit": _int(0),
            "remaining": _int(0),
            "reset_in": _number(0.001),
            "force_429_for": _number(0),
            "retry_after": lambda v: isinstance(v, bool),
            "reset_header": lambda v: v in ("seconds", "milliseconds", "far"),
            "mode": lambda v: v in MODES,
            "huge_bytes": _int(0),
            "slow_seconds": _number(0),
            "rejected_keys": lambda v: isinstance(v, list) and all(isinstance(k, str) for k in v),
            "zone": _is_zone,
            "revision": _int(0),
        }
        errors = [f"unknown setting {k!r}" for k in cfg if k not in checks]
        errors += [f"invalid value for {k!r}: {v!r}" for k, v in cfg.items() if k in checks and not checks[k](v)]
        if errors:
            return errors
        for name in ("latency", "retry_after", "reset_header", "huge_bytes", "slow_seconds", "zone", "revision"):
            if name in cfg:
                setattr(self, name, cfg[name])
        if "fail_status" in cfg:
            self.fail_status = cfg["fail_status"]
            self.fail_count = cfg.get("fail_count", -1) if cfg["fail_status"] is not None else 0
        elif "fail_count" in cfg:
            self.fail_count = cfg["fail_count"]
        if "rate_limit" in cfg:
            self.rate_limit = self.remaining = cfg["rate_limit"]
        if "remaining" in cfg:
            self.remaining = cfg["remaining"]
        if "reset_in" in cfg:
            self.reset_in = float(cfg["reset_in"])
            self.reset_at = now + self.reset_in
        if "force_429_for" in cfg:
            self.force_429_until = now + cfg["force_429_for"]
        if "rejected_keys" in cfg:
            self.rejected_keys = set(cfg["rejected_keys"])
        if "mode" in cfg:
            self.mode = cfg["mode"]
            self.release_waiters()  # a hang ends when the mode changes
        return []

    def settings(self) -> dict[str, Any]:
        """The current fault settings, as the config route reports them."""
        names: tuple[str, ...] = ("latency", "fail_status", "fail_count", "rate_limit", "remaining")
        names += (
            "reset_in",
            "reset_at",
            "force_429_until",
            "retry_after",
            "reset_header",
            "mode",
            "huge_bytes",
            "slow_seconds",
            "zone",
            "revision",
        )
        return {name: getattr(self, name) for name in names} | {"rejected_keys": sorted(self.rejected_keys)}

    def stats(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "calls_by_status": dict(self.calls_by_status),
            "requests": list(self.requests),
        }

    def rate_headers(self, now: float) -> dict[str, str]:
        if now >= self.reset_at:  # the window rolled over
            self.remaining = self.rate_limit
            self.reset_at = now + self.reset_in
        return {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": self.reset_value(self.reset_at),
        }

    def reset_value(self, at: float) -> str:
        """X-RateLimit-Reset as this stand-in writes it: epoch seconds, or (faults) milliseconds, or far ahead."""
        if self.reset_header == "milliseconds":
            return str(math.ceil(at * 1000))
        if self.reset_header == "far":
            return str(math.ceil(at + 10 * 365 * 86400))
        return str(math.ceil(at))

    def spend(self, now: float) -> web.Response | None:
        """Spend one call of the budget, or return the 429 to answer instead."""
        headers = self.rate_headers(now)
        until = self.force_429_until if now < self.force_429_until else None
        if until is not None:
            headers.update({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": self.reset_value(until)})
        elif self.remaining > 0:
            self.remaining -= 1
            return None
        else:
            until = self.reset_at
        if self.retry_after:
            headers["Retry-After"] = str(math.ceil(until - now))
        return _json(429, {"message": "Rate limit exceeded"}, headers)


def _number(low: float) -> Any:
    return lambda v: isinstance(v, int | float) and not isinstance(v, bool) and v >= low


def _is_zone(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    try:
        zoneinfo.ZoneInfo(v)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _int(low: int, high: int | None = None, nullable: bool = False) -> Any:
    def ok(v: Any) -> bool:
        if v is None:
            return nullable
        return isinstance(v, int) and not isinstance(v, bool) and low <= v and (high is None or v <= high)

    return ok


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _json(status: int, obj: Any, headers: Mapping[str, str]) -> web.Response:
    return web.Response(status=status, body=_dumps(obj), content_type="application/json", headers=headers)


def _api_key(request: web.Request) -> str:
    auth = request.headers.get("Authorization")
    if auth is None:
        return request.query.get("api_key", "").strip()
    scheme, _, token = auth.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class _Dropped(web.Response):
    """Marks a request answered by closing the connection; the response itself is never sent."""


def _drop(request: web.Request) -> web.Response:
    if request.transport is not None:
        request.transport.close()
    return _Dropped()


STATE = web.AppKey("state", StandinState)


async def data_series(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    auth = request.headers.get("Authorization")
    entry = {
        "t": state.clock(),
        "path": request.path,
        "query": request.rel_url.raw_query_string,
        "authorization": auth,
        "status": 0,
    }
    state.calls += 1
    state.requests.append(entry)
    generation = state.generation
    response = await _answer(request, state)
    status = 0 if isinstance(response, _Dropped) else response.status
    entry["status"] = status
    if state.generation == generation:
        state.calls_by_status[str(status)] += 1
    return response


async def _answer(request: web.Request, state: StandinState) -> web.StreamResponse:
    if state.latency and await state.pause(state.latency):
        return _drop(request)
    now = state.clock()
    if state.fail_status is not None and state.fail_count != 0:
        state.fail_count -= 1 if state.fail_count > 0 else 0
        body = {"message": "Internal Server Error", "errors": [f"injected failure {state.fail_status}"]}
        return _json(state.fail_status, body, state.rate_headers(now))
    if state.mode == "hang":
        await state.pause(HANG_LIMIT_S)
        return _drop(request)
    if state.mode == "reset":
        return _drop(request)
    key = _api_key(request)
    if not key or key in state.rejected_keys:
        reason = "missing" if not key else "key not recognized"
        return _json(401, {"message": f"Invalid API key: {reason}"}, state.rate_headers(now))
    limited = state.spend(now)
    if limited is not None:
        return limited
    headers = state.rate_headers(now)
    if request.path not in SPECS:
        if key in state.forbidden_keys:
            body = {"message": "Access Denied", "errors": ["this API key lacks the permission for this endpoint"]}
            return _json(403, body, headers)
        return _export(request, key, headers)
    ask, errors = standin_endpoints.parse(SPECS[request.path], request.query, dt.datetime.fromtimestamp(now, dt.UTC))
    status, payload = 400, {}
    try:
        if ask is not None:
            status, payload = standin_endpoints.answer(ask, key, Cut(state.zone, state.revision, now))
    except OverflowError:
        errors = ["ending_at is out of range"]
    if errors:
        return _json(400, {"message": "Invalid parameters", "errors": errors}, headers)
    if status != 200:  # Braze's own refusal of a valid request (a segment without analytics tracking)
        return _json(status, payload, headers)
    return await _success(request, state, payload["data"], headers)


def _export(request: web.Request, key: str, headers: dict[str, str]) -> web.Response:
    """The rest of the read-only surface (tests/support/standin_exports.py); a write anywhere is taken (and counted), as
    Braze would; a GET of a path Braze has not is its 404."""
    if request.method != "GET":
        return _json(201, {"message": "success"}, headers)
    route = standin_exports.BY_PATH.get(
        request.match_info.route.resource.canonical if request.match_info.route.resource else ""
    )
    if route is None:
        return _json(404, {"message": "Not Found"}, headers)
    base = f"{request.scheme}://{request.host}"
    reply = standin_exports.answer(route, key, request.match_info, request.query, base)
    if reply.link:
        headers = {**headers, "Link": reply.link}
    return _json(reply.status, reply.body, headers)


async def _success(
    request: web.Request, state: StandinState, points: Any, headers: dict[str, str]
) -> web.StreamResponse:
    if state.mode == "malformed":
        return web.Response(body=b'{"message": "success", "data": [', content_type="application/json", headers=headers)
    if state.mode == "not_success":
        return _json(200, {"message": "Internal processing error, try again later", "data": []}, headers)
    body = _dumps({"message": "success", "data": points})
    if state.mode == "huge":
        base = _dumps({"message": "success", "data": points, "padding": ""})
        body = _dumps({"message": "success", "data": points, "padding": "x" * max(0, state.huge_bytes - len(base))})
    if state.mode != "slow_body":
        return web.Response(body=body, content_type="application/json", headers=headers)
    response = web.StreamResponse(headers=headers)
    response.content_type = "application/json"
    response.content_length = len(body)
    await response.prepare(request)
    step = math.ceil(len(body) / SLOW_BODY_CHUNKS)
    for i in range(0, len(body), step):
        if await state.pause(state.slow_seconds / SLOW_BODY_CHUNKS):
            _drop(request)
            return response
        try:
            await response.write(body[i : i + step])
        except ConnectionError:  # the client gave up mid-body
            return response
    await response.write_eof()
    return response


async def admin_stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].stats())


async def admin_reset(request: web.Request) -> web.Response:
    request.app[STATE].reset()
    return web.json_response({"ok": True})


async def admin_config(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        cfg = await request.json()
    except ValueError:
        cfg = None
    if not isinstance(cfg, dict):
        return web.json_response({"errors": ["body must be a JSON object"]}, status=400)
    errors = state.configure(cfg, state.clock())
    if errors:
        return web.json_response({"errors": errors}, status=400)
    return web.json_response(state.settings())


def make_app(state: StandinState) -> web.Application:
    app = web.Application()
    app[STATE] = state
    for path in SPECS:
        app.router.add_get(path, data_series)
    for route in standin_exports.ROUTES:
        app.router.add_get(route.path, data_series)
    app.router.add_get("/_standin/stats", admin_stats)
    app.router.add_post("/_standin/reset", admin_reset)
    app.router.add_post("/_standin/config", admin_config)
    app.router.add_route("*", "/{tail:.*}", data_series)  # every other request is counted too (a forwarded write)
    return app


class StandinServer:
    """The stand-in served inside the caller's event loop. `start()` may be called again after `stop()`."""

    def __init__(self, state: StandinState | None = None) -> None:
        self.state = state if state is not None else StandinState()
        self.host = "127.0.0.1"
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0: a free port, or the previous one on a restart); return the base URL."""
        runner = web.AppRunner(make_app(self.state), access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port or self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.host, self.port = host, runner.addresses[0][1]
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            self.state.release_waiters()
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> StandinServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def _serve(port: int, latency: float, zone: str) -> None:
    server = StandinServer(StandinState(latency=latency, zone=zone))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {await server.start(port=port)}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Braze export series stand-in on 127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added before each answer")
    parser.add_argument("--zone", default="UTC", help="IANA time zone whose days and hours the buckets follow")
    args = parser.parse_args(argv)
    if not _is_zone(args.zone):
        parser.error(f"--zone: unknown IANA time zone {args.zone!r}")
    asyncio.run(_serve(args.port, args.latency, args.zone))


if __name__ == "__main__":
    main()
