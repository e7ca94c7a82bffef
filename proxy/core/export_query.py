"""Pure: a request to one of the export rows (exports.py) -> a validated, canonical ExportQuestion and its key.

Spellings of one question are one key: parameter order, percent-encoding (`%5B`, `%3D%3D`), a space as `+` or
`%20` (the web shell decodes both), a documented default written or omitted (`page=0`, `include_archived=false`),
a boolean in any case, an integer with leading zeros. Repeated parameters keep their order (Braze answers in it).
Braze is called with the canonical query.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, tzinfo
from urllib.parse import quote

from proxy.core.errors import InvalidRequest
from proxy.core.exports import Export, Param
from proxy.core.query import KEY_VERSION, LEGACY_KEY_PARAM, Question
from proxy.core.timeline import TimeFormatError, parse_instant

MAX_PARAMS = 64
MAX_VALUE_CHARS = 512  # a cursor, an email address, a time: Braze's values are short
MAX_PATH_VALUE_CHARS = 256


@dataclass(frozen=True, slots=True)
class ExportQuestion:
    """One canonical question to one export row: its path parameters and its query, sorted by name."""

    endpoint: Export
    path_values: tuple[str, ...]  # decoded, in the path's order
    params: tuple[tuple[str, str], ...]

    @property
    def upstream_path(self) -> str:
        """Braze's path with the path parameters filled in, each percent-encoded (never a `/` or `..` of its own)."""
        path = self.endpoint.path
        for name, value in zip(self.endpoint.path_params, self.path_values, strict=True):
            path = path.replace("{" + name + "}", quote(value, safe=""))
        return path

    def upstream_params(self, zone: tzinfo | None = None) -> list[tuple[str, str]]:
        return list(self.params)

    def cache_key(self, scope: str) -> str:
        """`v1:<scope>:<endpoint>:<path>?<query>`: the endpoint's name in the same place as the series' keys."""
        query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in self.params)
        return f"{KEY_VERSION}:{scope}:{self.endpoint.name}:{self.upstream_path}?{query}"


AnyQuestion = Question | ExportQuestion


def parse_export(export: Export, path_values: Iterable[str], pairs: Iterable[tuple[str, str]]) -> ExportQuestion:
    """Validate decoded path values and query pairs against `export`; raises InvalidRequest naming every problem."""
    errors: list[str] = []
    values = tuple(path_values)
    for name, value in zip(export.path_params, values, strict=True):
        if not value or len(value) > MAX_PATH_VALUE_CHARS or not value.isprintable() or value in (".", ".."):
            errors.append(f"path parameter '{name}' must be 1 to {MAX_PATH_VALUE_CHARS} printable characters")
    given = [(name, value) for name, value in pairs if name != LEGACY_KEY_PARAM]
    if len(given) > MAX_PARAMS:
        errors.append(f"at most {MAX_PARAMS} parameters")
    documented = {param.name: param for param in export.params}
    kept: list[tuple[str, str]] = []
    counts: dict[str, int] = {}
    for name, value in given:
        counts[name] = counts.get(name, 0) + 1
        param = documented.get(name)
        canonical = _check(param, name, value, errors) if param is not None else _plain(name, value, errors)
        if canonical is not None and (param is None or canonical != param.default):
            kept.append((name, canonical))
    for param in export.params:
        if param.required and not any(name == param.name and value for name, value in given):
            errors.append(f"parameter '{param.name}' is required")
        if counts.get(param.name, 0) > max(1, param.many):
            most = f"at most {param.many} times" if param.many else "once"
            errors.append(f"parameter '{param.name}' may be given {most}")
    if errors:
        raise InvalidRequest(f"Invalid request: {errors[0]}", errors)
    return ExportQuestion(export, values, tuple(sorted(kept, key=lambda pair: pair[0])))


def _plain(name: str, value: str, errors: list[str]) -> str | None:
    """A parameter Braze's page does not document: passed on as it is, if it is sane."""
    if not name or len(name) > 64 or not name.isprintable() or len(value) > MAX_VALUE_CHARS or not value.isprintable():
        errors.append(f"parameter '{_shown(name)}' must be printable and at most {MAX_VALUE_CHARS} characters")
        return None
    return value


def _check(param: Param, name: str, value: str, errors: list[str]) -> str | None:
    """The canonical spelling of a documented parameter's value, or None (an error appended)."""
    if len(value) > MAX_VALUE_CHARS or not value.isprintable():
        errors.append(f"parameter '{name}' must be printable and at most {MAX_VALUE_CHARS} characters")
        return None
    if param.kind == "int":
        return _integer(param, value, errors)
    if param.kind == "bool":
        if value.lower() in ("true", "false"):
            return value.lower()
        errors.append(f"parameter '{name}' must be 'true' or 'false', got '{_shown(value)}'")
        return None
    if param.kind == "choice":
        if value.lower() in param.choices:
            return value.lower()
        errors.append(f"parameter '{name}' must be one of {', '.join(param.choices)}, got '{_shown(value)}'")
        return None
    if param.kind == "time":
        try:
            parse_instant(value.strip(), UTC)
        except TimeFormatError:
            errors.append(f"parameter '{name}' must be an ISO-8601 date or date-time, got '{_shown(value)}'")
            return None
    return value


def _integer(param: Param, value: str, errors: list[str]) -> str | None:
    high = param.high
    if value.isascii() and value.isdigit() and len(value) <= 9 and param.low <= int(value) <= (high or 10**9):
        return str(int(value))
    bound = f"from {param.low} to {high}" if high is not None else f"of at least {param.low}"
    errors.append(f"parameter '{param.name}' must be an integer {bound}, got '{_shown(value)}'")
    return None


def _shown(text: str, limit: int = 40) -> str:
    clean = "".join(ch if ch.isprintable() else "?" for ch in text[:limit])
    return clean + ("..." if len(text) > limit else "")
