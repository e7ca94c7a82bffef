"""The settings' cross-checks (settings.py calls them after each field is valid on its own): one line naming the
variable and what is wrong, never a value."""

from __future__ import annotations

from typing import TYPE_CHECKING

from proxy.core.credentials import DEFAULT_WORKSPACE
from proxy.core.endpoints import group_move_problems
from proxy.redis.url import parse_redis_url

if TYPE_CHECKING:
    from proxy.settings.model import Settings


def check_together(s: Settings) -> None:
    """Raise ValueError when settings valid one by one do not fit together."""
    if s.redis_tls_ca_file is not None and not (s.redis_url and parse_redis_url(s.redis_url).tls):
        raise ValueError("BRAZE_PROXY_REDIS_TLS_CA_FILE needs a TLS Redis URL (rediss://, rediss+sentinel://, ...)")
    if s.stale_while_revalidate_seconds > s.stale_seconds:
        raise ValueError(
            "BRAZE_PROXY_STALE_WHILE_REVALIDATE_SECONDS must not exceed BRAZE_PROXY_STALE_SECONDS"
            " (an entry is only kept that long)"
        )
    if s.metrics_port is not None and s.metrics_port == s.port:
        raise ValueError(
            f"BRAZE_PROXY_METRICS_PORT is BRAZE_PROXY_PORT ({s.port}): give /metrics a port of its own, or"
            " unset it to serve /metrics on BRAZE_PROXY_PORT"
        )
    moved = group_move_problems(s.endpoint_groups, s.groups())
    if moved:  # a typo would silently spend the default budget
        raise ValueError(f"BRAZE_PROXY_ENDPOINT_GROUPS: {moved[0]}")
    _check_mode(s)
    seen: set[str] = set()
    for name, workspace in s.workspaces.items():
        if name == DEFAULT_WORKSPACE:
            raise ValueError("BRAZE_PROXY_WORKSPACES: 'default' is where unmapped keys go; name yours otherwise")
        if seen & set(workspace.key_sha256):
            raise ValueError("BRAZE_PROXY_WORKSPACES: a key hash is mapped to two workspaces")
        seen |= set(workspace.key_sha256)


def _check_mode(s: Settings) -> None:
    """Managed-key mode: teams and the key go together, unless anyone who reaches the port may call."""
    if s.client_tokens is not None or s.client_tokens_file is not None:
        if s.api_key is None:
            raise ValueError("BRAZE_PROXY_CLIENT_TOKENS needs BRAZE_PROXY_API_KEY (managed-key mode)")
        if s.client_tokens is not None:
            s.teams()  # raises on a malformed list
    elif s.api_key is not None and not s.allow_anonymous:
        raise ValueError(
            "managed-key mode needs BRAZE_PROXY_CLIENT_TOKENS (name:token[:weight],...) so that only your teams"
            " spend the managed key; set BRAZE_PROXY_ALLOW_ANONYMOUS=true to serve anyone who reaches the port"
        )
