"""A cached answer and its wire format. Pure: no I/O.

The body is kept as the exact bytes Braze sent, so a hit never parses or re-serialises JSON; a paged list's
`Link` header is kept with it (format E2).
"""

from __future__ import annotations

from dataclasses import dataclass

_MAGIC = b"E1|"
_LINKED = b"E2|"  # E1 with Braze's Link header before the body: `...|<link length>|content_type\n<link><body>`


@dataclass(frozen=True, slots=True)
class Entry:
    body: bytes
    status: int
    content_type: str
    stored_at: float  # epoch seconds
    fresh_until: float  # served as a hit before this
    stale_until: float  # kept, and servable as stale, before this
    link: str = ""  # Braze's Link header (the next page of a paged list), as Braze sent it

    def is_fresh(self, now: float) -> bool:
        return now < self.fresh_until

    def is_usable(self, now: float) -> bool:
        return now < self.stale_until

    def age(self, now: float) -> int:
        return max(0, int(now - self.stored_at))

    def ttl(self, now: float) -> int:
        """Whole seconds of freshness left (0 when stale)."""
        return max(0, int(self.fresh_until - now))

    @property
    def size(self) -> int:
        return len(self.body) + len(self.content_type) + len(self.link) + 64


def encode(entry: Entry) -> bytes:
    """`E1|status|stored_at|fresh_until|stale_until|content_type\\n` + body; with a Link header, `E2|` and the
    link's length before the content type, the link before the body."""
    times = f"{entry.status}|{entry.stored_at:.3f}|{entry.fresh_until:.3f}|{entry.stale_until:.3f}"
    if entry.link:
        link = entry.link.encode()
        return _LINKED + f"{times}|{len(link)}|{entry.content_type}\n".encode() + link + entry.body
    return _MAGIC + f"{times}|{entry.content_type}\n".encode() + entry.body


def decode(data: bytes | str) -> Entry | None:
    """The entry, or None for bytes not written by encode() (treated as a miss, never as an answer)."""
    if isinstance(data, str):  # only if a client was built with decode_responses (ours never is)
        data = data.encode()
    linked = data.startswith(_LINKED)
    if not (linked or data.startswith(_MAGIC)):
        return None
    newline = data.find(b"\n")
    if newline < 0:
        return None
    try:
        if not linked:
            status, stored, fresh, stale, ctype = data[len(_MAGIC) : newline].decode().split("|", 4)
            return Entry(data[newline + 1 :], int(status), ctype, float(stored), float(fresh), float(stale))
        status, stored, fresh, stale, size, ctype = data[len(_LINKED) : newline].decode().split("|", 5)
        end = newline + 1 + int(size)
        if int(size) < 0 or end > len(data):
            return None
        link = data[newline + 1 : end].decode()
        return Entry(data[end:], int(status), ctype, float(stored), float(fresh), float(stale), link)
    except (ValueError, UnicodeDecodeError):
        return None
