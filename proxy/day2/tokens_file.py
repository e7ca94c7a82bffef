"""The client tokens file (BRAZE_PROXY_CLIENT_TOKENS_FILE): teams reloaded live, when the file changes and on SIGHUP.

One `name:token[:weight]` entry a line (blank lines and `#` comments ignored), each parsed by the same parser as
BRAZE_PROXY_CLIENT_TOKENS. A file that does not parse changes nothing: the list in force stays, an error names
the line (never its token) and a gauge an alert watches drops to 0. An empty file is malformed too: no list
would otherwise let every caller in as "anonymous".
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

from proxy.core.credentials import Team
from proxy.core.day2_files import Malformed, parse_tokens_file
from proxy.obs.metrics import Metrics

log = logging.getLogger("braze_proxy.tokens")

POLL_SECONDS = 2.0  # a change is seen within this (plus the read): well inside the 10 s promised


def read_file(path: str, forbidden: frozenset[str] = frozenset()) -> tuple[list[Team], str]:
    """The teams of the file at `path` and its digest; raises Malformed (unreadable, too large, not parsed)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise Malformed(0, f"cannot read the file ({exc.strerror})") from None
    return parse_tokens_file(data, forbidden), hashlib.sha256(data).hexdigest()


class TokensFile:
    """Watches the file; hands each new valid version to `apply`. `start()`/`close()` run the watcher."""

    def __init__(
        self,
        path: str,
        metrics: Metrics,
        forbidden: frozenset[str] = frozenset(),
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self._path = path
        self.apply: Callable[[list[Team]], None] | None = None  # what a new valid version does (set once built)
        self._m = metrics
        self._forbidden = forbidden
        self._poll = poll_seconds
        self._digest = ""  # of the last version read, valid or not (a bad version is reported once)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def load(self) -> list[Team]:
        """The teams at start-up; raises Malformed (the proxy does not start on a bad file)."""
        teams, self._digest = read_file(self._path, self._forbidden)
        self._m.tokens_file_malformed.set(0)
        return teams

    def hup(self) -> None:
        """SIGHUP: read the file again now, changed or not."""
        self._digest = ""
        self._wake.set()

    def check(self) -> bool | None:
        """Read the file if it changed: True (applied), False (malformed, nothing changed), None (unchanged)."""
        try:
            data_digest = hashlib.sha256(Path(self._path).read_bytes()).hexdigest()
        except OSError:
            data_digest = "unreadable"
        if data_digest == self._digest:
            return None
        self._digest = data_digest
        try:
            teams, _ = read_file(self._path, self._forbidden)
        except Malformed as error:
            self._m.tokens_file_malformed.set(1)
            self._m.tokens_file_reloads.labels("malformed").inc()
            log.error(
                "client tokens file malformed; the teams in force stay",
                extra={"line": error.line, "problem": error.reason},
            )
            return False
        if self.apply is not None:
            self.apply(teams)
        self._m.tokens_file_malformed.set(0)
        self._m.tokens_file_reloads.labels("ok").inc()
        log.info("client tokens file reloaded", extra={"teams": [t.name for t in teams]})
        return True

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll):
                    await self._wake.wait()
            self._wake.clear()
            try:
                self.check()  # a small local file (a mounted Secret): read on the loop, applied between requests
            except Exception:  # a bug must not end reloading for good
                log.exception("client tokens file check failed")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
