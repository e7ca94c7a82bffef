"""Settings: read once at start-up from BRAZE_PROXY_* variables (and an optional .env file).

Only the CLI builds it (and reads the process environment, once); constructors take the narrow values they need.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Literal, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from proxy.core.credentials import DEFAULT_WORKSPACE, NAME, Team, parse_client_tokens
from proxy.redis.url import parse_redis_url, redacted
from proxy.settings.checks import check_together
from proxy.settings.day2 import check_day2

ENV_PREFIX = "BRAZE_PROXY_"
ENV_FILE = ".env"
DEFAULT_RATE = 50_000.0  # a fifth of Braze's 250,000 per hour per workspace
__all__ = ["DEFAULT_WORKSPACE", "NAME", "Settings", "Team"]


class Workspace(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key_sha256: list[str] = Field(min_length=1)  # hex SHA-256 of each API key of the workspace
    rate_limit_per_hour: float | None = Field(None, gt=0)  # its default group's budget; unset: the global one

    @field_validator("key_sha256")
    @classmethod
    def _hex(cls, value: list[str]) -> list[str]:
        for digest in value:
            if not re.fullmatch(r"[0-9a-f]{64}", digest):
                raise ValueError("key_sha256 holds lower-case hex SHA-256 digests of API keys, never the keys")
        return value


class Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rate_limit_per_hour: float = Field(gt=0)
    burst: int | None = Field(None, ge=1)  # unset: BRAZE_PROXY_RATE_LIMIT_BURST


# A fifth of each limit Braze publishes apart from the default 250,000 an hour (exports.py names the source).
DEFAULT_GROUPS = {
    "campaigns": Group(rate_limit_per_hour=600_000),  # /campaigns/data_series: 50,000 a minute
    "events_products": Group(rate_limit_per_hour=200, burst=20),  # 1,000 an hour: /events/list and 3 others
    "catalogs": Group(rate_limit_per_hour=600, burst=10),  # 50 a minute: the synchronous catalog endpoints
    "catalog_items": Group(rate_limit_per_hour=600, burst=10),  # 50 a minute: the synchronous item endpoints
    "cdi_integrations": Group(rate_limit_per_hour=600, burst=10),  # 50 a minute
    "cdi_job_status": Group(rate_limit_per_hour=1200, burst=20),  # 100 a minute
    "preference_center": Group(rate_limit_per_hour=12_000, burst=100),  # 1,000 a minute
}


def _upstream_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL such as https://rest.iad-01.braze.com")
    if parts.query or parts.fragment:
        raise ValueError("must not carry a query or fragment")
    if "@" in parts.netloc:  # aiohttp would refuse to combine them with the Authorization header
        raise ValueError("must not carry a user or password (Braze is authenticated by the API key)")
    return value.rstrip("/")


def _egress_proxy(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError("must be an http(s) URL of a proxy such as http://proxy.internal:3128")
    return value.strip()


def _redis_url(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    try:
        parse_redis_url(value.strip())
    except ValueError as exc:  # one line quoting no part of the URL (no password)
        raise ValueError(str(exc).removeprefix("invalid Redis URL: ")) from None
    return value.strip()


def _ca_file(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    if not Path(value).is_file():
        raise ValueError("no such file (the PEM file of the CA that signed Redis's certificate)")
    return value


def _time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {value!r}") from None
    return value


def _names(value: dict[str, T]) -> dict[str, T]:
    for name in value:
        if not NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a name (letters, digits, '_', '-', '.'; up to 40)")
    return value


T = TypeVar("T")
UpstreamUrl = Annotated[str, AfterValidator(_upstream_url)]
EgressProxy = Annotated[str | None, AfterValidator(_egress_proxy)]
RedisUrl = Annotated[str | None, AfterValidator(_redis_url)]
CaFile = Annotated[str | None, AfterValidator(_ca_file)]
TimeZone = Annotated[str, AfterValidator(_time_zone)]
Seconds = float


class Settings(BaseSettings):
    """Every knob of the proxy. Field descriptions feed `braze-proxy --help`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=ENV_FILE,
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    # --- upstream -------------------------------------------------------------------------------------
    upstream_url: UpstreamUrl = Field(
        "https://rest.iad-01.braze.com", description="Braze REST instance, e.g. https://rest.fra-01.braze.eu"
    )
    upstream_proxy: EgressProxy = Field(
        None,
        description="egress proxy for the calls to Braze, http://[user:pass@]host:port; unset: HTTPS_PROXY /"
        " HTTP_PROXY are honoured unless NO_PROXY covers Braze's host",
    )
    api_key: SecretStr | None = Field(
        None, description="managed-key mode: call Braze with this key, never the client's (unset: pass-through)"
    )
    client_tokens: SecretStr | None = Field(
        None,
        description="managed-key mode: comma-separated name:token[:weight] entries; clients present the token as"
        " Bearer, the name is their team, the weight (a plain decimal from 0.001 to 1000, 1 if omitted) their share"
        " of a contended budget; tokens of at least 16 characters, none equal to the API key",
    )
    upstream_timeout: Seconds = Field(10.0, gt=0, le=300, description="total time for one upstream call")
    upstream_connect_timeout: Seconds = Field(3.0, gt=0, le=60, description="time to connect to Braze")
    upstream_max_body_bytes: int = Field(
        1_048_576, ge=1024, le=64 * 1_048_576, description="larger upstream bodies are refused (502)"
    )
    upstream_max_connections: int = Field(64, ge=1, le=4096, description="connection pool size to Braze")
    upstream_retries: int = Field(2, ge=0, le=10, description="retries of upstream 5xx/connection errors")
    upstream_retry_budget_seconds: Seconds = Field(
        15.0, gt=0, le=600, description="total time a request may spend on retries"
    )

    # --- cache ----------------------------------------------------------------------------------------
    redis_url: RedisUrl = Field(
        None,
        description="redis://host:port/db, rediss://, unix:///path, redis+sentinel://host:port,.../service[/db],"
        " redis+cluster://host:port,... (and rediss+ of both; see docs/redis.md); unset or empty: in-process memory",
    )
    redis_tls_ca_file: CaFile = Field(
        None, description="PEM file of the CA that signed the Redis TLS certificate (rediss://...); unset: system CAs"
    )
    redis_key_prefix: str = Field("braze-proxy:", max_length=64, description="prefix of every Redis key")
    redis_timeout: Seconds = Field(0.5, gt=0, le=30, description="bound on one Redis call")
    redis_max_connections: int = Field(64, ge=1, le=4096, description="Redis connection pool size")
    redis_fill_wakeups: bool = Field(
        True, description="wake replicas waiting on another's upstream call by pub/sub (false: they only poll)"
    )
    memory_max_entries: int = Field(
        10_000, ge=1, description="in-process cache capacity in entries (the memory store, or the L1 before Redis)"
    )
    memory_max_bytes: int = Field(
        64 * 1_048_576,
        ge=1024,
        description="in-process cache capacity in bytes (the memory store and, with windows on, its buckets: half each;"
        " or the L1 before Redis)",
    )
    l1_enabled: bool = Field(True, description="in-process L1 cache in front of Redis")
    windows: bool = Field(
        True, description="answer windows of flat series from buckets already fetched (false: exact questions only)"
    )
    widen_fetches: bool = Field(
        True, description="on a miss, fetch the endpoint's longest window ending at the question's last bucket"
    )

    # --- keys and freshness ---------------------------------------------------------------------------
    reporting_timezone: TimeZone = Field("UTC", description="IANA time zone in which Braze cuts day/hour buckets")
    ttl_open_hour: Seconds = Field(60.0, gt=0, description="TTL when the last hour bucket is still open")
    ttl_open_day: Seconds = Field(300.0, gt=0, description="TTL when the last day bucket is still open")
    settle_window_hour: Seconds = Field(
        3 * 3600.0, ge=0, description="how long after an hour closes Braze may revise it"
    )
    settle_window_day: Seconds = Field(2 * 86400.0, ge=0, description="how long after a day closes Braze may revise it")
    ttl_recent_hour: Seconds = Field(600.0, gt=0, description="TTL when the last hour closed within the window")
    ttl_recent_day: Seconds = Field(1800.0, gt=0, description="TTL when the last day closed within the window")
    ttl_settled: Seconds = Field(86400.0, gt=0, description="TTL of a settled series")
    ttl_lists: Seconds = Field(300.0, gt=0, description="TTL of a list or a page of one (campaigns, events, ...)")
    ttl_details: Seconds = Field(300.0, gt=0, description="TTL of one item's details (a campaign, a template, ...)")
    stale_seconds: Seconds = Field(86400.0, ge=0, description="how long past freshness an entry is kept to serve stale")
    stale_while_revalidate_seconds: Seconds = Field(
        60.0, ge=0, description="past freshness, serve stale at once and refresh in the background (<= STALE_SECONDS)"
    )

    # --- upstream budget (shared token bucket) -------------------------------------------------------
    rate_limit_per_hour: float = Field(
        DEFAULT_RATE,
        gt=0,
        description="upstream calls per hour per workspace (endpoint group 'default'); Braze allows 250000 per"
        " workspace, shared with every other use of the workspace's API: the default is a fifth of it",
    )
    rate_limit_burst: int = Field(1000, ge=1, description="token bucket capacity")
    rate_limit_max_wait_seconds: Seconds = Field(2.0, ge=0, le=60, description="longest wait for a token")
    probation_share: float = Field(
        0.05,
        gt=0,
        le=1,
        description="pass-through mode: the part of each budget (rate and burst; above 0, at most 1) that keys Braze"
        " has never answered with a success spend between them, so that invented keys cannot crowd out accepted ones",
    )
    allow_anonymous: bool = Field(
        False, description="managed-key mode: serve callers without a client token, as the team 'anonymous'"
    )
    workspaces: Annotated[dict[str, Workspace], AfterValidator(_names)] = Field(
        default_factory=dict,
        description='JSON: credentials of other workspaces, by SHA-256, e.g. {"eu": {"key_sha256": ["<64 hex>"],'
        ' "rate_limit_per_hour": 50000}}; unmapped keys spend the workspace "default"',
    )
    budget_groups: Annotated[dict[str, Group], AfterValidator(_names)] = Field(
        default_factory=lambda: dict(DEFAULT_GROUPS),
        description="JSON: budgets of endpoint groups Braze limits apart (a group not named keeps its default), e.g. "
        + json.dumps({name: group.model_dump(exclude_none=True) for name, group in DEFAULT_GROUPS.items()}),
    )
    endpoint_groups: Annotated[dict[str, str], AfterValidator(_names)] = Field(
        default_factory=dict, description='JSON: move endpoints to another budget group, e.g. {"events": "purchases"}'
    )
    expected_replicas: int = Field(
        1, ge=1, le=1000, description="replica count; the per-process budget during a Redis outage"
    )
    redis_outage_policy: Literal["open", "closed"] = Field(
        "open", description="Redis unreachable: 'open' keeps answering, 'closed' refuses misses (503)"
    )

    # --- server ---------------------------------------------------------------------------------------
    host: str = Field("0.0.0.0", description="listen address")
    port: int = Field(8080, ge=1, le=65535, description="listen port")
    metrics_port: int | None = Field(
        None, ge=1, le=65535, description="serve /metrics, /healthz, /readyz on this port only"
    )
    max_query_bytes: int = Field(2048, ge=256, le=65536, description="longest accepted query string")
    max_header_bytes: int = Field(8190, ge=1024, le=65536, description="longest accepted header line")
    shutdown_grace_seconds: Seconds = Field(
        20.0, gt=0, le=600, description="on SIGTERM, how long in-flight requests may finish"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="log level")
    access_log: bool = Field(True, description="one JSON line per proxied request (request id, team, status, cache)")

    # --- day-2 operations (docs/operations.md) ----------------------------------------------------------
    admin_token: SecretStr | None = Field(
        None, description="enables the admin API (/admin/...) for this Bearer token; on METRICS_PORT if set; unset: 404"
    )
    client_tokens_file: str | None = Field(
        None, description="managed-key mode: name:token[:weight] a line (a mounted Secret), reloaded live"
    )
    warm_file: str | None = Field(
        None, description="managed-key mode: 'at HH:MM' and a question a line, warmed daily by one replica"
    )
    refresh_ahead: bool = Field(True, description="refresh questions asked again while fresh before they expire")

    @field_validator("api_key", "client_tokens", "admin_token", "client_tokens_file", "warm_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _check_together(self) -> Settings:
        check_together(self)
        check_day2(self)
        return self

    def groups(self) -> dict[str, Group]:
        """The budget groups: the defaults, each replaced by the configured group of its name, and the others."""
        return {**DEFAULT_GROUPS, **self.budget_groups}

    def teams(self) -> list[Team]:
        """The client teams (none unless BRAZE_PROXY_CLIENT_TOKENS is set)."""
        if self.client_tokens is None:
            return []
        api_key = self.api_key.get_secret_value() if self.api_key else None
        try:
            return parse_client_tokens(self.client_tokens.get_secret_value(), api_key)
        except ValueError as error:
            raise ValueError(f"BRAZE_PROXY_CLIENT_TOKENS: {error}") from None

    # --- derived (not settings: they follow from the ones above) -------------------------------------------

    @property
    def fill_seconds(self) -> float:
        """The longest one fill can take: every attempt and backoff within the retry budget, plus a last call.
        Replicas wait this long for another's fill (whose lock is a short lease its holder extends meanwhile)."""
        return self.upstream_retry_budget_seconds + self.upstream_timeout + 2.0


def without_credentials(url: str) -> str:
    """A Redis `url` with its credentials replaced by *** (for logs; see redis_url.redacted)."""
    return redacted(url)


def env_file_variables(path: str = ENV_FILE) -> dict[str, str]:
    """The variables of the .env file Settings reads (none if there is no such file)."""
    if not Path(path).is_file():
        return {}
    return {name: value or "" for name, value in dotenv_values(path).items()}


def unknown_variables(environ: dict[str, str]) -> list[str]:
    """BRAZE_PROXY_* variables that name no setting (a typo is otherwise silently ignored)."""
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    return sorted(
        name
        for name in environ
        if name.startswith(ENV_PREFIX) and name not in known and not name.startswith(ENV_PREFIX + "_")
    )


def describe_source_error(error: ValueError) -> str:
    """One line for a value the settings sources could not even parse (a JSON setting that is not JSON)."""
    field = re.search(r'field "(\w+)"', str(error))
    if field is None:
        return f"invalid settings: {error}"
    return f"invalid setting {ENV_PREFIX}{field[1].upper()}: not valid JSON"


def describe_error(error: ValidationError) -> str:
    """One line naming the variable and what is wrong (never echoing a secret's value)."""
    first = error.errors()[0]
    loc = [str(part) for part in first.get("loc", ()) if part != "__root__"]
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    if not loc:
        return f"invalid settings: {message}"
    return f"invalid setting {ENV_PREFIX}{loc[0].upper()}: {message}"
