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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from proxy.errors import Unauthorized
from proxy.settings import DEFAULT_WORKSPACE, Team

MAX_CREDENTIAL_CHARS = 512
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

    def set_teams(self, teams: Iterable[Team]) -> None:
        """Replace the client teams (a reloaded tokens file): later requests resolve against these only."""
        self._teams = [(team.token.encode(), team.name, team.weight) for team in teams]

    def weights(self) -> dict[str, float]:
        """Each team label this authenticator can give, with its weight (for the teams' shares)."""
        weights = {name: weight for _, name, weight in self._teams}
        return {label: weights.get(label, 1.0) for label in self.team_labels()}

    def team_labels(self) -> list[str]:
        """Every team label this authenticator can give (for metrics initialised at zero)."""
        if self._managed is None:
            return [PASS_THROUGH]
        return [name for _, name, _ in self._teams] + ([ANONYMOUS] if self._anonymous or not self._teams else [])

    def resolve(self, authorization: str | None, legacy_key: str | None) -> Credential:
        """The credential for a request; raises Unauthorized."""
        token = bearer_token(authorization)
        if token is not None and not well_formed(token):
            raise Unauthorized()
        if self._managed is not None:
            scope, key, workspace = self._managed
            # Without client tokens configured there is nothing to check a bearer against: it is ignored.
            if not self._teams or (token is None and self._anonymous):
                return Credential(scope, key, workspace, ANONYMOUS, ANONYMOUS)
            if token is None:
                raise Unauthorized("Unauthorized: a client token is required ('Authorization: Bearer <token>')")
            found = self._team_of(token)
            if found is None:
                raise Unauthorized("Unauthorized: unknown client token")
            name, weight = found
            return Credential(scope, key, workspace, name, name, weight)
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
