"""Redis URLs, decided purely: which topology, which hosts, which credentials; and a log-safe form of a URL.

Accepted (credentials percent-encoded; a '/', '?', '#' or '@' in a password must be):
  redis://[user:pass@]host[:port][/db]            rediss:// the same over TLS
  unix://[user:pass@]/path/to/socket[?db=N]
  redis+sentinel://[user:pass@]host[:port][,host[:port]...]/service_name[/db]     rediss+sentinel:// over TLS
  redis+cluster://[user:pass@]host[:port][,host[:port]...][/0]                     rediss+cluster:// over TLS
Sentinel hosts are the sentinels (default port 26379); the credentials go to the sentinels and to the data nodes.
No error message quotes any part of the URL: a malformed URL may have a password where a host was expected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import unquote

Kind = Literal["standalone", "sentinel", "cluster"]

SCHEMES: dict[str, tuple[Kind, bool]] = {  # scheme -> (topology, TLS)
    "redis": ("standalone", False),
    "rediss": ("standalone", True),
    "unix": ("standalone", False),
    "redis+sentinel": ("sentinel", False),
    "rediss+sentinel": ("sentinel", True),
    "redis+cluster": ("cluster", False),
    "rediss+cluster": ("cluster", True),
}
DEFAULT_PORT: dict[Kind, int] = {"standalone": 6379, "sentinel": 26379, "cluster": 6379}
MAX_HOSTS = 64
MAX_DB = 1_000_000  # Redis's `databases` is a 32-bit int; any real setting is far below this
_HOST = re.compile(r"[A-Za-z0-9_.-]{1,253}")
_IPV6 = re.compile(r"[0-9A-Fa-f:.]{2,45}(%[A-Za-z0-9_.-]{1,32})?")
_DIGITS = re.compile(r"[0-9]{1,9}")
_SERVICE = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


@dataclass(frozen=True)
class RedisTarget:
    """Where Redis is and how to log in. `hosts` are the server (standalone), the sentinels, or cluster seeds."""

    kind: Kind
    hosts: tuple[tuple[str, int], ...] = ()
    tls: bool = False
    db: int = 0
    service_name: str | None = None  # Sentinel: the monitored master's name
    unix_path: str | None = None
    username: str | None = field(default=None, repr=False)  # hidden too: some put a password where it belongs
    password: str | None = field(default=None, repr=False)


def _fail(reason: str) -> ValueError:
    return ValueError(f"invalid Redis URL: {reason}")


def parse_redis_url(url: str) -> RedisTarget:
    """The RedisTarget `url` names. Raises ValueError (one line, quoting no part of the URL) if it is not valid."""
    if not url or any(c.isspace() or not c.isprintable() for c in url):
        raise _fail("it is empty or contains whitespace or control characters")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in SCHEMES:
        raise _fail(f"must start with {', '.join(s + '://' for s in SCHEMES)}")
    kind, tls = SCHEMES[scheme.lower()]
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    hint = " (a '/', '?', '#' or '@' in the password must be percent-encoded)" if "@" in tail else ""
    if "#" in tail:
        raise _fail("a fragment ('#...') is not allowed" + hint)
    path, _, query = tail.partition("?")
    username = password = None
    if "@" in authority:
        userinfo, authority = authority.rsplit("@", 1)
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = (unquote(secret) or None) if colon else None
    if scheme.lower() == "unix":
        return _unix(authority, path, query, username, password, hint)
    if query:
        raise _fail("query parameters are not supported; credentials go before the host as user:password@" + hint)
    try:
        hosts = _hosts(authority, DEFAULT_PORT[kind])
    except ValueError as exc:
        raise _fail(f"{exc}{hint}") from None
    if kind == "standalone":
        if len(hosts) != 1:
            raise _fail("redis:// and rediss:// take one host; use redis+sentinel:// or redis+cluster:// for several")
        return RedisTarget(
            "standalone", hosts, tls, db=_db(path.removeprefix("/"), hint), username=username, password=password
        )
    if kind == "sentinel":
        service, db = _sentinel_path(path, hint)
        return RedisTarget("sentinel", hosts, tls, db=db, service_name=service, username=username, password=password)
    if path.strip("/") not in ("", "0"):
        raise _fail("Redis Cluster has only database 0 (give no /db, or /0)" + hint)
    return RedisTarget("cluster", hosts, tls, username=username, password=password)


def _unix(authority: str, path: str, query: str, username: str | None, password: str | None, hint: str) -> RedisTarget:
    if authority:
        raise _fail("unix:// takes no host: unix:///path/to/redis.sock or unix://user:password@/path" + hint)
    if not path.startswith("/") or path == "/":
        raise _fail("unix:// needs the socket's absolute path" + hint)
    db = 0
    for item in query.split("&") if query else ():
        name, eq, value = item.partition("=")
        if name != "db" or not eq:
            raise _fail("unix:// takes only the query parameter db=N" + hint)
        db = _db(value, hint)
    return RedisTarget("standalone", (), False, db=db, unix_path=unquote(path), username=username, password=password)


def _hosts(authority: str, default_port: int) -> tuple[tuple[str, int], ...]:
    items = authority.split(",")
    if len(items) > MAX_HOSTS:
        raise ValueError(f"at most {MAX_HOSTS} hosts")
    hosts = []
    for item in items:
        if item.startswith("["):  # [IPv6]:port
            address, bracket, port_part = item[1:].partition("]")
            if not bracket or not _IPV6.fullmatch(address) or (port_part and not port_part.startswith(":")):
                raise ValueError("an IPv6 host must be written [address] or [address]:port")
            host, port_text = address, port_part[1:] if port_part else None
        else:
            host, colon, port_text_or_empty = item.partition(":")
            port_text = port_text_or_empty if colon else None
            if not host:
                raise ValueError("a host is missing")
            if not _HOST.fullmatch(host):
                raise ValueError("a host name may hold only letters, digits, '.', '-' and '_'")
        hosts.append((host, default_port if port_text is None else _port(port_text)))
    return tuple(hosts)


def _port(text: str) -> int:
    if not _DIGITS.fullmatch(text) or not 1 <= int(text) <= 65535:
        raise ValueError("a port must be a number from 1 to 65535")
    return int(text)


def _db(text: str, hint: str) -> int:
    if text in ("", "/"):
        return 0
    if not _DIGITS.fullmatch(text.removesuffix("/")) or int(text.removesuffix("/")) > MAX_DB:
        raise _fail("the database must be a number (e.g. /0)" + hint)
    return int(text.removesuffix("/"))


def _sentinel_path(path: str, hint: str) -> tuple[str, int]:
    parts = path.removeprefix("/").removesuffix("/").split("/")
    service = unquote(parts[0])
    if not service or len(parts) > 2:
        raise _fail("redis+sentinel:// needs /service_name or /service_name/db after the sentinels" + hint)
    if not _SERVICE.fullmatch(service):
        raise _fail("a Sentinel service name may hold only letters, digits, '.', ':', '-' and '_'" + hint)
    return service, _db(parts[1] if len(parts) == 2 else "", hint)


def redacted(url: str) -> str:
    """`url` with its credentials (and any query parameter but db) replaced by ***, for logs. Never raises.

    Everything up to the last '@' counts as credentials, so a password with an unescaped '/' or '@' is hidden too;
    without an '@', a host list that does not parse (redis://user:secret) is hidden whole.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "***"  # not a URL; it may be anything, a bare password included
    at = rest.rfind("@")
    if at >= 0:
        rest = "***@" + rest[at + 1 :]  # the username too: some put the password there
    elif authority := rest[: min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))]:
        try:  # no '@': a host:port that is not one (redis://user:secret) may hold the password
            _hosts(authority, 1)
        except ValueError:
            return f"{scheme}://***"
    head, q, query = rest.partition("?")
    if q:
        query = "&".join(item if re.fullmatch(r"db=[0-9]{1,9}", item) else "***" for item in query.split("&"))
    return f"{scheme}://{head}{q}{query}"
