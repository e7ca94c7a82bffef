"""The OpenAPI description of the served endpoints, built from their rows in endpoints.py and exports.py.

`python -m proxy.devtools.openapi > proxy/openapi.json` writes the shipped file; a test holds the file to this
builder, so the description cannot drift from what is routed. Nothing here runs when the proxy serves.
"""

from __future__ import annotations

import json
from typing import Any

from proxy.core.endpoints import SERVED, Endpoint
from proxy.core.export_query import MAX_PATH_VALUE_CHARS
from proxy.core.export_query import MAX_VALUE_CHARS as MAX_EXPORT_VALUE
from proxy.core.exports import EXPORTS, Export, Param
from proxy.core.query import MAX_VALUE_CHARS
from proxy.devtools.openapi_admin import ADMIN_SCHEME, admin_paths

VERSION = "0.1.0"
PERMISSIONS = "the API key needs the permission named after the path, e.g. `kpi.dau.data_series` (docs/endpoints.md)"
_ERRORS = {
    "400": "Invalid parameters (never forwarded upstream), or Braze's own 400 passed through (never cached)",
    "401": "Missing or unknown credential",
    "403": "Braze refused the key (passed through)",
    "429": "The upstream budget is spent; see Retry-After",
    "502": "Braze failed or sent a malformed answer",
    "503": "Redis unreachable with the fail-closed policy",
    "504": "Braze did not answer in time",
}
_FILTERS = {
    "app_id": "Limit to one app (its API identifier)",
    "segment_id": "Limit to an analytics-enabled segment",
    "event": "The custom event's name",
    "product": "Limit to one product (its name)",
    "campaign_id": "The campaign's API identifier",
    "send_id": "The send's API identifier",
    "canvas_id": "The Canvas's API identifier",
}
_OPTIONS = {
    "include_variant_breakdown": "Include the statistics of each variant (default false)",
    "include_step_breakdown": "Include the statistics of each step (default false)",
    "include_deleted_step_data": "Include step statistics of deleted steps (default false)",
}
_INSTANT = {"type": "string", "maxLength": 64}


def build() -> dict[str, Any]:
    """The whole description, as a JSON-ready dict."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "braze-proxy",
            "version": VERSION,
            "description": "A caching proxy with the same contract as Braze's read-only export API: the series"
            " (sessions, custom events, KPIs, purchases, segments, campaigns, sends, Canvas, News Feed) and the lists,"
            " details, catalogs, templates, CDI, SDK keys and per-user lookups: point a client's base URL at it and"
            f" keep its Authorization header; {PERMISSIONS}. Writes (any method but GET) are refused with a 405.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": {e.path: {"get": _operation(e)} for e in SERVED}
        | {e.path: {"get": _export(e)} for e in EXPORTS}
        | admin_paths(),
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A Braze REST API key (pass-through) or a client token (managed-key mode)",
                },
                "admin": ADMIN_SCHEME,
            },
            "schemas": {
                "Series": _series({"sessions": {"type": "integer"}}),
                "Error": {
                    "type": "object",
                    "required": ["message"],
                    "properties": {
                        "message": {"type": "string"},
                        "errors": {"type": "array", "items": {"type": "string"}},
                    },
                },
            },
        },
    }


def _operation(endpoint: Endpoint) -> dict[str, Any]:
    unit = "day or hour" if endpoint.supports_hour else "day"
    responses: dict[str, Any] = {
        "200": {
            "description": "The answer, byte for byte as Braze sent it. Headers: Cache-Status (RFC 9211), Age on hits.",
            "content": {"application/json": {"schema": _answer_schema(endpoint)}},
        }
    }
    for status, text in _ERRORS.items():
        responses[status] = {"description": text, "content": {"application/json": {"schema": _ref("Error")}}}
    responses["429"]["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
    return {
        "operationId": "get" + "".join(part.title() for part in endpoint.name.split("_")),
        "summary": f"{endpoint.path} ({unit} buckets); default budget group '{endpoint.budget_group}'",
        "parameters": _parameters(endpoint),
        "responses": responses,
    }


def _parameters(endpoint: Endpoint) -> list[dict[str, Any]]:
    either = " Either length or starting_at is required." if endpoint.starting_at else ""
    params = [
        _param(
            "length",
            not endpoint.starting_at,
            f"How many {'units' if endpoint.supports_hour else 'days'} the series holds, 1 to {endpoint.max_length}."
            + either,
            {"type": "integer", "minimum": 1, "maximum": endpoint.max_length},
        ),
        _param("unit", False, _unit_text(endpoint), _unit_schema(endpoint)),
        _param(
            "ending_at",
            False,
            "ISO-8601 date or date-time where the series ends (e.g. 2018-06-28T23:59:59-5:00); default now",
            _INSTANT,
        ),
    ]
    if endpoint.starting_at:
        params.append(_param("starting_at", False, "ISO-8601 date or date-time of the first day." + either, _INSTANT))
    for spec in endpoint.filters:
        schema: dict[str, Any] = {"type": "string", "maxLength": MAX_VALUE_CHARS}
        if spec.required:
            schema["minLength"] = 1
        params.append(_param(spec.name, spec.required, _FILTERS.get(spec.name, spec.name), schema))
    for option in endpoint.flags:
        pattern = "^([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]|[01])?$"
        params.append(_param(option, False, _OPTIONS.get(option, option), {"type": "string", "pattern": pattern}))
    return params


def _unit_text(endpoint: Endpoint) -> str:
    if endpoint.supports_hour:
        return "The step between points: day or hour, in any case; empty or omitted means day"
    return "Only day (in any case) or empty: this endpoint has daily points only; hour is refused"


def _unit_schema(endpoint: Endpoint) -> dict[str, Any]:
    pattern = "^([Dd][Aa][Yy]|[Hh][Oo][Uu][Rr])?$" if endpoint.supports_hour else "^([Dd][Aa][Yy])?$"
    return {"type": "string", "pattern": pattern, "default": "day"}


def _param(name: str, required: bool, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _series(values: dict[str, Any]) -> dict[str, Any]:
    point = {"type": "object", "required": ["time"], "properties": {"time": {"type": "string"}, **values}}
    return {
        "type": "object",
        "required": ["message", "data"],
        "properties": {"message": {"type": "string"}, "data": {"type": "array", "items": point}},
    }


def _answer_schema(endpoint: Endpoint) -> dict[str, Any]:
    if endpoint.name == "sessions":
        return _ref("Series")
    if endpoint.shape == "points" and endpoint.value_key:
        return _series({endpoint.value_key: {"type": "number"}})
    if endpoint.shape == "points":  # campaigns and sends: messages by channel, then the day's totals
        return _series({"messages": {"type": "object"}, "unique_recipients": {"type": "integer"}})
    data: dict[str, Any] = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
    if endpoint.shape == "canvas_series":
        stats = {"type": "object", "required": ["time"], "properties": {"time": {"type": "string"}}}
        data["required"] = ["name", "stats"]
        data["properties"]["stats"] = {"type": "array", "items": stats}
    else:
        data["properties"]["total_stats"] = {"type": "object"}
    return {
        "type": "object",
        "required": ["message", "data"],
        "properties": {"message": {"type": "string"}, "data": data},
    }


_KEPT = {
    "list": "kept BRAZE_PROXY_TTL_LISTS seconds (each page its own entry)",
    "detail": "kept BRAZE_PROXY_TTL_DETAILS seconds",
    "per_user": "never kept (per user): only coalesced and budgeted",
    "keys": "never kept (keys): only coalesced and budgeted",
}


def _export(export: Export) -> dict[str, Any]:
    """A read-only export: its path and query parameters, Braze's answer passed on, its limit and its source."""
    responses: dict[str, Any] = {
        "200": {
            "description": f"Braze's answer ({export.answer}), byte for byte. Headers: Cache-Status, Age on hits,"
            " Link (the next page, pointed at the proxy) where Braze sent one.",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        "404": {
            "description": "Braze's 404 (an unknown id), passed through as Braze wrote it",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
    }
    for status, text in _ERRORS.items():
        responses[status] = {"description": text, "content": _error_content()}
    responses["429"]["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
    path = [
        _in(
            "path",
            name,
            True,
            "A path parameter",
            {"type": "string", "minLength": 1, "maxLength": MAX_PATH_VALUE_CHARS},
        )
        for name in export.path_params
    ]
    return {
        "operationId": "get" + "".join(part.title() for part in export.name.split("_")),
        "summary": f"{export.summary}; {_KEPT[export.freshness]}; budget group '{export.budget_group}'",
        "description": f"Braze's limit: {export.limit} ({export.source}).",
        "parameters": path + [_query(param) for param in export.params],
        "responses": responses,
    }


def _query(param: Param) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "maxLength": MAX_EXPORT_VALUE}
    if param.kind == "int":
        schema = {"type": "integer", "minimum": param.low} | ({"maximum": param.high} if param.high else {})
    elif param.kind == "bool":
        schema = {"type": "boolean"}
    elif param.kind == "choice":
        schema = {"type": "string", "enum": list(param.choices)}
    if param.required:
        schema["minLength"] = 1
    if param.default is not None:
        schema["default"] = _typed(param)
    return _in("query", param.name, param.required, param.text or param.name, schema)


def _typed(param: Param) -> object:
    """The default as the schema's type has it."""
    if param.kind == "int":
        return int(param.default or 0)
    if param.kind == "bool":
        return param.default == "true"
    return param.default


def _in(where: str, name: str, required: bool, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required, "description": description, "schema": schema}


def _error_content() -> dict[str, Any]:
    return {"application/json": {"schema": _ref("Error")}}


def render() -> str:
    """The file's text: indented, keys in the builder's order, a final newline."""
    return json.dumps(build(), indent=2) + "\n"


if __name__ == "__main__":
    print(render(), end="")
