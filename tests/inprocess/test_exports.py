"""Every read-only export row (proxy/exports.py) through the real app (in process) against the stand-in: a miss then
a hit (or, per user and keys, never kept), spellings that share one entry, bad input refused without a call,
Braze's 401/403 and 4xx passed on and never kept, writes refused without a call, the events/products budget
group, paging and Link headers, and paths the proxy does not serve.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import pytest

from proxy.core.exports import EVENTS_GROUP, EXPORTS, Export
from tests.support.braze_standin import StandinServer
from tests.support.harness import InProcessProxy, proxy_in_process, standin_in_process

VALUES = {  # a value the stand-in knows, for every required parameter and path parameter
    "campaign_id": "campaigns-0001",
    "canvas_id": "canvases-0002",
    "segment_id": "segments-0003",
    "card_id": "cards-0001",
    "content_block_id": "cb-1",
    "email_template_id": "tpl-1",
    "end_time": "2030-01-01T00:00:00Z",
    "app_id": "app-1",
    "subscription_group_id": "group-1",
    "preference_center_external_id": "pc-1",
    "catalog_name": "restaurants",
    "item_id": "restaurants-001",
    "integration_id": "int-001",
}
USERS = {"subscription_status": [("external_id[]", "u1"), ("external_id[]", "u2")]}
USERS["subscription_user_status"] = [("external_id", "u1")]
BY_NAME = {e.name: e for e in EXPORTS}
names = pytest.mark.parametrize("name", list(BY_NAME))


def path_of(export: Export) -> str:
    path = export.path
    for name in export.path_params:
        path = path.replace("{" + name + "}", quote(VALUES[name], safe=""))
    return path


def pairs_of(export: Export) -> list[tuple[str, str]]:
    pairs = [(p.name, VALUES[p.name]) for p in export.params if p.required]
    return pairs + USERS.get(export.name, [])


def query_of(export: Export) -> str:
    return urlencode(pairs_of(export))


@pytest.fixture
async def standin_server() -> AsyncIterator[StandinServer]:
    async with standin_in_process() as server:
        yield server


@pytest.fixture
async def proxy_app(standin_server: StandinServer) -> AsyncIterator[InProcessProxy]:
    async with proxy_in_process(standin_server.url) as p:
        yield p


async def direct(
    standin_server: StandinServer, path: str, query: str, key: str = "key-a"
) -> tuple[int, Any, str | None]:
    """The stand-in's own answer, asked without the proxy: status, JSON, Link header."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{standin_server.url}{path}?{query}", headers={"Authorization": f"Bearer {key}"}) as response,
    ):
        return response.status, json.loads(await response.read()), response.headers.get("Link")


@names
async def test_a_miss_then_a_hit_or_never_kept(
    proxy_app: InProcessProxy, standin_server: StandinServer, name: str
) -> None:
    export = BY_NAME[name]
    first = await proxy_app.get(query_of(export), path=path_of(export))
    assert first.status == 200, first.body
    assert "fwd=miss" in first.cache_status
    second = await proxy_app.get(query_of(export), path=path_of(export))
    assert second.body == first.body
    status, expected, _ = await direct(standin_server, path_of(export), query_of(export))
    assert status == 200 and first.json() == expected
    if export.stored:
        assert first.cache_status.endswith("stored") and second.cache_status.startswith("braze-proxy; hit")
        assert standin_server.state.calls == 2  # one through the proxy, one direct
    else:  # per-user answers and keys: never kept, every request asks Braze
        assert "stored" not in first.cache_status and "fwd=miss" in second.cache_status
        assert standin_server.state.calls == 3
    assert await proxy_app.metric("braze_proxy_requests_total", braze_endpoint=name, code="200") == 2


def respelled(export: Export) -> str:
    """The same question spelled otherwise: names in reverse order, every byte percent-encoded, documented
    defaults written out, booleans and choices in upper case."""
    pairs = pairs_of(export)
    pairs += [
        (p.name, p.default.upper() if p.kind in ("bool", "choice") else p.default) for p in export.params if p.default
    ]
    pairs.sort(key=lambda pair: pair[0], reverse=True)  # a repeated parameter's values keep their order
    return "&".join(f"{_all(k)}={_all(v)}" for k, v in pairs)


def _all(text: str) -> str:
    return "".join(f"%{b:02X}" for b in text.encode())


@names
async def test_equivalent_spellings_share_one_entry(
    proxy_app: InProcessProxy, standin_server: StandinServer, name: str
) -> None:
    export = BY_NAME[name]
    first = await proxy_app.get(query_of(export), path=path_of(export))
    again = await proxy_app.get(respelled(export), path=path_of(export))
    assert first.status == again.status == 200, again.body
    assert again.body == first.body
    if export.stored:
        assert again.cache_status.startswith("braze-proxy; hit")
        assert standin_server.state.calls == 1
    sent = {r["query"] for r in standin_server.state.requests}
    assert len(sent) == 1, sent  # Braze is asked the one canonical query


BAD = {  # one bad value for each kind of documented parameter
    "int": ("page", "-1"),
    "bool": ("include_archived", "maybe"),
    "choice": ("sort_direction", "sideways"),
    "time": ("last_edit.time[gt]", "last tuesday"),
}


def bad_inputs(export: Export) -> list[tuple[str, str]]:
    """(query, fragment of the message) for every documented rule of `export`."""
    cases = []
    for param in export.params:
        rest = [(k, v) for k, v in pairs_of(export) if k != param.name]
        if param.required:
            cases.append((urlencode(rest), f"parameter '{param.name}' is required"))
        bad = {"int": "-1", "bool": "maybe", "choice": "sideways", "time": "last tuesday"}.get(param.kind)
        if bad is not None:
            cases.append((urlencode([*rest, (param.name, bad)]), f"parameter '{param.name}' must be"))
        if param.high is not None:
            cases.append((urlencode([*rest, (param.name, str(param.high + 1))]), f"from {param.low} to {param.high}"))
        if not param.many:
            twice = [*pairs_of(export), (param.name, VALUES.get(param.name, "1")), (param.name, "2")]
            cases.append((urlencode(twice), f"parameter '{param.name}' may be given once"))
    return cases


@names
async def test_bad_input_is_a_400_without_an_upstream_call(
    proxy_app: InProcessProxy, standin_server: StandinServer, name: str
) -> None:
    export = BY_NAME[name]
    cases = bad_inputs(export)
    for query, fragment in cases:
        reply = await proxy_app.get(query, path=path_of(export))
        assert reply.status == 400, (query, reply.body)
        assert any(fragment in e for e in reply.json()["errors"]), (query, reply.body)
        assert reply.cache_status == "braze-proxy; fwd=bypass"
    assert standin_server.state.calls == 0
    documented = [p for p in export.params if p.required or p.kind != "text" or not p.many]
    assert bool(cases) == bool(documented)


@names
async def test_brazes_401_is_passed_on_and_never_kept(
    proxy_app: InProcessProxy, standin_server: StandinServer, name: str
) -> None:
    export = BY_NAME[name]
    standin_server.state.rejected_keys = {"key-old"}
    refused = await proxy_app.get(query_of(export), key="key-old", path=path_of(export))
    assert refused.status == 401 and refused.json() == {"message": "Invalid API key: key not recognized"}
    assert "stored" not in refused.cache_status
    standin_server.state.rejected_keys = set()
    proxy_app.clock.advance(120)  # past the minute a refusal is remembered
    accepted = await proxy_app.get(query_of(export), key="key-old", path=path_of(export))
    assert accepted.status == 200, accepted.body


@names
async def test_brazes_403_is_passed_on_and_never_kept(
    proxy_app: InProcessProxy, standin_server: StandinServer, name: str
) -> None:
    export = BY_NAME[name]
    standin_server.state.forbidden_keys = {"key-narrow"}
    status, body, _ = await direct(standin_server, path_of(export), query_of(export), key="key-narrow")
    refused = await proxy_app.get(query_of(export), key="key-narrow", path=path_of(export))
    assert (refused.status, refused.json()) == (status, body) and status == 403
    assert "stored" not in refused.cache_status
    other = await proxy_app.get(query_of(export), key="key-wide", path=path_of(export))
    assert other.status == 200  # another key's answer is its own
    standin_server.state.forbidden_keys = set()
    proxy_app.clock.advance(120)  # past the minute a refusal is remembered
    granted = await proxy_app.get(query_of(export), key="key-narrow", path=path_of(export))
    assert granted.status == 200 and "fwd=miss" in granted.cache_status  # the 403 was never kept


async def test_brazes_4xx_bodies_reach_the_client_unchanged(
    proxy_app: InProcessProxy, standin_server: StandinServer
) -> None:
    for path, query in [
        ("/catalogs/nowhere/items", ""),  # Braze's 404 with an errors list of objects
        ("/campaigns/details", "campaign_id=campaigns-9999"),  # Braze's 400
        ("/campaigns/list", "fields=all"),  # a parameter Braze refuses: passed on as it is
    ]:
        status, body, _ = await direct(standin_server, path, query)
        reply = await proxy_app.get(query, path=path)
        assert (reply.status, reply.json()) == (status, body)
        assert 400 <= status < 500 and "errors" in body
        again = await proxy_app.get(query, path=path)
        assert "hit" not in again.cache_status  # never kept


@names
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_a_write_is_refused_without_an_upstream_call(
    proxy_app: InProcessProxy, standin_server: StandinServer, name: str, method: str
) -> None:
    export = BY_NAME[name]
    headers = {"Authorization": "Bearer key-a", "Content-Type": "application/json"}
    async with proxy_app.client.request(method, path_of(export), data=b"{}", headers=headers) as response:
        assert response.status == 405
        assert response.headers["Allow"] == "GET, HEAD"
        body = await response.json()
    assert body["message"].startswith("Method not allowed: braze-proxy serves Braze's read-only export API")
    assert standin_server.state.calls == 0
    assert await proxy_app.metric("braze_proxy_requests_total", braze_endpoint=name, code="405") == 1


async def test_writes_clients_make_are_refused_in_managed_mode_above_all(standin_server: StandinServer) -> None:
    async with proxy_in_process(
        standin_server.url, api_key="managed-key", client_tokens="growth:tok-growth-0123456789"
    ) as proxy_app:
        for path in ("/content_blocks/create", "/templates/email/update", "/media_library/create", "/users/track"):
            async with proxy_app.client.post(
                path, json={"name": "x"}, headers={"Authorization": "Bearer tok-growth-0123456789"}
            ) as r:
                assert r.status == 405 and r.headers["Allow"] == "GET, HEAD"
        async with proxy_app.client.delete(
            "/catalogs/restaurants/items", headers={"Authorization": "Bearer tok-growth-0123456789"}
        ) as r:
            assert r.status == 405
        assert (await proxy_app.get("", key="tok-growth-0123456789", path="/catalogs")).status == 200
    assert standin_server.state.calls == 1  # the GET only
    assert all(r["authorization"] == "Bearer managed-key" for r in standin_server.state.requests)


async def test_the_events_and_products_group_has_a_budget_of_its_own(standin_server: StandinServer) -> None:
    groups = {EVENTS_GROUP: {"rate_limit_per_hour": 1, "burst": 3}}
    async with proxy_in_process(standin_server.url, budget_groups=groups, rate_limit_max_wait_seconds=0) as proxy_app:
        assert (await proxy_app.get("", path="/events/list")).status == 200
        assert (await proxy_app.get("page=1", path="/events/list")).status == 200
        assert (await proxy_app.get("", path="/purchases/product_list")).status == 200
        for path in ("/purchases/product_list?page=1", "/events", "/custom_attributes"):
            bare, _, query = path.partition("?")
            refused = await proxy_app.get(query, path=bare)
            assert refused.status == 429 and "detail=budget-spent" in refused.cache_status, path
        assert (await proxy_app.get("", path="/campaigns/list")).status == 200  # the default group still answers
        assert (await proxy_app.get("", path="/events/list")).status == 200  # a kept page costs nothing
        rate = await proxy_app.metric("braze_proxy_budget_calls_per_second", workspace="default", group=EVENTS_GROUP)
    assert standin_server.state.calls == 4
    assert rate == pytest.approx(1 / 3600)


async def test_by_default_the_group_spends_a_fifth_of_brazes_1000_an_hour(proxy_app: InProcessProxy) -> None:
    rate = await proxy_app.metric("braze_proxy_budget_calls_per_second", workspace="default", group=EVENTS_GROUP)
    assert rate * 3600 == pytest.approx(200)
    events = {e.name for e in EXPORTS if e.budget_group == EVENTS_GROUP}
    assert events == {"events_list", "products_list", "events_export", "custom_attributes"}


@pytest.mark.parametrize("path", ["/events", "/custom_attributes", "/cdi/integrations"])
async def test_an_absolute_link_is_pointed_at_the_proxy_and_followed_through_it(
    proxy_app: InProcessProxy, standin_server: StandinServer, path: str
) -> None:
    base = str(proxy_app.client.make_url("")).rstrip("/")
    records: list[Any] = []
    url: str | None = f"{base}{path}"
    pages = 0
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer key-a"}) as session:
        while url is not None and pages < 20:
            assert url.startswith(base + "/"), url  # never past the proxy
            async with session.get(url) as response:
                assert response.status == 200
                body = await response.json()
                records += next(v for k, v in body.items() if isinstance(v, list))
                url = response.links.get("next", {}).get("url")  # type: ignore[assignment]
                url = str(url) if url is not None else None
            pages += 1
    assert pages >= 2
    assert all(standin_server.url.removeprefix("http://") not in json.dumps(r) for r in records)
    assert len(records) == len({json.dumps(r) for r in records})  # every page once


async def test_a_relative_link_stays_relative(proxy_app: InProcessProxy, standin_server: StandinServer) -> None:
    reply = await proxy_app.get(path="/catalogs/restaurants/items")
    _, _, link = await direct(standin_server, "/catalogs/restaurants/items", "")
    assert reply.headers["Link"] == link == '</catalogs/restaurants/items?cursor=c2tpcDo1MA==>; rel="next"'
    hit = await proxy_app.get(path="/catalogs/restaurants/items")
    assert hit.cache_status.startswith("braze-proxy; hit") and hit.headers["Link"] == link  # kept with the body


async def test_cursors_spelled_with_and_without_escapes_share_one_entry(
    proxy_app: InProcessProxy, standin_server: StandinServer
) -> None:
    first = await proxy_app.get("cursor=c2tpcDo1MA==", path="/catalogs/restaurants/items")
    second = await proxy_app.get("cursor=c2tpcDo1MA%3D%3D", path="/catalogs/restaurants/items")
    assert second.cache_status.startswith("braze-proxy; hit") and second.body == first.body
    assert standin_server.state.calls == 1


async def test_a_space_as_plus_or_percent_20_is_one_question(
    proxy_app: InProcessProxy, standin_server: StandinServer
) -> None:
    first = await proxy_app.get("campaign_id=campaigns-0001&note=a+b", path="/campaigns/details")
    second = await proxy_app.get("note=a%20b&campaign_id=campaigns-0001", path="/campaigns/details")
    assert first.status == 400  # the stand-in, like Braze, refuses a parameter it does not document
    assert second.body == first.body
    assert [r["query"] for r in standin_server.state.requests] == ["campaign_id=campaigns-0001&note=a%20b"] * 2


async def test_airbytes_list_paging_is_one_entry_a_page(
    proxy_app: InProcessProxy, standin_server: StandinServer
) -> None:
    """No `page` on the first page, `page=1` after, `last_edit.time%5Bgt%5D` as Airbyte writes it: each page its
    own entry (a key that ignored the query would answer page 0 forever), a repeated page a hit."""
    edited = "last_edit.time%5Bgt%5D=2020-06-01"
    first = await proxy_app.get(edited, path="/campaigns/list", **{"Content-Type": "application/json"})
    second = await proxy_app.get(f"{edited}&page=1", path="/campaigns/list", **{"Content-Type": "application/json"})
    zero = await proxy_app.get("page=0&last_edit.time[gt]=2020-06-01", path="/campaigns/list")
    assert first.json()["campaigns"] != second.json()["campaigns"]
    assert zero.cache_status.startswith("braze-proxy; hit") and zero.body == first.body
    _, expected, _ = await direct(standin_server, "/campaigns/list", "last_edit.time[gt]=2020-06-01&page=1")
    assert second.json() == expected


async def test_an_unserved_path_is_a_json_404_logged_and_counted(
    standin_server: StandinServer, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="braze_proxy.access"):  # the access log is on at INFO
        async with proxy_in_process(standin_server.url) as proxy_app:
            reply = await proxy_app.get("api_key=secret-key&x=1", path="/users/export/ids")
            scraped = await proxy_app.scrape()
    written = capfd.readouterr().err  # the access log's batches go to stderr, the last one at shutdown
    assert reply.status == 404
    assert reply.json()["message"] == "Not found: braze-proxy does not serve GET /users/export/ids"
    assert "secret-key" not in reply.body.decode()
    lines = [json.loads(x) for x in written.splitlines() if '"braze_proxy.access"' in x]
    (line,) = [x for x in lines if x["braze_endpoint"] == "unserved"]
    assert line["status"] == 404
    assert "secret-key" not in written and "/users/export/ids" not in written
    assert 'braze_proxy_requests_total{braze_endpoint="unserved",cache="bypass",code="404"} 1.0' in scraped
    assert "/users/export/ids" not in scraped  # never the raw path as a label value
    assert standin_server.state.calls == 0
