"""What a raw request resolved to (cache key, question, credential), remembered while it cannot change.

Parsing a query and hashing a credential cost more than serving a hit from the L1, and clients repeat the
same request strings. The memo maps (raw query string, Authorization header) to their resolution until
`valid_until`: forever for an explicit `ending_at`, the end of the current bucket for an omitted one (the
key moves to the next bucket then), never for an unfloored "now". Only valid requests are remembered; a
refused one is parsed (and refused) every time. Bounded: emptied when full, so a flood of distinct queries
costs re-parsing, never memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy.credentials import Credential
from proxy.query import Question

MAX_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class Resolved:
    key: str  # question.cache_key(credential.scope)
    question: Question
    credential: Credential
    valid_until: float  # epoch seconds


class QuestionMemo:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._items: dict[tuple[str, str | None], Resolved] = {}
        self._max_entries = max_entries

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
        if len(self._items) >= self._max_entries:
            self._items.clear()
        self._items[(raw_query, authorization)] = resolved
