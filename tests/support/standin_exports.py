"""The stand-in's model of the rest of Braze's read-only export surface: lists, details, catalogs, templates, CDI,
SDK keys and per-user subscription lookups, as Braze's pages document them.

Written apart from proxy/exports.py on purpose (a second opinion on the contract). Each workspace (API key) has a
deterministic set of items; lists page as Braze's do: `page` from 0 (100 or 250 a page), `limit`/`offset`, or a
`cursor` with the next page in a `Link` header, absolute to the stand-in's own host (`/events`,
`/custom_attributes`, CDI) or relative (catalog items). Undocumented parameters are refused with Braze's 400 (an
`errors` list), so a proxy that invents one is caught; unknown ids get Braze's 4xx bodies.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from multidict import MultiMapping

Query = MultiMapping[str]
Body = dict[str, Any]
EPOCH = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
USERS = ("external_id", "external_id[]", "email", "email[]", "phone", "phone[]")
SIZES = {"campaigns": 130, "canvases": 30, "segments": 25, "events": 260, "products": 30, "cards": 5, "attrs": 75}
CATALOG_ITEMS = 120
INTEGRATIONS = 23


@dataclass(frozen=True)
class Reply:
    status: int
    body: Body
    link: str = ""


@dataclass(frozen=True)
class Route:
    path: str
    params: tuple[str, ...]  # the documented query parameters
    answer: Callable[[str, Mapping[str, str], Query, str], Reply]  # (key, path values, query, base URL)


def _digest(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("\x1f".join(parts).encode()).digest()[:4], "big")


def _when(key: str, kind: str, i: int) -> str:
    seconds = _digest(key, kind, str(i)) % (3 * 365 * 86400)
    return (EPOCH + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _error(status: int, message: str, *errors: str) -> Reply:
    return Reply(status, {"message": message, "errors": list(errors) or [message]})


def _int(query: Query, name: str, default: int) -> int | None:
    raw = query.get(name)
    if raw is None:
        return default
    return int(raw) if raw.isdigit() else None


def _parse_time(raw: str) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _listed(key: str, kind: str, query: Query, size: int, id_key: str) -> list[Body] | Reply:
    """A page-based list (campaigns, Canvases, segments, cards): archived ones only when asked, edited after
    `last_edit.time[gt]`, by creation time in `sort_direction`."""
    items = [
        {id_key: f"{kind}-{i:04d}", "name": f"{kind.title()} {i}", "last_edited": _when(key, kind, i), "tags": []}
        for i in range(SIZES[kind])
        if i % 7 != 3 or query.get("include_archived") == "true"
    ]
    since = query.get("last_edit.time[gt]")
    if since is not None:
        moment = _parse_time(since)
        if moment is None:
            return _error(400, "Invalid 'last_edit.time[gt]'")
        items = [item for item in items if _parse_time(item["last_edited"]) > moment]  # type: ignore[operator]
    if query.get("sort_direction", "asc") not in ("asc", "desc"):
        return _error(400, "sort_direction must be asc or desc")
    return items[::-1] if query.get("sort_direction") == "desc" else items


def _paged(items: list[Any], query: Query, size: int) -> list[Any] | Reply:
    page = _int(query, "page", 0)
    if page is None:
        return _error(400, "page must be a non-negative integer")
    return items[page * size : (page + 1) * size]


def _cursor_page(items: list[Any], query: Query, size: int, path: str, base: str) -> tuple[list[Any], str] | Reply:
    """A cursor page (`skip:N`, base64, as Braze's cursors look) and its Link header (`base` empty: relative)."""
    skip = 0
    raw = query.get("cursor")
    if raw is not None:
        try:
            skip = int(base64.b64decode(raw, validate=True).decode().removeprefix("skip:"))
        except ValueError:
            return _error(400, "Invalid cursor", "cursor is not valid")
    links = []
    if skip > 0:
        links.append(f'<{base}{path}?cursor={_cursor(max(0, skip - size))}>; rel="prev"')
    if skip + size < len(items):
        links.append(f'<{base}{path}?cursor={_cursor(skip + size)}>; rel="next"')
    return items[skip : skip + size], ",".join(links)


def _cursor(skip: int) -> str:
    return base64.b64encode(f"skip:{skip}".encode()).decode()


def _list(kind: str, plural: str, id_key: str = "id") -> Callable[[str, Mapping[str, str], Query, str], Reply]:
    def answer(key: str, values: Mapping[str, str], query: Query, base: str) -> Reply:
        items = _listed(key, kind, query, SIZES[kind], id_key)
        page = items if isinstance(items, Reply) else _paged(items, query, 100)
        return page if isinstance(page, Reply) else Reply(200, {"message": "success", plural: page})

    return answer


def _details(kind: str, id_param: str) -> Callable[[str, Mapping[str, str], Query, str], Reply]:
    def answer(key: str, values: Mapping[str, str], query: Query, base: str) -> Reply:
        wanted = query.get(id_param, "")
        if not wanted.startswith(f"{kind}-") or not wanted[len(kind) + 1 :].isdigit():
            return _error(400, f"Invalid {id_param}", f"{id_param} '{wanted}' not found")
        i = int(wanted[len(kind) + 1 :])
        if i >= SIZES[kind]:
            return _error(400, f"Invalid {id_param}", f"{id_param} '{wanted}' not found")
        draft = query.get("post_launch_draft_version") == "true"
        body = {"message": "success", "name": f"{kind.title()} {i}", "description": "", "draft": draft}
        return Reply(200, body | {"created_at": _when(key, kind, i), "tags": [], "archived": i % 7 == 3})

    return answer


def _names(kind: str, plural: str) -> Callable[[str, Mapping[str, str], Query, str], Reply]:
    def answer(key: str, values: Mapping[str, str], query: Query, base: str) -> Reply:
        names = [f"{kind} {i:04d}" for i in range(SIZES[kind])]
        page = _paged(names, query, 250)
        return page if isinstance(page, Reply) else Reply(200, {"message": "success", plural: page})

    return answer


def _cursored(kind: str, plural: str, path: str) -> Callable[[str, Mapping[str, str], Query, str], Reply]:
    """A cursor-paged export whose Link header is absolute, to Braze's (the stand-in's) own host."""

    def answer(key: str, values: Mapping[str, str], query: Query, base: str) -> Reply:
        items = [{"name": f"{kind} {i:04d}", "description": "", "status": "Active"} for i in range(SIZES[kind])]
        got = _cursor_page(items, query, 50, path, base)
        if isinstance(got, Reply):
            return got
        return Reply(200, {"message": "success", plural: got[0]}, got[1])

    return answer


def _offset_list(plural: str, id_key: str, count: int) -> Callable[[str, Mapping[str, str], Query, str], Reply]:
    def answer(key: str, values: Mapping[str, str], query: Query, base: str) -> Reply:
        limit, offset = _int(query, "limit", 100), _int(query, "offset", 0)
        if limit is None or offset is None or not 1 <= limit <= 1000:
            return _error(400, "limit must be 1 to 1000 and offset a number")
        items = [{id_key: f"{plural}-{i:03d}", "name": f"{plural} {i}"} for i in range(count)]
        return Reply(200, {"count": count, plural: items[offset : offset + limit], "message": "success"})

    return answer


def _catalog_items(key: str, values: Mapping[str, str], query: Query, base: str) -> Reply:
    name = values["catalog_name"]
    if name not in ("restaurants", "dishware"):
        return Reply(404, _catalog_missing("catalog-not-found", "Could not find catalog", "catalog_name", name))
    items = [{"id": f"{name}-{i:03d}", "Name": f"{name} {i}"} for i in range(CATALOG_ITEMS)]
    got = _cursor_page(items, query, 50, f"/catalogs/{name}/items", "")  # relative, as Braze writes it
    return got if isinstance(got, Reply) else Reply(200, {"items": got[0], "message": "success"}, got[1])


def _catalog_item(key: str, values: Mapping[str, str], query: Query, base: str) -> Reply:
    name, item = values["catalog_name"], values["item_id"]
    if not item.startswith(f"{name}-") or not item[len(name) + 1 :].isdigit():
        return Reply(404, _catalog_missing("item-not-found", "Could not find item", "item_id", item))
    return Reply(200, {"items": [{"id": item, "Name": item.replace("-", " ")}], "message": "success"})


def _catalog_missing(code: str, message: str, parameter: str, value: str) -> Body:
    error = {"id": code, "message": message, "parameters": [parameter], "parameter_values": [value]}
    return {"errors": [error], "message": "Invalid Request"}


def _integrations(key: str, values: Mapping[str, str], query: Query, base: str) -> Reply:
    items = [{"integration_id": f"int-{i:03d}", "integration_name": f"Sync {i}"} for i in range(INTEGRATIONS)]
    got = _cursor_page(items, query, 10, "/cdi/integrations", base)
    return got if isinstance(got, Reply) else Reply(200, {"results": got[0]}, got[1])


def _job_status(key: str, values: Mapping[str, str], query: Query, base: str) -> Reply:
    integration = values["integration_id"]
    if not integration.startswith("int-"):
        return _error(400, "Invalid integration ID")
    runs = [{"job_status": "success", "sync_start_time": _when(key, integration, i)} for i in range(15)]
    got = _cursor_page(runs, query, 10, f"/cdi/integrations/{integration}/job_sync_status", base)
    return got if isinstance(got, Reply) else Reply(200, {"results": got[0]}, got[1])


def _users(query: Query) -> list[str]:
    return [value for name in USERS for value in query.getall(name, [])]


def _subscription_status(key: str, values: Mapping[str, str], query: Query, base: str) -> Reply:
    group = query.get("subscription_group_id")
    users = _users(query)
    if not group or not users:
        return _error(400, "subscription_group_id and at least one user are required")
    states = ("Subscribed", "Unsubscribed", "Unknown")
    return Reply(200, {"status": {u: states[_digest(key, group, u) % 3] for u in users}, "message": "success"})


def _user_groups(key: str, values: Mapping[str, str], query: Query, base: str) -> Reply:
    users = _users(query)
    if not users:
        return _error(400, "external_id, email or phone is required")
    groups = [{"id": f"group-{_digest(key, u) % 5}", "name": "Newsletter", "status": "Subscribed"} for u in users]
    return Reply(200, {"success": True, "users": [{"id": u, "subscription_groups": groups} for u in users]})


def _keys(key: str, values: Mapping[str, str], query: Query, base: str) -> Reply:
    app = query.get("app_id")
    if not app:
        return _error(400, "app_id is required")
    keys = [
        {"id": f"key-{app}-{i}", "rsa_public_key": "-----BEGIN PUBLIC KEY-----", "is_primary": i == 0} for i in (0, 1)
    ]
    return Reply(200, {"keys": keys})


def _fixed(body: Body) -> Callable[[str, Mapping[str, str], Query, str], Reply]:
    return lambda key, values, query, base: Reply(200, body)


def _preference_center(key: str, values: Mapping[str, str], query: Query, base: str) -> Reply:
    wanted = values["preference_center_external_id"]
    if wanted not in ("pc-1", "pc-2"):
        return _error(404, "Preference center not found")
    return Reply(200, {"name": f"Center {wanted}", "preference_center_api_id": wanted, "preference_center_body": ""})


def _info(id_key: str) -> Callable[[str, Mapping[str, str], Query, str], Reply]:
    def answer(key: str, values: Mapping[str, str], query: Query, base: str) -> Reply:
        wanted = query.get(id_key, "")
        if not wanted:
            return _error(400, f"{id_key} is required")
        return Reply(200, {id_key: wanted, "name": f"Item {wanted}", "content": "<p>hi</p>", "message": "success"})

    return answer


def _scheduled(key: str, values: Mapping[str, str], query: Query, base: str) -> Reply:
    end = _parse_time(query.get("end_time", ""))
    if end is None:
        return _error(400, "end_time is required and must be ISO-8601")
    broadcasts = [{"name": f"Broadcast {i}", "id": f"b-{i}", "next_send_time": _when(key, "b", i)} for i in range(3)]
    return Reply(200, {"scheduled_broadcasts": broadcasts, "message": "success"})


_PAGES = ("page", "include_archived", "sort_direction", "last_edit.time[gt]")
_MODIFIED = ("modified_after", "modified_before", "limit", "offset")
ROUTES: tuple[Route, ...] = (
    Route("/campaigns/list", _PAGES, _list("campaigns", "campaigns")),
    Route("/campaigns/details", ("campaign_id", "post_launch_draft_version"), _details("campaigns", "campaign_id")),
    Route("/canvas/list", _PAGES, _list("canvases", "canvases")),
    Route("/canvas/details", ("canvas_id", "post_launch_draft_version"), _details("canvases", "canvas_id")),
    Route("/segments/list", ("page", "sort_direction"), _list("segments", "segments")),
    Route("/segments/details", ("segment_id",), _details("segments", "segment_id")),
    Route("/events/list", ("page",), _names("events", "events")),
    Route("/events", ("cursor",), _cursored("events", "events", "/events")),
    Route("/feed/list", ("page", "include_archived", "sort_direction"), _list("cards", "cards")),
    Route("/feed/details", ("card_id",), _details("cards", "card_id")),
    Route("/purchases/product_list", ("page",), _names("products", "products")),
    Route("/custom_attributes", ("cursor",), _cursored("attrs", "attributes", "/custom_attributes")),
    Route("/content_blocks/list", _MODIFIED, _offset_list("content_blocks", "content_block_id", 30)),
    Route("/content_blocks/info", ("content_block_id", "include_inclusion_data"), _info("content_block_id")),
    Route("/templates/email/list", _MODIFIED, _offset_list("templates", "email_template_id", 12)),
    Route("/templates/email/info", ("email_template_id",), _info("email_template_id")),
    Route("/preference_center/v1/list", (), _fixed({"preference_centers": [{"name": "One"}, {"name": "Two"}]})),
    Route("/preference_center/v1/{preference_center_external_id}", (), _preference_center),
    Route("/messages/scheduled_broadcasts", ("end_time",), _scheduled),
    Route("/catalogs", (), _fixed({"catalogs": [{"name": "restaurants"}, {"name": "dishware"}], "message": "success"})),
    Route("/catalogs/{catalog_name}/items", ("cursor",), _catalog_items),
    Route("/catalogs/{catalog_name}/items/{item_id}", (), _catalog_item),
    Route("/cdi/integrations", ("cursor",), _integrations),
    Route("/cdi/integrations/{integration_id}/job_sync_status", ("cursor",), _job_status),
    Route("/app_group/sdk_authentication/keys", ("app_id",), _keys),
    Route("/subscription/status/get", ("subscription_group_id", *USERS), _subscription_status),
    Route("/subscription/user/status", (*USERS, "limit", "offset"), _user_groups),
)
BY_PATH = {route.path: route for route in ROUTES}


def answer(route: Route, key: str, values: Mapping[str, str], query: Query, base: str) -> Reply:
    """Braze's answer to a GET of `route`: an undocumented parameter is Braze's 400."""
    unknown = sorted({name for name in query if name not in route.params and name != "api_key"})
    if unknown:
        return _error(400, "Invalid parameters", *(f"unknown parameter '{name}'" for name in unknown))
    return route.answer(key, values, query, base)
