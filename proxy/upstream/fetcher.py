"""One call to Braze for one question: through the gate, retried when that may help, classified once.

`classify` (pure) reads an answer once and says what it is: a storable success (with its parsed JSON),
Braze's own answer to pass on unstored (a 4xx, a 2xx that is not a success), a 429, a 5xx worth retrying,
or something malformed (a redirect, a body that is not JSON, a "success" without the data the endpoint
promises) that is an upstream error.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from proxy.budget.buckets import Payer
from proxy.budget.gate import UpstreamGate
from proxy.core.endpoints import Routed
from proxy.core.errors import ManagedKeyRefused, UpstreamError, UpstreamRateLimited, UpstreamTimeout
from proxy.obs.metrics import Metrics
from proxy.upstream.client import UpstreamAnswer, UpstreamClient

log = logging.getLogger("braze_proxy.upstream")

Kind = Literal["success", "passed_on", "key_refused", "rate_limited", "retry", "malformed"]


@dataclass(frozen=True, slots=True)
class Reply:
    kind: Kind
    answer: UpstreamAnswer
    payload: Any = None  # the parsed JSON of a success


def classify(answer: UpstreamAnswer, endpoint: Routed, managed: bool = False) -> Reply:
    """What Braze's `answer` is; `managed`: the call carried the proxy's own key (a 401/403 is then its own)."""
    status = answer.status
    if status == 429:
        return Reply("rate_limited", answer)
    if status >= 500:
        return Reply("retry", answer)
    if managed and status in (401, 403):
        return Reply("key_refused", answer)
    if 400 <= status < 500:
        return Reply("passed_on", answer)
    if not 200 <= status < 300:  # a redirect (its Location is never followed) or a 1xx: not Braze's API answer
        return Reply("malformed", answer)
    try:
        payload = json.loads(answer.body)
    except ValueError:
        return Reply("malformed", answer)
    if not isinstance(payload, dict) or not endpoint.succeeded(payload):
        return Reply("passed_on", answer)  # Braze's own words, e.g. "Internal processing error": never stored
    if "errors" in payload or not endpoint.storable(payload):
        return Reply("malformed", answer)
    return Reply("success", answer, payload)


@dataclass(frozen=True, slots=True)
class Call:
    endpoint: Routed
    params: list[tuple[str, str]]
    api_key: str
    payer: Payer
    path: str = ""  # the path asked, where the endpoint's has path parameters; empty: the endpoint's own
    managed: bool = False  # api_key is the proxy's own (managed-key mode)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    retries: int  # attempts after the first
    budget: float  # seconds a call may spend on attempts and backoffs


class Fetcher:
    def __init__(
        self,
        *,
        upstream: UpstreamClient,
        gate: UpstreamGate,
        retry: RetryPolicy,
        metrics: Metrics,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        jitter: Callable[[float, float], float] = random.uniform,
        on_call: Callable[[Payer], None] | None = None,
    ) -> None:
        self._on_call = on_call  # told of every call made (the teams' spending: spending.py)
        self._upstream = upstream
        self._gate = gate
        self._retry = retry
        self._m = metrics
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter

    async def fetch(self, call: Call) -> Reply:
        """A success or an answer to pass on; raises UpstreamError (and subclasses), RateLimited, Unavailable.

        Every attempt pays a token. Only a 5xx or a failure before any answer is retried, bounded in count
        and time, with jittered exponential backoff.
        """
        name = call.endpoint.name
        started = self._clock()
        attempt = 0
        while True:
            await self._gate.admit(call.payer)
            self._m.team_upstream_calls.labels(call.payer.team_label).inc()
            if self._on_call is not None:
                self._on_call(call.payer)
            t0 = time.perf_counter()
            try:
                answer = await self._upstream.fetch(call.path or call.endpoint.path, call.params, call.api_key)
            except UpstreamTimeout:
                self._record(call, "timeout", t0)
                raise
            except UpstreamError as error:
                self._record(call, "error", t0)
                if not error.retryable or not await self._may_retry(name, attempt, started):
                    raise
                attempt += 1
                continue
            self._record(call, str(answer.status), t0)
            log.info("upstream call", extra={"team": call.payer.team_label, "status": answer.status, "endpoint": name})
            blocked = await self._gate.learn(call.payer, answer.status, answer.rate)
            reply = classify(answer, call.endpoint, call.managed)
            if reply.kind == "key_refused":
                self._key_refused(call, answer.status)
            if reply.kind == "rate_limited":
                raise UpstreamRateLimited(blocked if blocked is not None else 1.0)
            if reply.kind == "retry":
                if await self._may_retry(name, attempt, started):
                    attempt += 1
                    continue
                raise UpstreamError(upstream_status=answer.status)
            if reply.kind == "malformed":
                raise UpstreamError("Bad gateway: the Braze API sent a malformed answer", upstream_status=answer.status)
            return reply

    def _record(self, call: Call, code: str, started: float) -> None:
        payer, endpoint = call.payer, call.endpoint.name
        self._m.upstream_requests.labels(endpoint, payer.workspace, payer.group, code).inc()
        self._m.upstream_duration.labels(endpoint).observe(time.perf_counter() - started)

    def _key_refused(self, call: Call, status: int) -> None:
        workspace = call.payer.workspace
        self._m.managed_key_refusals.labels(workspace).inc()
        log.error(
            "Braze refused the proxy's own API key: replace BRAZE_PROXY_API_KEY (clients get 502)",
            extra={"status": status, "workspace": workspace, "endpoint": call.endpoint.name},
        )
        raise ManagedKeyRefused(status)

    async def _may_retry(self, endpoint: str, attempt: int, started: float) -> bool:
        """Sleep a jittered exponential backoff if another attempt fits the count and time budget."""
        if attempt >= self._retry.retries:
            return False
        backoff = self._jitter(0.5, 1.0) * min(2.0, 0.1 * 2**attempt)
        if self._clock() + backoff - started > self._retry.budget:
            return False
        self._m.upstream_retries.labels(endpoint).inc()
        await self._sleep(backoff)
        return True
