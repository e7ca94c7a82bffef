"""The spellings workload: many spellings of a few distinct questions, sent at once; the stand-in counts calls.

Every spelling of one question must map to one cache key, so the upstream calls must equal the number of
distinct questions. Spellings vary parameter order, `unit=day` written or omitted (and its case), the
instant inside the day bucket and its UTC-offset notation (`Z`, `+05:00`, `-5:00`, `+0530`, `%2B`), a bare
date, fractions, percent-encoding and empty optional filters.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from bench.client import get_all
from tests.support.procs import StandinProcess

PATH = "/sessions/data_series"

# Instants inside the UTC day `d`, in many notations ({d} is the date).
_INSTANTS = (
    "{d}",
    "{d}T00:00:00Z",
    "{d}T12:34:56Z",
    "{d}t04:00:00z",
    "{d}T23:59:59.999Z",
    "{d}T01:02:03,5Z",
    "{d}T07:00:00%2B05:00",
    "{d}T07:00:00+05:00",  # '+' unencoded: decoded as a space, which the proxy reads as '+'
    "{d}T10:00:00-5:00",
    "{d}T08:30:00%2B0530",
    "{d}T18:00:00-0400",
    "{d}T05:00:00%2B00:00",
    "{d}T06%3A00%3A00Z",
    "{d}T13:00Z",
)
_UNITS = (None, "day", "Day", "DAY")


@dataclass(frozen=True)
class SpellingsResult:
    questions: int
    requests: int
    upstream_calls: int
    outcomes: dict[str, int]

    @property
    def ok(self) -> bool:
        return self.upstream_calls == self.questions


def spellings(questions: int, per_question: int, seed: int = 5) -> list[str]:
    """`per_question` distinct query strings for each of `questions` distinct questions, shuffled."""
    rng = random.Random(seed)
    out: list[str] = []
    for i in range(questions):
        day = (date(2024, 1, 1) + timedelta(days=i)).isoformat()
        length, app = str(1 + i % 30), f"spell-{i}"
        seen: set[str] = set()
        for _ in range(per_question * 50):  # bounded: gives up on duplicates long before this
            if len(seen) >= per_question:
                break
            params = [("length", length), ("ending_at", rng.choice(_INSTANTS).format(d=day))]
            params.append(("app_id", app if rng.random() < 0.7 else app.replace("-", "%2D")))
            unit = rng.choice(_UNITS)
            if unit is not None:
                params.append(("unit", unit))
            if rng.random() < 0.2:
                params.append(("segment_id", ""))
            rng.shuffle(params)
            seen.add("&".join(f"{name}={value}" for name, value in params))
        out.extend(sorted(seen))
    rng.shuffle(out)
    return out


def run_spellings(proxy_url: str, standin: StandinProcess, questions: int, per_question: int) -> SpellingsResult:
    """Send the spellings to a proxy with a cold cache; count the stand-in's calls."""
    queries = spellings(questions, per_question)
    # Questions of another series first, over the same dates: the proxy checks those dates against Braze's labels
    # (docs/windows.md: a few calls per credential, unit and span, once an hour), not a cost of the spellings.
    warm = [f"length=100&ending_at={day}&app_id=spellings-warm-up" for day in ("2024-01-01", "2024-01-31")]
    get_all(proxy_url + PATH, warm)
    standin.reset()
    outcomes = get_all(proxy_url + PATH, queries)
    calls = int(standin.stats()["calls"])
    return SpellingsResult(questions, len(queries), calls, dict(sorted(outcomes.items())))
