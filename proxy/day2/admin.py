"""The admin API (BRAZE_PROXY_ADMIN_TOKEN): purge, warm, what is cached, the teams' shares. JSON in, JSON out.

Served on the ops port when BRAZE_PROXY_METRICS_PORT is set, else on the main port; without the setting no
/admin/ route exists (404). Only `Authorization: Bearer <admin token>` opens it (a JSON 401 otherwise): team
tokens and Braze keys never do (settings refuse an admin token equal to one). Every action is logged (who:
"admin", what, how much) and counted; no answer holds a credential (a short hash of a scope at most).
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from pydantic import SecretStr

from proxy.core.credentials import bearer_token
from proxy.core.errors import InvalidRequest, ProxyError, StoreError, Unauthorized, Unavailable
from proxy.core.stored_names import endpoint_named, purge_request
from proxy.day2.warm import parse_questions
from proxy.day2.wiring import Day2
from proxy.obs.metrics import Metrics

log = logging.getLogger("braze_proxy.admin")

JSON_TYPE = "application/json"
MAX_BODY = 64 * 1024
DEFAULT_PAGE, MAX_PAGE = 50, 200
Handler = Callable[[web.Request], Awaitable[web.Response]]
Parts = Callable[[web.Request], Day2]


def _json(status: int, payload: object) -> web.Response:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return web.Response(body=body, status=status, headers={"Content-Type": JSON_TYPE, "Cache-Control": "no-store"})


class Admin:
    def __init__(self, token: str, metrics: Metrics, parts: Parts) -> None:
        self._token = token.encode()
        self._m = metrics
        self._parts = parts  # the day-2 parts, the key rules and the clock of the app serving a request

    def guarded(self, action: str, handler: Handler) -> Handler:
        """`handler` behind the admin token; its outcome counted by action and result."""

        async def guard(request: web.Request) -> web.Response:
            given = bearer_token(request.headers.get("Authorization"))
            if given is None or not hmac.compare_digest(given.encode(errors="replace"), self._token):
                self._m.admin_actions.labels(action, "unauthorized").inc()
                log.warning("admin: refused", extra={"who": "unknown", "action": action})
                raise Unauthorized("Unauthorized: the admin API needs 'Authorization: Bearer <admin token>'")
            try:
                response = await handler(request)
            except StoreError as error:
                self._m.admin_actions.labels(action, "error").inc()
                raise Unavailable("Service unavailable: Redis did not answer; try again") from error
            except ProxyError:
                self._m.admin_actions.labels(action, "invalid").inc()
                raise
            self._m.admin_actions.labels(action, "ok").inc()
            return response

        return guard

    async def purge(self, request: web.Request) -> web.Response:
        day2 = self._parts(request)
        endpoint, filters = purge_request(await _body(request))
        purged = await day2.inventory.purge(endpoint, filters)
        self._m.purged.inc(purged)
        log.info("admin: purge", extra={"who": "admin", "action": "purge", "endpoint": endpoint,
                                        "filters": sorted(filters), "purged": purged})  # fmt: skip
        return _json(200, {"purged": purged})

    async def warm(self, request: web.Request) -> web.Response:
        day2 = self._parts(request)
        body = await _body(request)
        if not isinstance(body, dict) or not isinstance(body.get("questions"), list):
            raise InvalidRequest('Invalid request: the body must be {"questions": ["/path?query", ...]}')
        credential = day2.warm_credential(body.get("api_key"))
        warms = parse_questions(body["questions"], day2.rules, day2.clock())
        accepted = day2.warmer.submit(warms, credential)
        log.info("admin: warm", extra={"who": "admin", "action": "warm", "accepted": accepted})
        return _json(202, {"accepted": accepted})

    async def cache(self, request: web.Request) -> web.Response:
        day2 = self._parts(request)
        query = request.query
        endpoint = endpoint_named(query["endpoint"]).name if query.get("endpoint") else None
        raw = query.get("limit", str(DEFAULT_PAGE))
        if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_PAGE):
            raise InvalidRequest(f"Invalid request: 'limit' must be an integer from 1 to {MAX_PAGE}")
        rows, cursor = await day2.inventory.page(endpoint, int(raw), query.get("cursor", ""))
        now = day2.clock()
        items = [_timed(row, now) for row in rows]
        log.info("admin: cache", extra={"who": "admin", "action": "cache", "listed": len(items)})
        return _json(200, {"items": items, "next_cursor": cursor})

    async def teams(self, request: web.Request) -> web.Response:
        day2 = self._parts(request)
        weights = day2.auth.weights()
        teams, budgets = [], []
        for (workspace, group, team), held in day2.spending.standings().items():
            row = {"workspace": workspace, "group": group, **held.as_dict()}
            if team == "*":
                budgets.append(row)
            else:
                teams.append({"team": team, "weight": weights.get(team, 1.0), **row})
        log.info("admin: teams", extra={"who": "admin", "action": "teams", "teams": len(weights)})
        return _json(200, {"teams": teams, "budgets": budgets})


def _timed(row: dict[str, object], now: float) -> dict[str, object]:
    stored_at, fresh_until = row.pop("stored_at"), row.pop("fresh_until")
    assert isinstance(stored_at, float | int) and isinstance(fresh_until, float | int)
    return {**row, "age": max(0, int(now - stored_at)), "fresh_for": max(0, int(fresh_until - now))}


async def _body(request: web.Request) -> object:
    if (request.content_length or 0) > MAX_BODY:
        raise InvalidRequest(f"Invalid request: the body is larger than {MAX_BODY} bytes")
    try:
        return json.loads(await request.content.read(MAX_BODY + 1) or b"null")
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("Invalid request: the body must be JSON") from None


def add_admin_routes(app: web.Application, token: SecretStr | None, metrics: Metrics, parts: Parts) -> None:
    """The admin routes on `app`, opened by `token` (None: no route, every /admin/ path is a 404); `parts` finds
    the day-2 parts of a request's app."""
    if token is None:
        return
    admin = Admin(token.get_secret_value(), metrics, parts)
    app.router.add_post("/admin/purge", admin.guarded("purge", admin.purge))
    app.router.add_post("/admin/warm", admin.guarded("warm", admin.warm))
    app.router.add_get("/admin/cache", admin.guarded("cache", admin.cache))
    app.router.add_get("/admin/teams", admin.guarded("teams", admin.teams))
