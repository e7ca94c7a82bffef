"""Who is asking, and with which upstream credential. Pure: no I/O.

Managed-key mode: the proxy calls Braze with its own key; clients present a team token (if configured).
Pass-through mode: the client's own key goes upstream, and its SHA-256 scopes cache keys and budgets,
so one key's data is never served to another key. Credentials never leave this module except as the
upstream Authorization header.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from proxy.errors import Unauthorized

MAX_CREDENTIAL_CHARS = 512


@dataclass(frozen=True, slots=True)
class Credential:
    scope: str  # cache-key and budget scope: a hash, never the key
    upstream_key: str
    team: str  # for logs: a configured team name, never a secret

    def __repr__(self) -> str:  # keep the key out of any accidental log or traceback
        return f"Credential(scope={self.scope!r}, team={self.team!r})"


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
    def __init__(self, api_key: str | None, client_tokens: dict[str, str]) -> None:
        self._managed = None if api_key is None else Credential(scope_of("m", api_key), api_key, "managed")
        self._tokens = [(token.encode(), name) for token, name in client_tokens.items()]

    @property
    def managed(self) -> bool:
        return self._managed is not None

    def resolve(self, authorization: str | None, legacy_key: str | None) -> Credential:
        """The credential for a request; raises Unauthorized."""
        token = bearer_token(authorization)
        if token is not None and not well_formed(token):
            raise Unauthorized()
        if self._managed is not None:
            if not self._tokens:
                return self._managed
            if token is None:
                raise Unauthorized("Unauthorized: a client token is required ('Authorization: Bearer <token>')")
            team = self._team_of(token)
            if team is None:
                raise Unauthorized("Unauthorized: unknown client token")
            return Credential(self._managed.scope, self._managed.upstream_key, team)
        key = token or legacy_key
        if not key or not well_formed(key):
            raise Unauthorized()
        return Credential(scope_of("p", key), key, "pass-through")

    def _team_of(self, token: str) -> str | None:
        # Compare against every token, in constant time each, so timing reveals neither which nor how much.
        given = token.encode()
        found = None
        for candidate, name in self._tokens:
            if hmac.compare_digest(given, candidate):
                found = name
        return found
