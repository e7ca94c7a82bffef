"""The Braze client: one ClientSession, bounded time and size, aiohttp errors translated.

`fetch` returns whatever status Braze answered; it raises only when there is no answer to pass on
(UpstreamTimeout, UpstreamError). Deciding what to do with a status is the service's job.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, urlencode

import aiohttp
from yarl import URL

from proxy.errors import UpstreamError, UpstreamTimeout


@dataclass(frozen=True, slots=True)
class RateInfo:
    """Braze's X-RateLimit-* headers (and Retry-After), as far as they were sent and parse."""

    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None  # epoch seconds
    retry_after: float | None = None  # seconds


@dataclass(frozen=True, slots=True)
class UpstreamAnswer:
    status: int
    body: bytes
    content_type: str
    rate: RateInfo

    def kind(self) -> Literal["success", "other", "malformed"]:
        """success: 2xx JSON `"message": "success"` with a data list, the only answers worth storing;
        malformed: 2xx that is not JSON (never passed on); other: anything else, passed on uncached."""
        if not 200 <= self.status < 300:
            return "other"
        try:
            payload = json.loads(self.body)
        except ValueError:
            return "malformed"
        if isinstance(payload, dict) and payload.get("message") == "success" and isinstance(payload.get("data"), list):
            return "success"
        return "other"


def parse_rate_headers(headers: Mapping[str, str]) -> RateInfo:
    """Read rate-limit headers; `headers` must be case-insensitive (HTTP/2 sends them lower-case)."""
    return RateInfo(
        limit=_int(headers.get("X-RateLimit-Limit")),
        remaining=_int(headers.get("X-RateLimit-Remaining")),
        reset=_float(headers.get("X-RateLimit-Reset")),
        retry_after=_float(headers.get("Retry-After")),
    )


def _int(raw: str | None) -> int | None:
    value = _float(raw)
    return int(value) if value is not None else None


def _float(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if value >= 0 and value == value and value != float("inf") else None


class UpstreamClient:
    """Calls exactly one configured Braze instance; a request can never choose the host or the path."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        timeout: float,
        connect_timeout: float,
        max_body_bytes: int,
        user_agent: str,
    ) -> None:
        self._session = session
        self._base = URL(base_url)
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=connect_timeout)
        self._max_body = max_body_bytes
        self._user_agent = user_agent

    async def fetch(self, path: str, params: list[tuple[str, str]], api_key: str) -> UpstreamAnswer:
        """GET `path` with `params`; raises UpstreamTimeout or UpstreamError when there is no answer."""
        query = urlencode(params, quote_via=quote, safe="")
        url = self._base.with_path(path).with_query(None)
        url = URL(f"{url}?{query}", encoded=True)
        headers = {
            "Authorization": f"Bearer {api_key}",
            "Accept": "application/json",
            "User-Agent": self._user_agent,
        }
        try:
            async with self._session.get(
                url, headers=headers, timeout=self._timeout, allow_redirects=False
            ) as response:
                body = await self._read_bounded(response)
                return UpstreamAnswer(
                    status=response.status,
                    body=body,
                    content_type=response.headers.get("Content-Type", "application/json"),
                    rate=parse_rate_headers(response.headers),
                )
        except TimeoutError:
            raise UpstreamTimeout() from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"Bad gateway: the Braze API connection failed ({type(exc).__name__})") from None

    async def _read_bounded(self, response: aiohttp.ClientResponse) -> bytes:
        # With the status it came with: an answer that did arrive, so asking again would get the same.
        too_large = UpstreamError("Bad gateway: the Braze API answer is too large", upstream_status=response.status)
        declared = response.content_length
        if declared is not None and declared > self._max_body:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(65536):
            size += len(chunk)
            if size > self._max_body:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)


async def close_session(session: aiohttp.ClientSession) -> None:
    await session.close()
    await asyncio.sleep(0)  # let the connector finish closing transports
