"""Settings: read once at start-up from BRAZE_PROXY_* variables (and an optional .env file).

Nothing else in the package reads the environment; constructors take the narrow values they need.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "BRAZE_PROXY_"

Seconds = float


class Settings(BaseSettings):
    """Every knob of the proxy. Field descriptions feed `braze-proxy --help`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    # --- upstream -------------------------------------------------------------------------------------
    upstream_url: str = Field(
        "https://rest.iad-01.braze.com", description="Braze REST instance, e.g. https://rest.fra-01.braze.eu"
    )
    api_key: SecretStr | None = Field(
        None, description="managed-key mode: call Braze with this key, never the client's (unset: pass-through)"
    )
    client_tokens: SecretStr | None = Field(
        None, description="managed-key mode: comma-separated name:token pairs clients must present as Bearer"
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
    redis_url: str | None = Field(None, description="redis://host:port/db; unset or empty: in-process memory")
    redis_key_prefix: str = Field("braze-proxy:", max_length=64, description="prefix of every Redis key")
    redis_timeout: Seconds = Field(0.5, gt=0, le=30, description="bound on one Redis call")
    redis_max_connections: int = Field(64, ge=1, le=4096, description="Redis connection pool size")
    memory_max_entries: int = Field(10_000, ge=1, description="memory store capacity (entries)")
    memory_max_bytes: int = Field(64 * 1_048_576, ge=1024, description="memory store capacity (bytes)")
    l1_enabled: bool = Field(True, description="in-process L1 cache in front of Redis")
    l1_max_entries: int = Field(10_000, ge=1, description="L1 capacity (entries)")
    l1_max_bytes: int = Field(64 * 1_048_576, ge=1024, description="L1 capacity (bytes)")

    # --- keys and freshness ---------------------------------------------------------------------------
    reporting_timezone: str = Field("UTC", description="IANA time zone in which Braze cuts day/hour buckets")
    floor_ending_at: bool = Field(
        True, description="floor ending_at to its bucket start so all spellings of one bucket share a key"
    )
    ttl_open_hour: Seconds = Field(60.0, gt=0, description="TTL when the last hour bucket is still open")
    ttl_open_day: Seconds = Field(300.0, gt=0, description="TTL when the last day bucket is still open")
    settle_window_hour: Seconds = Field(
        3 * 3600.0, ge=0, description="how long after an hour closes Braze may revise it"
    )
    settle_window_day: Seconds = Field(2 * 86400.0, ge=0, description="how long after a day closes Braze may revise it")
    ttl_recent_hour: Seconds = Field(600.0, gt=0, description="TTL when the last hour closed within the window")
    ttl_recent_day: Seconds = Field(1800.0, gt=0, description="TTL when the last day closed within the window")
    ttl_settled: Seconds = Field(86400.0, gt=0, description="TTL of a settled series")
    stale_seconds: Seconds = Field(86400.0, ge=0, description="how long past freshness an entry is kept to serve stale")
    stale_while_revalidate_seconds: Seconds = Field(
        60.0, ge=0, description="past freshness, serve stale at once and refresh in the background this long"
    )

    # --- upstream budget (shared token bucket) -------------------------------------------------------
    rate_limit_per_hour: float = Field(250_000, gt=0, description="upstream calls per hour this proxy may make")
    rate_limit_burst: int = Field(1000, ge=1, description="token bucket capacity")
    rate_limit_max_wait_seconds: Seconds = Field(2.0, ge=0, le=60, description="longest wait for a token")
    expected_replicas: int = Field(
        1, ge=1, le=1000, description="replica count; the per-process budget during a Redis outage"
    )
    redis_outage_policy: Literal["open", "closed"] = Field(
        "open", description="Redis unreachable: 'open' keeps answering, 'closed' refuses misses (503)"
    )
    coalesce_wait_seconds: Seconds = Field(
        30.0, gt=0, le=600, description="longest wait for another replica's in-flight upstream call"
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

    @field_validator("upstream_url")
    @classmethod
    def _check_upstream_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as https://rest.iad-01.braze.com")
        if parts.query or parts.fragment:
            raise ValueError("must not carry a query or fragment")
        return value.rstrip("/")

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value.strip()

    @field_validator("reporting_timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    @field_validator("api_key", "client_tokens", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _check_modes(self) -> Settings:
        if self.client_tokens is not None:
            if self.api_key is None:
                raise ValueError("BRAZE_PROXY_CLIENT_TOKENS needs BRAZE_PROXY_API_KEY (managed-key mode)")
            self.client_token_map()  # raises on a malformed list
        return self

    def client_token_map(self) -> dict[str, str]:
        """token -> team name, parsed from `name:token,name:token`."""
        if self.client_tokens is None:
            return {}
        mapping: dict[str, str] = {}
        for pair in self.client_tokens.get_secret_value().split(","):
            name, sep, token = pair.strip().partition(":")
            if not sep or not name.strip() or not token.strip():
                raise ValueError("BRAZE_PROXY_CLIENT_TOKENS must be comma-separated name:token pairs")
            mapping[token.strip()] = name.strip()
        return mapping


def describe_error(error: ValidationError) -> str:
    """One line naming the variable and what is wrong (never echoing a secret's value)."""
    first = error.errors()[0]
    loc = [str(part) for part in first.get("loc", ()) if part != "__root__"]
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    if not loc:
        return f"invalid settings: {message}"
    return f"invalid setting {ENV_PREFIX}{loc[0].upper()}: {message}"
