"""Who pays for a call (proxy/budget/payers.py), directly: a budget is a (workspace, endpoint group); the
workspace, the team and its weight come from the credential, the group from the endpoint or ENDPOINT_GROUPS.
Settings are built in memory (no environment, no .env file)."""

from __future__ import annotations

from typing import Any

from proxy.budget.buckets import Limit
from proxy.budget.payers import DEFAULT_GROUP, Accounts
from proxy.core.credentials import Credential
from proxy.core.endpoints import CAMPAIGNS, SERVED, SESSIONS
from proxy.settings.model import DEFAULT_GROUPS, DEFAULT_WORKSPACE, Settings

EU_KEY = "a" * 64


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def credential(workspace: str = DEFAULT_WORKSPACE, team: str = "scope-1", label: str = "pass-through") -> Credential:
    return Credential("scope-1", "key", workspace, team, label, weight=2.0)


def test_a_series_endpoint_spends_its_workspaces_default_budget() -> None:
    accounts = Accounts.from_settings(settings(rate_limit_per_hour=36_000, rate_limit_burst=50))
    payer = accounts.payer(credential(), SESSIONS)
    assert (payer.budget, payer.workspace, payer.group) == (
        f"{DEFAULT_WORKSPACE}:default",
        DEFAULT_WORKSPACE,
        "default",
    )
    assert payer.limit == Limit(36_000, 50)
    assert (payer.team, payer.team_label, payer.weight) == ("scope-1", "pass-through", 2.0)  # the credential's


def test_campaigns_spend_the_group_braze_limits_apart_in_every_workspace() -> None:
    accounts = Accounts.from_settings(settings(rate_limit_burst=50))
    payer = accounts.payer(credential(workspace="eu"), CAMPAIGNS)
    assert (payer.budget, payer.group) == ("eu:campaigns", "campaigns")
    group = DEFAULT_GROUPS["campaigns"]
    assert payer.limit == Limit(group.rate_limit_per_hour, group.burst or 50)  # a group without a burst: the global


def test_a_workspace_with_a_rate_of_its_own_pays_it_and_the_others_pay_the_global_one() -> None:
    s = settings(rate_limit_per_hour=1_000, workspaces={"eu": {"key_sha256": [EU_KEY], "rate_limit_per_hour": 50}})
    accounts = Accounts.from_settings(s)
    assert accounts.payer(credential(workspace="eu"), SESSIONS).limit.per_hour == 50
    assert accounts.payer(credential(), SESSIONS).limit.per_hour == 1_000
    unnamed = settings(rate_limit_per_hour=1_000, workspaces={"eu": {"key_sha256": [EU_KEY]}})
    assert Accounts.from_settings(unnamed).payer(credential(workspace="eu"), SESSIONS).limit.per_hour == 1_000


def test_endpoint_groups_move_an_endpoint_to_another_budget() -> None:
    s = settings(
        budget_groups={"purchases": {"rate_limit_per_hour": 100, "burst": 5}}, endpoint_groups={"sessions": "purchases"}
    )
    accounts = Accounts.from_settings(s)
    payer = accounts.payer(credential(), SESSIONS)
    assert (payer.budget, payer.limit) == (f"{DEFAULT_WORKSPACE}:purchases", Limit(100, 5))
    assert accounts.group_of(CAMPAIGNS) == "campaigns"  # the others keep theirs


def test_a_group_that_is_not_configured_falls_back_to_the_default_budget() -> None:
    accounts = Accounts(default=Limit(10, 1), endpoint_groups={"sessions": "nowhere"})
    assert accounts.group_of(SESSIONS) == DEFAULT_GROUP
    assert accounts.limit(DEFAULT_WORKSPACE, DEFAULT_GROUP) == Limit(10, 1)


def test_every_budget_the_configuration_can_spend_is_listed_once() -> None:
    s = settings(workspaces={"eu": {"key_sha256": [EU_KEY], "rate_limit_per_hour": 50}})
    accounts = Accounts.from_settings(s)
    budgets = accounts.budgets(SERVED)
    pairs = [(w, g) for w, g, _ in budgets]
    assert len(pairs) == len(set(pairs))
    assert {w for w, _ in pairs} == {DEFAULT_WORKSPACE, "eu"}
    assert {g for _, g in pairs} == {accounts.group_of(e) for e in SERVED}
    assert ("eu", "default", Limit(50, s.rate_limit_burst)) in budgets
    for endpoint in SERVED:  # whatever a call spends is among them
        payer = accounts.payer(credential(workspace="eu"), endpoint)
        assert (payer.workspace, payer.group, payer.limit) in budgets
