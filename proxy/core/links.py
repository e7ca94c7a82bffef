"""Pure: Braze's `Link` header, pointed at the proxy.

A paged list's next page comes in a `Link` header (RFC 8288). Where Braze writes it absolute, to its own host
(`/events`, `/custom_attributes`, CDI), a client following it would go past the proxy: such a link is rewritten to
the proxy's base URL (the scheme and host the client used), keeping Braze's path and query. A relative link
(catalog items) stays as it is: a client joins it to its base URL, the proxy's. Links to other hosts are left
alone.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_TARGET = re.compile(r"<([^>]*)>")
BRAZE_DOMAINS = (".braze.com", ".braze.eu")


def braze_host(host: str, upstream_host: str) -> bool:
    """Whether `host` is Braze's: the configured upstream's, or a Braze REST domain."""
    host = host.lower()
    return host == upstream_host.lower() or host.endswith(BRAZE_DOMAINS)


def rewrite(link: str, upstream_url: str, base: str) -> str:
    """`link` with every absolute target on Braze's host moved to `base` (e.g. `http://proxy:8080`).

    The upstream URL's own path prefix (an egress gateway's) is dropped from a target that starts with it.
    """
    upstream = urlsplit(upstream_url)
    prefix = upstream.path.rstrip("/")
    base = base.rstrip("/")

    def one(match: re.Match[str]) -> str:
        target = urlsplit(match[1])
        if target.scheme not in ("http", "https") or not braze_host(target.netloc, upstream.netloc):
            return match[0]
        path = target.path
        if prefix and (path == prefix or path.startswith(prefix + "/")):
            path = path[len(prefix) :] or "/"
        query = f"?{target.query}" if target.query else ""
        return f"<{base}{path}{query}>"

    return _TARGET.sub(one, link)
