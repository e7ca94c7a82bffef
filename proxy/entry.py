"""A cached answer and its wire format. Pure: no I/O.

The body is kept as the exact bytes Braze sent, so a hit never parses or re-serialises JSON.
"""

from __future__ import annotations

from dataclasses import dataclass

_MAGIC = b"E1|"


@dataclass(frozen=True, slots=True)
class Entry:
    body: bytes
    status: int
    content_type: str
    stored_at: float  # epoch seconds
    fresh_until: float  # served as a hit before this
    stale_until: float  # kept, and servable as stale, before this

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
        return len(self.body) + len(self.content_type) + 64


def encode(entry: Entry) -> bytes:
    """`E1|status|stored_at|fresh_until|stale_until|content_type\\n` + body."""
    header = (
        f"{entry.status}|{entry.stored_at:.3f}|{entry.fresh_until:.3f}|{entry.stale_until:.3f}|{entry.content_type}\n"
    ).encode()
    return _MAGIC + header + entry.body


def decode(data: bytes | str) -> Entry | None:
    """The entry, or None for bytes not written by encode() (treated as a miss, never as an answer)."""
    if isinstance(data, str):  # only if a client was built with decode_responses (ours never is)
        data = data.encode()
    if not data.startswith(_MAGIC):
        return None
    newline = data.find(b"\n")
    if newline < 0:
        return None
    try:
        status, stored, fresh, stale, ctype = data[len(_MAGIC) : newline].decode().split("|", 4)
        return Entry(data[newline + 1 :], int(status), ctype, float(stored), float(fresh), float(stale))
    except ValueError:
        return None
