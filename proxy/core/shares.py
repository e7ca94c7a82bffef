"""Pure: a team's share of a budget for the hour, what it spent and what is left, as Braze's rate-limit headers.

A team's share of a budget (workspace, endpoint group) is the budget's hourly rate times its weight over the
weights of every team that can spend it: what fair sharing guarantees it when every team asks at once (an idle
team's part is used by the others, so a team may spend past its share while the budget has room). Hours are
clock hours, as Braze's own window: `X-RateLimit-Reset` is the next one's start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

HOUR = 3600


@dataclass(frozen=True, slots=True)
class Standing:
    """A team's (or a whole budget's) hour: its share per hour, what it spent, what remains, when it resets."""

    limit: float  # calls per hour
    spent: int
    remaining: int
    reset: int  # epoch seconds: the start of the next hour

    def headers(self) -> dict[str, str]:
        """Braze's names and meanings: per hour, remaining, reset in epoch seconds."""
        return {
            "X-RateLimit-Limit": str(int(self.limit)),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }

    def as_dict(self) -> dict[str, float | int]:
        return {
            "per_hour": round(self.limit, 3),
            "per_second": round(self.limit / HOUR, 6),
            "spent_this_hour": self.spent,
            "remaining": self.remaining,
            "reset": self.reset,
        }


def hour_of(now: float) -> int:
    """The clock hour holding `now` (its start in epoch seconds divided by 3600)."""
    return int(now // HOUR)


def reset_of(now: float) -> int:
    return (hour_of(now) + 1) * HOUR


def share(per_hour: float, weight: float, weights: Mapping[str, float]) -> float:
    """A team of `weight`'s part of `per_hour` among `weights` (every team that can spend the budget)."""
    total = sum(weights.values())
    return per_hour * weight / total if total > 0 else per_hour


def standing(team_share: float, team_spent: int, per_hour: float, budget_spent: int, now: float) -> Standing:
    """A team's standing: what is left of its share, never more than what is left of the whole budget."""
    left = min(team_share - team_spent, per_hour - budget_spent)
    return Standing(team_share, team_spent, max(0, int(left)), reset_of(now))
