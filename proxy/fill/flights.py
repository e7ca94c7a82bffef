"""One upstream call per key in this process: concurrent misses for one key await one task (shielded, so a client
that hangs up does not cancel the call for the others). A refusal by the proxy's budget belongs to the team
refused: a caller of another team who joined the flight decides with its own share (`run_for`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, TypeVar

from proxy.core.errors import ProxyError, team_tag

T = TypeVar("T")


class Flights(Generic[T]):
    """At most one running task per key in this process."""

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Task[T]] = {}

    def __len__(self) -> int:
        return len(self._running)

    def running(self, key: str) -> bool:
        """Whether a task for `key` is under way in this process."""
        return key in self._running

    def run(self, key: str, make: Callable[[], Awaitable[T]]) -> Coroutine[Any, Any, tuple[T, bool]]:
        """The result of the one task for `key`, and whether this caller joined an existing one.

        The task is started (or joined) when `run` is called, not when its result is first awaited: a caller
        that wraps the call in a task of its own (a background refresh) is one flight from that moment on."""
        task = self._running.get(key)
        joined = task is not None
        if task is None:
            task = asyncio.ensure_future(make())
            self._running[key] = task
            task.add_done_callback(lambda _: self._running.pop(key, None))
        return _shielded(task, joined)

    def tasks(self) -> list[asyncio.Task[T]]:
        return list(self._running.values())

    async def run_for(self, key: str, team: str, make: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """`run` for a caller of `team`: a fill it joined that another team's budget refused is not its answer;
        it then runs its own (once, shared with its own team's callers), where its own share decides."""
        try:
            return await self.run(key, make)
        except ProxyError as error:
            tag = team_tag(team)
            if error.team is None or error.team == tag:
                raise
        return await self.run(f"{key}\x00team:{tag}", make)


async def _shielded(task: asyncio.Future[T], joined: bool) -> tuple[T, bool]:
    return await asyncio.shield(task), joined
