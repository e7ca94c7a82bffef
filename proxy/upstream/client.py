"""The Braze client: one ClientSession, bounded time and size, aiohttp errors translated where they enter.

`fetch` returns whatever status Braze answered; it raises only when there is no answer to pass on
(UpstreamTimeout, UpstreamError). A failure before any answer arrived is marked retryable; one after
Braze's status line arrived (bad headers, a broken or oversized body) is not: asking again would be
answered the same, and would spend another token.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import aiohttp
from yarl import URL

from proxy.core.errors import UpstreamError, UpstreamTimeout
from proxy.core.rate_headers import RateInfo, parse_rate_headers
from proxy.obs import tracing


@dataclass(frozen=True, slots=True)
class UpstreamAnswer:
    status: int
    body: bytes
    content_type: str
    rate: RateInfo
    link: str = ""  # Braze's Link header (a paged list's next page), if any


MAX_LINK_CHARS = 4096  # a Link header longer than this is cut (Braze's hold two short URLs)


class UpstreamClient:
    """Calls exactly one configured Braze instance; a request can never choose the host or the path."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        timeout: float,
        connect_timeout: float,
        max_body_bytes: int,
        user_agent: str,
        proxy: str | None = None,
    ) -> None:
        self._session = session
        self._base = URL(base_url)
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=connect_timeout)
        self._max_body = max_body_bytes
        self._user_agent = user_agent
        self._proxy = proxy

    def url(self, path: str, params: list[tuple[str, str]]) -> URL:
        """The base URL's path (an egress gateway's prefix, say) followed by the endpoint's path."""
        query = urlencode(params, quote_via=quote, safe="")
        base = str(self._base.with_query(None).with_fragment(None)).rstrip("/")
        return URL(f"{base}{path}?{query}", encoded=True)

    async def fetch(self, path: str, params: list[tuple[str, str]], api_key: str) -> UpstreamAnswer:
        """GET `path` with `params`; raises UpstreamTimeout or UpstreamError when there is no answer."""
        headers = {
            "Authorization": f"Bearer {api_key}",
            "Accept": "application/json",
            "User-Agent": self._user_agent,
        }
        with tracing.span("braze GET", **{"url.path": path}) as current:
            answer = await self._fetch(path, params, headers)
            tracing.annotate(current, {"http.response.status_code": answer.status})
            return answer

    async def _fetch(self, path: str, params: list[tuple[str, str]], headers: dict[str, str]) -> UpstreamAnswer:
        try:
            async with self._session.get(
                self.url(path, params), headers=headers, timeout=self._timeout, allow_redirects=False, proxy=self._proxy
            ) as response:
                try:
                    body = await self._read_bounded(response)
                except TimeoutError:
                    raise UpstreamTimeout() from None
                except aiohttp.ClientError as exc:
                    raise _answered(f"the Braze API answer broke off ({type(exc).__name__})", response.status) from None
                return UpstreamAnswer(
                    status=response.status,
                    body=body,
                    content_type=response.headers.get("Content-Type", "application/json"),
                    rate=parse_rate_headers(response.headers),
                    link=response.headers.get("Link", "")[:MAX_LINK_CHARS],
                )
        except TimeoutError:
            raise UpstreamTimeout() from None
        except aiohttp.ClientConnectionError as exc:  # refused, reset or closed before any answer: worth a retry
            message = f"Bad gateway: the Braze API connection failed ({type(exc).__name__})"
            raise UpstreamError(message, retryable=True) from None
        except aiohttp.ClientError as exc:  # an answer arrived but could not be read (its headers)
            raise _answered(f"the Braze API answer could not be read ({type(exc).__name__})", None) from None

    async def _read_bounded(self, response: aiohttp.ClientResponse) -> bytes:
        too_large = _answered("the Braze API answer is too large", response.status)
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


def _answered(what: str, status: int | None) -> UpstreamError:
    return UpstreamError(f"Bad gateway: {what}", upstream_status=status)


async def close_session(session: aiohttp.ClientSession) -> None:
    await session.close()
    await asyncio.sleep(0)  # let the connector finish closing transports
