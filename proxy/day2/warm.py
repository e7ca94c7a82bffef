"""Warming: questions fetched in the background before clients ask them, paid as the background team (only spare
budget: background.py), one at a time, from a bounded queue; and the warm list file, warmed daily by one replica.

The warm file: `at HH:MM[:SS]` (in the reporting time zone), then one question a line (`/path?query`); blank
lines and `#` comments ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from urllib.parse import parse_qsl, urlsplit

from proxy.budget.background import background
from proxy.core.credentials import Credential
from proxy.core.endpoints import SERVED, Endpoint
from proxy.core.errors import InvalidRequest, ProxyError
from proxy.core.lookup import Answer
from proxy.core.query import LEGACY_KEY_PARAM, KeyRules, Question, parse_query
from proxy.obs.metrics import Metrics

log = logging.getLogger("braze_proxy.warm")

MAX_QUESTIONS = 100  # per warm request (and warm file)
MAX_QUEUED = 1000
ATTEMPTS = 3  # a question the budget had no room for is tried again, this long after
RETRY_WAIT = 5.0
ServiceAnswer = Callable[[Question, Credential, str, datetime | None], Awaitable[Answer]]
Room = Callable[[Credential, Endpoint], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class Warm:
    question: Question
    instant: datetime | None


def parse_questions(texts: Iterable[object], rules: KeyRules, now: float) -> list[Warm]:
    """Each `/path?query` as a question; raises InvalidRequest naming every bad one (nothing is accepted then)."""
    found: list[Warm] = []
    errors: list[str] = []
    at = datetime.fromtimestamp(now, UTC)
    paths = {e.path: e for e in SERVED}
    listed = list(texts)
    if not listed or len(listed) > MAX_QUESTIONS:
        raise InvalidRequest(f"Invalid request: give 1 to {MAX_QUESTIONS} questions")
    for number, text in enumerate(listed, start=1):
        if not isinstance(text, str) or len(text) > 2048:
            errors.append(f"question {number}: not a '/path?query' string")
            continue
        parts = urlsplit(text)
        endpoint = paths.get(parts.path)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if endpoint is None:
            errors.append(f"question {number}: {parts.path[:60]!r} is not a served endpoint")
        elif any(name == LEGACY_KEY_PARAM for name, _ in pairs):
            errors.append(f"question {number}: a credential never goes in a question")
        else:
            try:
                parsed = parse_query(pairs, endpoint, rules, at)
            except InvalidRequest as error:
                errors.extend(f"question {number}: {e}" for e in error.errors or [error.message])
                continue
            found.append(Warm(parsed.question, parsed.instant))
    if errors:
        raise InvalidRequest(f"Invalid request: {errors[0]}", errors)
    return found


class Warmer:
    """Fetches queued questions one at a time; counts each as ok, skipped (no spare budget) or error."""

    def __init__(
        self, answer: ServiceAnswer, room: Room, metrics: Metrics, sleep: Callable[[float], Awaitable[None]]
    ) -> None:
        self._answer = answer
        self._room = room  # whether the budget has tokens the clients leave (background.Spare)
        self._m = metrics
        self._sleep = sleep
        self._queue: asyncio.Queue[tuple[Warm, Credential]] = asyncio.Queue(MAX_QUEUED)
        self._task: asyncio.Task[None] | None = None

    def submit(self, warms: list[Warm], credential: Credential) -> int:
        """Queue `warms` for `credential` (paid as the background team); how many were queued (a full queue
        takes no more)."""
        payer = background(credential)
        queued = 0
        for warm in warms:
            try:
                self._queue.put_nowait((warm, payer))
            except asyncio.QueueFull:
                break
            queued += 1
        return queued

    async def idle(self) -> None:
        """Return once everything queued so far was warmed (tests, the warm file's log line)."""
        await self._queue.join()

    async def _warm(self, warm: Warm, credential: Credential) -> str:
        key = warm.question.cache_key(credential.scope)
        for attempt in range(ATTEMPTS):
            if attempt:
                await self._sleep(RETRY_WAIT)
            if not await self._room(credential, warm.question.endpoint):
                continue  # the clients are using the budget: later
            try:
                answer = await self._answer(warm.question, credential, key, warm.instant)
            except ProxyError as error:
                if error.status != 429:
                    return "error"
                continue
            if answer.cache_status.kind != "stale":  # stale: the budget had no room for the refresh either
                return "ok"
        return "skipped"

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            warm, credential = await self._queue.get()
            try:
                self._m.warm_questions.labels(await self._warm(warm, credential)).inc()
            except Exception:  # a bug must not end warming for good
                log.exception("warming a question failed")
            finally:
                self._queue.task_done()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def due_between(at: time, zone: tzinfo, since: float, now: float) -> bool:
    """Whether a daily `at` (in `zone`) fell in (since, now]."""
    day = datetime.fromtimestamp(now, zone).date()
    for candidate in (day - timedelta(days=1), day):
        instant = datetime.combine(candidate, at, tzinfo=zone).timestamp()
        if since < instant <= now:
            return True
    return False
