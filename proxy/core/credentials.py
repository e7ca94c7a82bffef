"""Who is asking, with which upstream credential, for which workspace and team. Pure: no I/O.

Managed-key mode: the proxy calls Braze with its own key; clients present a team token (or, where allowed,
nothing: the team "anonymous"). Pass-through mode: the client's own key goes upstream, its SHA-256 scopes
cache keys (one key's data is never served to another key), and each key is a team of weight 1.
Every key spends its workspace's budget: the one its SHA-256 is mapped to, else "default".
Credentials never leave this module except as the upstream Authorization header.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from proxy.core.errors import Unauthorized

MAX_CREDENTIAL_CHARS = 512
NAME = re.compile(r"[A-Za-z0-9_.-]{1,40}")  # team, workspace and group names: metric label values
DEFAULT_WORKSPACE = "default"
MIN_TOKEN_CHARS = 16  # a client token guards a share of the budget: long enough not to be guessed
# A weight is a plain decimal (no exponent, sign, '_', inf or nan): a share written as people write shares.
WEIGHT = re.compile(r"[0-9]{1,4}(\.[0-9]{1,3})?")
MIN_WEIGHT, MAX_WEIGHT = 0.001, 1000.0
TOKENS_FORMAT = (
    "comma-separated name:token[:weight] entries (a name of letters, digits, '_', '-', '.' up to 40; a token of"
    f" {MIN_TOKEN_CHARS} to {MAX_CREDENTIAL_CHARS} printable characters without ':', ',' or spaces; a weight from"
    f" {MIN_WEIGHT:g} to {MAX_WEIGHT:g} as a plain decimal, 1 if omitted)"
)


@dataclass(frozen=True, slots=True)
class Team:
    name: str
    token: str
    weight: float

    def __repr__(self) -> str:  # keep the token out of any accidental log or traceback
        return f"Team(name={self.name!r}, weight={self.weight!r})"


def parse_client_tokens(text: str, api_key: str | None = None) -> list[Team]:
    """The client teams of a `name:token[:weight],...` list (BRAZE_PROXY_CLIENT_TOKENS, or a tokens file).

    Forgiving where it is harmless (spaces around entries and parts, empty entries such as a trailing comma);
    strict where it matters: a name, a token of at least MIN_TOKEN_CHARS that is not `api_key`, a weight from
    MIN_WEIGHT to MAX_WEIGHT, no name or token twice. Raises ValueError with a message that names the entry by
    its team (or its position, when the name itself is wrong) and never quotes a token.
    """
    teams: list[Team] = []
    entries = [entry.strip() for entry in text.split(",")]
    for position, entry in enumerate(entries, start=1):
        if entry:
            teams.append(_team(entry, position, api_key))
    if not teams:
        raise ValueError(f"holds no entry: it must be {TOKENS_FORMAT}")
    names: dict[str, Team] = {}
    tokens: dict[str, Team] = {}
    for team in teams:
        if team.name in names:
            raise ValueError(f"team {team.name!r} appears twice (one entry per team)")
        if team.token in tokens:
            raise ValueError(f"teams {tokens[team.token].name!r} and {team.name!r} share one token")
        names[team.name], tokens[team.token] = team, team
    return teams


def _team(entry: str, position: int, api_key: str | None) -> Team:
    parts = [part.strip() for part in entry.split(":")]
    if len(parts) == 1:  # perhaps a token alone: never quoted
        raise ValueError(f"entry {position} has no ':': it must be {TOKENS_FORMAT}")
    if not NAME.fullmatch(parts[0]):
        raise ValueError(f"entry {position} does not start with a team name: it must be {TOKENS_FORMAT}")
    where = f"team {parts[0]!r}"
    if len(parts) not in (2, 3):
        raise ValueError(f"{where}: an entry is name:token or name:token:weight")
    token = parts[1]
    if not (MIN_TOKEN_CHARS <= len(token) <= MAX_CREDENTIAL_CHARS and well_formed(token)) or " " in token:
        raise ValueError(
            f"{where}: its token must be {MIN_TOKEN_CHARS} to {MAX_CREDENTIAL_CHARS} printable characters without"
            " spaces (e.g. the output of `openssl rand -hex 16`)"
        )
    if api_key is not None and hmac.compare_digest(token.encode(), api_key.encode()):
        raise ValueError(f"{where}: its token is the Braze API key itself; give each team a token of its own")
    weight = 1.0
    if len(parts) == 3:
        if not WEIGHT.fullmatch(parts[2]) or not MIN_WEIGHT <= float(parts[2]) <= MAX_WEIGHT:
            raise ValueError(
                f"{where}: its weight must be a plain decimal from {MIN_WEIGHT:g} to {MAX_WEIGHT:g} (such as 1, 2.5)"
            )
        weight = float(parts[2])
    return Team(parts[0], token, weight)


ANONYMOUS = "anonymous"
PASS_THROUGH = "pass-through"  # the one team label of every pass-through key: never a label per key


@dataclass(frozen=True, slots=True)
class Credential:
    scope: str  # cache-key scope: a hash, never the key
    upstream_key: str
    workspace: str  # whose budget it spends
    team: str  # its team inside the budget: a configured name, or the scope of a pass-through key
    team_label: str  # for logs and metrics: a configured team name, "anonymous" or "pass-through"
    weight: float = 1.0
    managed: bool = False  # the upstream key is the proxy's own: Braze refusing it is the operators' problem

    def __repr__(self) -> str:  # keep the key out of any accidental log or traceback
        return f"Credential(scope={self.scope!r}, team={self.team_label!r}, workspace={self.workspace!r})"


def scope_of(kind: str, key: str) -> str:
    return kind + hashlib.sha256(key.encode()).hexdigest()[:32]


def well_formed(credential: str) -> bool:
    """Printable ASCII and not too long: what an API key or a client token can be. (aiohttp decodes header
    bytes that are not UTF-8 to surrogates, which could be neither hashed nor sent upstream.)"""
    return len(credential) <= MAX_CREDENTIAL_CHARS and credential.isascii() and credential.isprintable()


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


class Authenticator:
    def __init__(
        self,
        api_key: str | None,
        teams: Iterable[Team] = (),
        workspaces: Mapping[str, str] | None = None,
        allow_anonymous: bool = False,
    ) -> None:
        self._workspaces = dict(workspaces or {})  # full SHA-256 hex of a key -> workspace name
        self._managed: tuple[str, str, str] | None = None  # scope, key, workspace
        if api_key is not None:
            self._managed = (scope_of("m", api_key), api_key, self._workspace_of(api_key))
        self._teams = [(team.token.encode(), team.name, team.weight) for team in teams]
        self._anonymous = allow_anonymous

    @property
    def managed(self) -> bool:
        return self._managed is not None

    def managed_workspace(self) -> str | None:
        """The workspace the proxy's own key spends (None in pass-through mode)."""
        return None if self._managed is None else self._managed[2]

    def set_teams(self, teams: Iterable[Team]) -> None:
        """Replace the client teams (a reloaded tokens file): later requests resolve against these only."""
        self._teams = [(team.token.encode(), team.name, team.weight) for team in teams]

    def weights(self) -> dict[str, float]:
        """Each team label this authenticator can give, with its weight (for the teams' shares)."""
        weights = {name: weight for _, name, weight in self._teams}
        return {label: weights.get(label, 1.0) for label in self.team_labels()}

    def team_labels(self) -> list[str]:
        """Every team label this authenticator can give (for metrics initialised at zero)."""
        return [label for label, _ in self.team_weights()]

    def team_weights(self) -> list[tuple[str, float]]:
        """Every team label this authenticator can give, with its weight (pass-through keys and anonymous: 1)."""
        if self._managed is None:
            return [(PASS_THROUGH, 1.0)]
        anonymous = [(ANONYMOUS, 1.0)] if self._anonymous or not self._teams else []
        return [(name, weight) for _, name, weight in self._teams] + anonymous

    def resolve(self, authorization: str | None, legacy_key: str | None) -> Credential:
        """The credential for a request; raises Unauthorized."""
        token = bearer_token(authorization)
        if token is not None and not well_formed(token):
            raise Unauthorized()
        if self._managed is not None:
            scope, key, workspace = self._managed
            # Without client tokens configured there is nothing to check a bearer against: it is ignored.
            if not self._teams or (token is None and self._anonymous):
                return Credential(scope, key, workspace, ANONYMOUS, ANONYMOUS, managed=True)
            if token is None:
                raise Unauthorized("Unauthorized: a client token is required ('Authorization: Bearer <token>')")
            found = self._team_of(token)
            if found is None:
                raise Unauthorized("Unauthorized: unknown client token")
            name, weight = found
            return Credential(scope, key, workspace, name, name, weight, managed=True)
        given = token or legacy_key
        if not given or not well_formed(given):
            raise Unauthorized()
        scope = scope_of("p", given)
        return Credential(scope, given, self._workspace_of(given), scope, PASS_THROUGH)

    def _workspace_of(self, key: str) -> str:
        if not self._workspaces:
            return DEFAULT_WORKSPACE
        return self._workspaces.get(hashlib.sha256(key.encode()).hexdigest(), DEFAULT_WORKSPACE)

    def _team_of(self, token: str) -> tuple[str, float] | None:
        # Compare against every token, in constant time each, so timing reveals neither which nor how much.
        given = token.encode()
        found = None
        for candidate, name, weight in self._teams:
            if hmac.compare_digest(given, candidate):
                found = (name, weight)
        return found
