"""The admin API's part of the OpenAPI description (openapi_doc.py adds it): routes, bodies and answers.

The admin API exists only with BRAZE_PROXY_ADMIN_TOKEN set, on the ops port when BRAZE_PROXY_METRICS_PORT is set
(docs/operations.md); its bearer is the admin token, never a team token or a Braze key.
"""

from __future__ import annotations

from typing import Any

ADMIN_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "The admin token (BRAZE_PROXY_ADMIN_TOKEN); team tokens and Braze keys never open the admin API",
}
_ERROR = {"$ref": "#/components/schemas/Error"}
_COMMON = {
    "401": "Missing or wrong admin token",
    "404": "The admin API is not enabled here (no BRAZE_PROXY_ADMIN_TOKEN, or it is served on the metrics port)",
    "503": "Redis did not answer; nothing or part was done: try again",
}
_STANDING = {
    "workspace": {"type": "string"},
    "group": {"type": "string"},
    "per_hour": {"type": "number"},
    "per_second": {"type": "number"},
    "spent_this_hour": {"type": "integer"},
    "remaining": {"type": "integer"},
    "reset": {"type": "integer", "description": "epoch seconds: the start of the next hour"},
}


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


def _operation(operation_id: str, summary: str, ok: str, answer: dict[str, Any], body: Any = None) -> dict[str, Any]:
    responses: dict[str, Any] = {ok: {"description": "Done", "content": {"application/json": {"schema": answer}}}}
    if body is not None or operation_id == "adminCache":
        responses["400"] = {
            "description": "Invalid request: names what",
            "content": {"application/json": {"schema": _ERROR}},
        }
    for status, text in _COMMON.items():
        responses[status] = {"description": text, "content": {"application/json": {"schema": _ERROR}}}
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "tags": ["admin"],
        "security": [{"admin": []}],
        "responses": responses,
    }
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return operation


def admin_paths() -> dict[str, Any]:
    """The admin routes, as OpenAPI paths."""
    purge = _object(
        {
            "endpoint": {"type": "string", "description": "the braze_endpoint label's name, e.g. sessions"},
            "filters": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        ["endpoint"],
    )
    warm = _object(
        {
            "questions": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 100},
            "api_key": {"type": "string", "description": "pass-through mode only: whose data to warm"},
        },
        ["questions"],
    )
    item = _object(
        {
            "kind": {"type": "string", "enum": ["entry", "series"]},
            "endpoint": {"type": "string"},
            "filters": {"type": "object", "additionalProperties": {"type": "string"}},
            "unit": {"type": "string"},
            "scope": {"type": "string", "description": "a short hash of the credential's scope"},
            "age": {"type": "integer"},
            "fresh_for": {"type": "integer"},
            "bytes": {"type": "integer"},
        },
        ["kind", "endpoint", "filters", "unit", "scope", "age", "fresh_for", "bytes"],
    )
    page = {"items": {"type": "array", "items": item}, "next_cursor": {"type": "string", "nullable": True}}
    teams = {
        "teams": {
            "type": "array",
            "items": _object(
                {"team": {"type": "string"}, "weight": {"type": "number"}, **_STANDING}, ["team", "weight"]
            ),
        },
        "budgets": {"type": "array", "items": _object(_STANDING, ["workspace", "group"])},
    }
    cache = _operation("adminCache", "What is cached (paged; never a credential)", "200",
                       _object(page, ["items", "next_cursor"]))  # fmt: skip
    cache["parameters"] = [
        {"name": "endpoint", "in": "query", "required": False, "schema": {"type": "string"}},
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": 200},
        },
        {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"}},
    ]
    return {
        "/admin/purge": {"post": _operation("adminPurge", "Drop an endpoint's entries (and filters') everywhere",
                                            "200", _object({"purged": {"type": "integer"}}, ["purged"]), purge)},
        "/admin/warm": {"post": _operation("adminWarm", "Fetch questions in the background, with spare budget only",
                                           "202", _object({"accepted": {"type": "integer"}}, ["accepted"]), warm)},
        "/admin/cache": {"get": cache},
        "/admin/teams": {"get": _operation("adminTeams", "Each team's and budget's share, spending and remainder",
                                           "200", _object(teams, ["teams", "budgets"]))},
    }  # fmt: skip
