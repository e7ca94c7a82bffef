"""Pure: how one budget is divided between the teams that spend it. Mirrored in lua/token_bucket.lua.

Work-conserving weighted fair share:
- Each team's recent usage is a count of its granted calls that decays with a half-life; the budget keeps
  the same decayed total. A team is *over its share* when its part of the total exceeds its weight's part
  of the weights of the teams active now (those that asked within `active_for` seconds).
- While the bucket holds more than `headroom` tokens, anyone may take one: an idle team's share is used by
  the others. Below it, a team over its share is refused (reason "share"); the tokens left are for the
  teams under theirs, who may also reserve ahead (wait) up to twice max_wait: behind the reservations other
  teams made before it arrived.
So under contention each active team gets at least its weight's fraction of the rate, and a team alone gets
all of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

HALF_LIFE = 5.0  # seconds: usage older than a few half-lives hardly counts
ACTIVE_FOR = 15.0  # seconds since a team's last request during which it counts as active
MAX_TEAMS = 10_000  # teams tracked per budget (pass-through keys are teams too): the oldest go first
EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class ShareParams:
    headroom: float  # tokens below which a team over its share is refused
    half_life: float = HALF_LIFE
    active_for: float = ACTIVE_FOR

    @classmethod
    def for_capacity(cls, capacity: float) -> ShareParams:
        """Half the burst is kept for the teams under their share whenever anyone is over theirs (and a team over
        its share may still take the last token of a bucket of one)."""
        return cls(headroom=max(0.0, min(capacity / 2, capacity - 1)))


@dataclass(frozen=True, slots=True)
class TeamView:
    """A team's standing inside its budget at `now` (usage and total already decayed to now)."""

    usage: float
    total: float
    weight: float
    active_weight: float  # the weights of the active teams, this one included


def decayed(value: float, since: float, now: float, half_life: float) -> float:
    """`value` counted at `since`, as it counts at `now`."""
    if value <= 0.0 or now <= since:
        return value
    return value * math.pow(2.0, -(now - since) / half_life)


def over_share(team: TeamView) -> bool:
    """Whether one more call would give the team more than its weight's part of what the budget granted lately.
    (Counting the call asked for: with no history yet, a team sharing the budget is not under its share.)"""
    if team.active_weight <= EPSILON:
        return False
    return (team.usage + 1) / (team.total + 1) > team.weight / team.active_weight + EPSILON


def share_wait(rate: float, team: TeamView) -> float:
    """A refused team's Retry-After: the time between two calls at its fair rate."""
    fair_rate = rate * team.weight / max(team.weight, team.active_weight)
    return 1.0 / fair_rate if fair_rate > 0 else math.inf
