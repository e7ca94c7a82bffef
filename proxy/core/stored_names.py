"""Pure: what a stored name says about what it holds (an entry of one question, or a series of buckets), whether
a purge's endpoint and filters match it, and how the admin API shows it (never the scope: a short hash of it).

Names are the keys query.Question.cache_key and series.series_key make, without the Redis prefix and braces.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote

from proxy.core.endpoints import SERVED, Endpoint
from proxy.core.errors import InvalidRequest
from proxy.core.exports import EXPORTS, Export
from proxy.core.query import KEY_VERSION
from proxy.core.series import SERIES_VERSION

FROM = "from"


@dataclass(frozen=True, slots=True)
class Held:
    kind: str  # "entry" or "series"
    scope: str
    endpoint: str
    unit: str
    filters: dict[str, str]
    length: int | None = None  # entries only
    ending_at: float | None = None  # entries only: the start of the last bucket, epoch seconds
    exact: bool = False  # an answer for one instant (windows' fallback)

    def matches(self, endpoint: str, filters: Mapping[str, str]) -> bool:
        return self.endpoint == endpoint and all(self.filters.get(n) == v for n, v in filters.items())

    def shown(self) -> dict[str, object]:
        """The admin listing's fields: what the question is, and whose by a short hash of the scope only."""
        shown: dict[str, object] = {
            "kind": self.kind,
            "endpoint": self.endpoint,
            "filters": self.filters,
            "unit": self.unit,
            "scope": hashlib.sha256(self.scope.encode()).hexdigest()[:8],
        }
        if self.kind == "entry" and self.ending_at is not None:
            shown["length"] = self.length
            shown["ending_at"] = datetime.fromtimestamp(self.ending_at, UTC).isoformat().replace("+00:00", "Z")
            shown["exact"] = self.exact
        return shown


def _filters(parts: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in parts:
        name, eq, value = part.partition("=")
        if eq and name != FROM:
            found[name] = unquote(value)
    return found


def describe(name: str) -> Held | None:
    """What the stored `name` holds, or None when it is not an entry's or a series' name."""
    name = name.removeprefix("{").removesuffix("}")
    parts = name.split(":")
    if parts[0] == KEY_VERSION and len(parts) >= 4 and parts[3].startswith("/"):  # an export's: v1:scope:name:/path?q
        _, scope, endpoint, asked = name.split(":", 3)
        query = asked.partition("?")[2]
        return Held("entry", scope, endpoint, "", _filters(query.split("&") if query else []))
    if parts[0] == KEY_VERSION and len(parts) >= 6:
        exact = parts[-1] == "exact"
        rest = parts[6:-1] if exact else parts[6:]
        try:
            length, ending_at = int(parts[3]), float(parts[5])
        except ValueError:
            return None
        return Held("entry", parts[1], parts[2], parts[4], _filters(rest), length, ending_at, exact)
    if parts[0] == SERIES_VERSION and len(parts) >= 5:  # s2:scope:zone:endpoint:unit:filters
        return Held("series", parts[1], parts[3], parts[4], _filters(parts[5:]))
    return None


def endpoint_named(name: object) -> Endpoint | Export:
    """The served endpoint called `name` (the `braze_endpoint` label); raises InvalidRequest naming it."""
    served: list[Endpoint | Export] = [*SERVED, *EXPORTS]
    for endpoint in served:
        if endpoint.name == name:
            return endpoint
    names = ", ".join(e.name for e in served)
    message = f"unknown endpoint {str(name)[:40]!r} (one of: {names})"
    raise InvalidRequest(f"Invalid request: {message}", [message])


def _filter_names(endpoint: Endpoint | Export) -> set[str]:
    if isinstance(endpoint, Endpoint):
        return {f.name for f in endpoint.filters}
    return {p.name for p in endpoint.params}


def purge_request(payload: object) -> tuple[str, dict[str, str]]:
    """(endpoint name, filters) of a purge body `{"endpoint": ..., "filters": {...}}`; raises InvalidRequest
    naming an unknown endpoint, an unknown filter or a value that is not a string."""
    if not isinstance(payload, dict):
        raise InvalidRequest("Invalid request: the body must be a JSON object")
    endpoint = endpoint_named(payload.get("endpoint"))
    filters = payload.get("filters") or {}
    if not isinstance(filters, dict):
        raise InvalidRequest("Invalid request: 'filters' must be an object of filter names to values")
    known = _filter_names(endpoint)
    errors = [f"unknown filter {str(n)[:40]!r} for {endpoint.name}" for n in filters if n not in known]
    errors += [f"filter {n!r} must be a string" for n, v in filters.items() if n in known and not isinstance(v, str)]
    if errors:
        raise InvalidRequest(f"Invalid request: {errors[0]}", errors)
    return endpoint.name, {str(n): str(v) for n, v in filters.items()}
