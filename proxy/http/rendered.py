"""Answers made as bytes: status line, headers and body, written with one write.

aiohttp builds every answer as a header multidict, fills in Content-Length, Date and Server, checks each name
and value, and serializes them: on a cache hit that is most of what the proxy spends after the lookup. A hit
answers the same bytes every time but for a few values that change at most once a second (Date, Age, the TTL
in Cache-Status, the team's X-RateLimit-*) and the request id. So a remembered request's head is rendered once
a second and kept (memo.Resolved), and its hit only appends the request id and the body; every other answer
with a body (a hit read from Redis, a miss) is rendered once, which still costs less than aiohttp's way.

Only for a GET on a keep-alive HTTP/1.1 connection with a status that carries a body: nothing here adds
Connection headers or drops a body. Everything else (errors included) is answered by aiohttp's Response.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from email.utils import formatdate
from http import HTTPStatus
from itertools import chain

from aiohttp import HttpVersion11, web
from aiohttp.abc import AbstractStreamWriter
from multidict import CIMultiDict

_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # what a header value must not hold (as aiohttp refuses)
REQUEST_ID_FIELD = "X-Request-ID: "
END = b"\r\n\r\n"

_STATUS_LINES: dict[int, str] = {}  # at most the statuses HTTPStatus knows (about 60)
_date_second = -1
_date = ""


def http_date(second: int) -> str:
    """The Date header's value at `second` (Unix time): 'Mon, 07 Dec 2026 11:03:52 GMT', made once a second."""
    global _date_second, _date
    if second != _date_second:
        _date_second, _date = second, formatdate(second, usegmt=True)
    return _date


def rendered_for(request: web.BaseRequest) -> bool:
    """Whether `request` may be answered rendered: a GET (HEAD comes to the same handlers through the router, and
    aiohttp drops its body) on a keep-alive HTTP/1.1 connection."""
    return request.method == "GET" and request.version == HttpVersion11 and request.keep_alive


def renderable(status: int) -> bool:
    """Whether an answer with `status` may be rendered: one with a body (not 1xx, 204 or 304)."""
    return status >= 200 and status not in (204, 304)


def render_head(status: int, headers: Iterable[tuple[str, str]], body_length: int, second: int) -> bytes:
    """The status line and headers of an answer, up to the value of its X-Request-ID (which goes last), or
    ValueError if a name or value holds a control character or is not Latin-1, or the status is not a known
    one (a stored content type, say: then aiohttp answers)."""
    pairs = list(headers)
    if _FORBIDDEN.search("".join(chain.from_iterable(pairs))):  # one search over every name and value
        raise ValueError("a control character in a header")
    status_line = _STATUS_LINES.get(status) or _status_line(status)
    lines = [status_line, *map(": ".join, pairs), f"Content-Length: {body_length}", f"Date: {http_date(second)}"]
    lines.append(REQUEST_ID_FIELD)
    return "\r\n".join(lines).encode("latin-1")  # UnicodeEncodeError is a ValueError too: aiohttp answers


def head_for(status: int, headers: Iterable[tuple[str, str]], body_length: int, second: int) -> bytes | None:
    """render_head's head, or None where an answer cannot be rendered (no body, or a value it refuses)."""
    if not renderable(status):
        return None
    try:
        return render_head(status, headers, body_length, second)
    except ValueError:  # a control character in a stored value, say: aiohttp refuses it as it always did
        return None


def _status_line(status: int) -> str:
    """'HTTP/1.1 200 OK', remembered (ValueError for a status HTTP does not know)."""
    line = _STATUS_LINES[status] = f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"  # an enum lookup: ~1 µs
    return line


class RenderedResponse(web.StreamResponse):
    """An answer whose bytes are all made: aiohttp's connection calls prepare() then write_eof(), which writes
    them in one go. Keeps the connection open (rendered for keep-alive requests only). Sends no
    `on_response_prepare` signal: the proxy's apps connect none (a rendered answer has no headers to change)."""

    def __init__(self, status: int, head: bytes, rid: str, body: bytes) -> None:
        """`head` from render_head (it ends where the request id goes)."""
        super().__init__(status=status)
        self._wire = b"".join((head, rid.encode(), END, body))
        self._keep_alive = True
        self._parsed = False

    @property
    def headers(self) -> CIMultiDict[str]:
        """The headers in the bytes, parsed when asked (a test, a debugger): nobody on the hit path asks."""
        if not self._parsed:
            head = self._wire[: self._wire.index(END)].decode("latin-1").split("\r\n")[1:]
            self._headers.extend(line.split(": ", 1) for line in head)  # type: ignore[misc]
            self._parsed = True
        return self._headers

    @property
    def body(self) -> bytes:
        return self._wire[self._wire.index(END) + len(END) :]

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self._eof_sent:
            return None
        if self._payload_writer is None:
            self._req, self._payload_writer = request, request.writer
        return self._payload_writer

    async def write_eof(self, data: bytes = b"") -> None:
        if self._eof_sent:
            return
        writer = self._payload_writer
        if writer is None:
            raise RuntimeError("write_eof() before prepare()")
        await writer.write_eof(self._wire)  # nothing was written before: the writer sends these bytes as they are
        self._eof_sent, self._req, self._payload_writer = True, None, None
