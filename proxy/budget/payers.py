"""Pure: which budget pays for a call. A budget is a (workspace, endpoint group): the workspace comes from the
credential, the group from the endpoint (Braze limits some endpoints apart), the team and its weight from
the credential too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from proxy.budget.buckets import Limit, Payer
from proxy.core.credentials import Credential
from proxy.core.endpoints import Routed
from proxy.settings.model import DEFAULT_WORKSPACE, Settings

DEFAULT_GROUP = "default"


@dataclass(frozen=True, slots=True)
class Accounts:
    default: Limit  # the "default" group of a workspace without a rate of its own
    workspaces: dict[str, Limit] = field(default_factory=dict)  # their "default" group
    groups: dict[str, Limit] = field(default_factory=dict)  # the other groups, in every workspace
    endpoint_groups: dict[str, str] = field(default_factory=dict)  # endpoint name -> group, where not its own

    @classmethod
    def from_settings(cls, s: Settings) -> Accounts:
        burst = s.rate_limit_burst
        return cls(
            default=Limit(s.rate_limit_per_hour, burst),
            workspaces={
                name: Limit(w.rate_limit_per_hour or s.rate_limit_per_hour, burst) for name, w in s.workspaces.items()
            },
            groups={name: Limit(g.rate_limit_per_hour, g.burst or burst) for name, g in s.groups().items()},
            endpoint_groups=dict(s.endpoint_groups),
        )

    def group_of(self, endpoint: Routed) -> str:
        group = self.endpoint_groups.get(endpoint.name, endpoint.budget_group)
        return group if group in self.groups else DEFAULT_GROUP

    def limit(self, workspace: str, group: str) -> Limit:
        if group != DEFAULT_GROUP:
            return self.groups[group]
        return self.workspaces.get(workspace, self.default)

    def payer(self, credential: Credential, endpoint: Routed) -> Payer:
        workspace, group = credential.workspace, self.group_of(endpoint)
        return Payer(
            budget=f"{workspace}:{group}",
            workspace=workspace,
            group=group,
            limit=self.limit(workspace, group),
            team=credential.team,
            team_label=credential.team_label,
            weight=credential.weight,
        )

    def budgets(self, endpoints: Iterable[Routed]) -> list[tuple[str, str, Limit]]:
        """(workspace, group, limit) of every budget the configuration and `endpoints` can spend."""
        groups = sorted({self.group_of(e) for e in endpoints})
        workspaces = [DEFAULT_WORKSPACE, *sorted(self.workspaces)]
        return [(w, g, self.limit(w, g)) for w in workspaces for g in groups]
