"""Who is asking: teams and weights, workspaces by key hash, anonymous callers, pass-through keys. Pure."""

from __future__ import annotations

import hashlib
import re

import pytest

from proxy.budget.payers import Accounts
from proxy.core.credentials import ANONYMOUS, PASS_THROUGH, Authenticator, parse_client_tokens, scope_of
from proxy.core.endpoints import SESSIONS
from proxy.core.errors import Unauthorized
from proxy.settings.model import Settings, Team


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def test_managed_teams_carry_their_name_and_weight() -> None:
    auth = Authenticator("managed-key", [Team("alpha", "tok-a", 3.0), Team("beta", "tok-b", 1.0)])
    alpha = auth.resolve("Bearer tok-a", None)
    assert (alpha.team, alpha.team_label, alpha.weight, alpha.upstream_key) == ("alpha", "alpha", 3.0, "managed-key")
    assert alpha.scope == auth.resolve("Bearer tok-b", None).scope == scope_of("m", "managed-key")
    with pytest.raises(Unauthorized):
        auth.resolve("Bearer tok-c", None)
    with pytest.raises(Unauthorized):
        auth.resolve(None, None)
    assert auth.team_labels() == ["alpha", "beta"]


def test_anonymous_callers_are_one_team_where_allowed() -> None:
    auth = Authenticator("managed-key", [], allow_anonymous=True)
    caller = auth.resolve(None, None)
    assert (caller.team, caller.team_label) == (ANONYMOUS, ANONYMOUS)
    assert auth.team_labels() == [ANONYMOUS]


def test_pass_through_keys_are_teams_of_their_own_under_one_label() -> None:
    auth = Authenticator(None)
    a, b = auth.resolve("Bearer key-a", None), auth.resolve(None, "key-b")
    assert a.team != b.team and a.team == a.scope and "key-a" not in a.team
    assert a.team_label == b.team_label == PASS_THROUGH
    assert a.workspace == b.workspace == "default"
    assert "key-a" not in repr(a)


def test_keys_spend_the_workspace_their_hash_is_mapped_to() -> None:
    auth = Authenticator(None, workspaces={sha("eu-key"): "eu"})
    assert auth.resolve("Bearer eu-key", None).workspace == "eu"
    assert auth.resolve("Bearer other", None).workspace == "default"
    managed = Authenticator("eu-key", [Team("t", "tok", 1.0)], workspaces={sha("eu-key"): "eu"})
    assert managed.resolve("Bearer tok", None).workspace == "eu"


def test_payers_name_their_budget_by_workspace_and_group() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        rate_limit_per_hour=1000,
        workspaces={"eu": {"key_sha256": [sha("eu-key")], "rate_limit_per_hour": 500}},
    )
    accounts = Accounts.from_settings(settings)
    auth = Authenticator(None, workspaces={sha("eu-key"): "eu"})
    eu = accounts.payer(auth.resolve("Bearer eu-key", None), SESSIONS)
    default = accounts.payer(auth.resolve("Bearer us-key", None), SESSIONS)
    assert (eu.budget, eu.limit.per_hour) == ("eu:default", 500)
    assert (default.budget, default.limit.per_hour) == ("default:default", 1000)
    assert eu.team != default.team and eu.team_label == PASS_THROUGH


def test_token_lists_parse_forgivingly_where_harmless() -> None:
    teams = parse_client_tokens(" alpha : tok-alpha-0123456789 : 2.5 ,beta:tok-beta-0123456789,, ", "api-key")
    assert [(t.name, t.token, t.weight) for t in teams] == [
        ("alpha", "tok-alpha-0123456789", 2.5),
        ("beta", "tok-beta-0123456789", 1.0),
    ]
    assert "tok-alpha" not in repr(teams)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a:0123456789abcde", "team 'a': its token must be 16 to 512"),  # 15 characters
        ("a:0123456789abcdef:1e3", "team 'a': its weight"),
        ("a:0123456789abcdef:0.0005", "team 'a': its weight"),
        ("a:the-api-key-0123456789", "team 'a': its token is the Braze API key itself"),
        ("a:0123456789abcdef,b:0123456789abcdef", "teams 'a' and 'b' share one token"),
    ],
)
def test_token_lists_are_strict_where_it_matters(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)) as caught:
        parse_client_tokens(text, "the-api-key-0123456789")
    assert "0123456789abcde" not in str(caught.value) and "the-api-key" not in str(caught.value)
