"""Who pays for work nobody is waiting for (warming, refreshing ahead): a team of its own with a tiny weight.

Fair sharing (fairshare.py) refuses a team over its share once the bucket is down to its headroom, and a team
of this weight is over its share as soon as any client team spends: so background calls only ever take tokens
above the headroom (budget the clients are not using) and never push a client into a 429. A refusal is a skip.
"""

from __future__ import annotations

from dataclasses import replace

from proxy.credentials import Credential

BACKGROUND = "~background"  # not a team name (names never hold '~'), nor a pass-through scope
BACKGROUND_WEIGHT = 0.001


def background(credential: Credential) -> Credential:
    """`credential` (same upstream key, same scope: same cache keys) paying as the background team."""
    return replace(credential, team=BACKGROUND, team_label=BACKGROUND, weight=BACKGROUND_WEIGHT)
