"""What a raw request resolved to (cache key, question, credential), remembered while it cannot change.

Parsing a query and hashing a credential cost more than serving a hit from the L1, and clients repeat the
same request strings. The memo maps (raw query string, Authorization header) to their resolution until
`valid_until`: forever for an explicit `ending_at`, the end of the current bucket for an omitted one (the
key moves to the next bucket then). Only valid requests are remembered; a
refused one is parsed (and refused) every time. Bounded by entries and by bytes (a query and a header may each
be several KB): emptied when full, so a flood of distinct queries costs re-parsing, never memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from proxy.core.cache_status import CacheStatus
from proxy.core.credentials import Credential
from proxy.core.entry import Entry
from proxy.core.query import Question
from proxy.http.access_log import Outcome
from proxy.http.rendered import head_for
from proxy.http.responses import series_headers
from proxy.obs.metrics import BatchedCounter

MAX_ENTRIES = 10_000
MAX_BYTES = 8 * 1_048_576  # counted as the lengths of the query, the header and the key, plus an overhead each
ENTRY_OVERHEAD = 400


@dataclass(slots=True)
class Resolved:
    key: str  # question.cache_key(credential.scope)
    question: Question
    credential: Credential
    valid_until: float  # epoch seconds
    instant: datetime | None = None  # the client's own ending_at (None: "now"), for answers made exactly
    # The head of the last hit answered for this request (rendered.py): (entry, ttl, age, rates, second, head),
    # reused while all five are the same (a team's rates dict is replaced, never changed, when they change).
    rendered: tuple[Entry, int, int, dict[str, str], int, bytes] | None = field(default=None, compare=False)
    # The team's batched (requests, hits) counters, bound once by the web shell.
    team: tuple[BatchedCounter, BatchedCounter] | None = field(default=None, compare=False)
    # The access log's outcome of the last hit: (team, endpoint, status, "hit", None), made once.
    outcome: Outcome | None = field(default=None, compare=False)

    def head(self, entry: Entry, now: float, rates: dict[str, str], second: int) -> bytes | None:
        """The status line and headers of a hit on `entry` at `now` (Date at `second`) up to its request id's
        value, the last ones again while nothing in them changed; None if it cannot be rendered (see
        rendered.py): then `headers()` go to responses.respond."""
        ttl, age = int(entry.fresh_until - now), int(now - entry.stored_at)
        r = self.rendered
        if r is not None and r[0] is entry and r[1] == ttl and r[2] == age and r[3] is rates and r[4] == second:
            return r[5]
        head = head_for(entry.status, [*_hit_headers(entry, ttl, age).items(), *rates.items()], len(entry.body), second)
        if head is None:
            return None
        self.rendered = (entry, ttl, age, rates, second, head)
        return head

    def headers(self, entry: Entry, now: float) -> dict[str, str]:
        """The headers of a hit on `entry` at `now` (for the rare hit whose head is not kept)."""
        return _hit_headers(entry, int(entry.fresh_until - now), int(now - entry.stored_at))

    def hit_outcome(self, status: int) -> Outcome:
        """What the access log says of a hit answered with `status`: the same tuple again, hashed fast."""
        outcome = self.outcome
        if outcome is None or outcome[2] != status:
            outcome = self.outcome = (self.credential.team_label, self.question.endpoint.name, status, "hit", None)
        return outcome


class QuestionMemo:
    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self._items: dict[tuple[str, str | None], Resolved] = {}
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, raw_query: str, authorization: str | None, now: float) -> Resolved | None:
        """The resolution of this request if it is still valid at `now`, else None."""
        resolved = self._items.get((raw_query, authorization))
        if resolved is None or now >= resolved.valid_until:
            return None
        return resolved

    def put(self, raw_query: str, authorization: str | None, resolved: Resolved, now: float) -> None:
        if now >= resolved.valid_until:
            return  # valid for no later request: remembering it would only evict others
        size = len(raw_query) + len(authorization or "") + len(resolved.key) + ENTRY_OVERHEAD
        if len(self._items) >= self._max_entries or self._bytes + size > self._max_bytes:
            self._items.clear()
            self._bytes = 0
        if (raw_query, authorization) not in self._items:
            self._bytes += size
        self._items[(raw_query, authorization)] = resolved


def _hit_headers(entry: Entry, ttl: int, age: int) -> dict[str, str]:
    return series_headers(entry.content_type, CacheStatus("hit", ttl=ttl).render(), max(0, age))
