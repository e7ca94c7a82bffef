"""Pure: the RFC 9211 `Cache-Status` of one answer, as one small value rendered in one place.

The `kind` doubles as the `cache` label of the request metrics (hit, miss, stale, collapsed, bypass, error).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from multidict import istr

CACHE_NAME = "braze-proxy"  # the cache's identifier in the header (RFC 9211 §2)
HEADER = istr("Cache-Status")

Kind = Literal["hit", "miss", "stale", "collapsed", "bypass", "error"]


@dataclass(frozen=True, slots=True)
class CacheStatus:
    kind: Kind
    fwd: Literal["miss", "stale", "bypass"] | None = None  # why the cache went forward (RFC 9211 §2.2)
    fwd_status: int | None = None  # the status the next hop (Braze) answered
    ttl: int | None = None  # whole seconds of freshness left (negative: stale)
    stored: bool = False
    collapsed: bool = False  # answered by another request's upstream call
    detail: str | None = None

    def render(self) -> str:
        parts = [CACHE_NAME]
        if self.kind == "hit":
            parts.append("hit")
        if self.fwd is not None:
            parts.append(f"fwd={self.fwd}")
        if self.fwd_status is not None:
            parts.append(f"fwd-status={self.fwd_status}")
        if self.ttl is not None:
            parts.append(f"ttl={self.ttl}")
        if self.stored:
            parts.append("stored")
        if self.collapsed:
            parts.append("collapsed")
        if self.detail is not None:
            parts.append(f"detail={self.detail}")
        return "; ".join(parts)


BYPASS = CacheStatus("bypass", fwd="bypass")
