"""The proxy as a drop-in base URL for clients nobody here wrote, modelled on how they call Braze (in process,
against the stand-in, with the default settings): an Airbyte-style full sync of every stream of a Braze source,
and the read-only and write tools of Braze's MCP server.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.support.braze_standin import StandinServer
from tests.support.harness import InProcessProxy, proxy_in_process, standin_in_process

START = "2020-06-01"  # the source's start date: lists ask for what was edited after it
END = "2020-03-01T00:00:00Z"  # the series' end: settled
MAX_PAGES = 50


@pytest.fixture
async def standin_server() -> AsyncIterator[StandinServer]:
    async with standin_in_process() as server:
        yield server


@pytest.fixture
async def proxy_app(standin_server: StandinServer) -> AsyncIterator[InProcessProxy]:
    async with proxy_in_process(standin_server.url, windows=True) as p:  # the defaults, windows from buckets included
        yield p


class Source:
    """Calls as Airbyte's Braze source makes them: `Content-Type: application/json` on every GET, lists paged
    with no `page` first and `page=1` after while a page holds two or more records, `last_edit.time[gt]` as
    `%5Bgt%5D`, then each listed item's series."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self._session = session
        self._base = base.rstrip("/")

    async def get(self, path: str, query: str = "") -> Any:
        url = f"{self._base}{path}" + (f"?{query}" if query else "")
        headers = {"Content-Type": "application/json", "Authorization": "Bearer key-airbyte"}
        async with self._session.get(url, headers=headers) as response:
            assert response.status == 200, (url, await response.text())
            return json.loads(await response.read())

    async def listed(self, path: str, field: str, since: bool) -> list[Any]:
        records: list[Any] = []
        for page in range(MAX_PAGES):
            query = "&".join(
                (["last_edit.time%5Bgt%5D=" + START] if since else []) + ([f"page={page}"] if page else [])
            )
            got = (await self.get(path, query))[field]
            records += got
            if len(got) < 2:
                return records
        raise AssertionError(f"{path} never ran out of pages")

    async def series(self, path: str, name: str, value: str, length: int = 100) -> list[Any]:
        unit = "&unit=day" if path in ("/events/data_series", "/feed/data_series") else ""  # where Braze has hours
        return [await self.get(path, f"{name}={value}&length={length}{unit}&ending_at={END}")]


async def full_sync(session: aiohttp.ClientSession, base: str) -> dict[str, list[Any]]:
    """Every stream of the source: the lists, each item's details and series, the KPIs."""
    src = Source(session, base)
    out: dict[str, list[Any]] = {}
    out["campaigns"] = await src.listed("/campaigns/list", "campaigns", since=True)
    out["canvases"] = await src.listed("/canvas/list", "canvases", since=True)
    out["segments"] = await src.listed("/segments/list", "segments", since=False)
    out["cards"] = await src.listed("/feed/list", "cards", since=False)
    out["events"] = await src.listed("/events/list", "events", since=False)
    out["purchases"] = await src.listed("/purchases/product_list", "products", since=False)
    for kpi in ("new_users", "dau", "uninstalls"):
        out[f"kpi_{kpi}"] = [await src.get(f"/kpi/{kpi}/data_series", f"length=100&ending_at={END}")]
    out["campaigns_analytics"] = [
        r for c in out["campaigns"] for r in await src.series("/campaigns/data_series", "campaign_id", c["id"])
    ]
    out["canvases_analytics"] = [
        r for c in out["canvases"] for r in await src.series("/canvas/data_series", "canvas_id", c["id"], 14)
    ]
    out["segments_analytics"] = [
        r for s in out["segments"] for r in await src.series("/segments/data_series", "segment_id", s["id"])
    ]
    out["cards_analytics"] = [
        r for c in out["cards"] for r in await src.series("/feed/data_series", "card_id", c["id"])
    ]
    out["events_analytics"] = [
        r for e in out["events"] for r in await src.series("/events/data_series", "event", e.replace(" ", "+"))
    ]
    out["campaign_details"] = [await src.get("/campaigns/details", f"campaign_id={c['id']}") for c in out["campaigns"]]
    return out


async def test_an_airbyte_style_full_sync_gets_brazes_records_and_a_second_costs_little(
    proxy_app: InProcessProxy, standin_server: StandinServer
) -> None:
    async with aiohttp.ClientSession() as session:
        direct = await full_sync(session, standin_server.url)
        direct_calls = standin_server.state.calls
        standin_server.state.reset()
        first = await full_sync(session, str(proxy_app.client.make_url("/")))
        first_calls = standin_server.state.calls
        proxy_app.clock.advance(60)  # the second pass of a sync comes a minute later
        standin_server.state.reset()
        second = await full_sync(session, str(proxy_app.client.make_url("/")))
        second_calls = standin_server.state.calls
    assert first == direct == second
    assert all(first[stream] for stream in first), [s for s in first if not first[s]]
    assert sum(len(v) for v in first.values()) > 500
    # windows check the dates they keep against Braze's labels (docs/windows.md): a few calls per credential and unit
    assert first_calls <= direct_calls + 20
    assert second_calls <= first_calls // 10, (first_calls, second_calls)
    print(f"full sync: {direct_calls} calls direct, {first_calls} through the proxy, then {second_calls}")


# Braze's MCP server: its read-only tools and the GET each makes, and the write tools a client may also have.
READ_TOOLS = [
    ("list_campaigns", "/campaigns/list", "page=0&include_archived=false&sort_direction=desc"),
    ("get_campaign_details", "/campaigns/details", "campaign_id=campaigns-0002"),
    ("get_campaign_data_series", "/campaigns/data_series", f"campaign_id=campaigns-0002&length=7&ending_at={END}"),
    ("get_send_data_series", "/sends/data_series", f"campaign_id=c&send_id=s&length=7&ending_at={END}"),
    ("list_canvases", "/canvas/list", "page=0&include_archived=true"),
    ("get_canvas_details", "/canvas/details", "canvas_id=canvases-0001"),
    ("get_canvas_data_series", "/canvas/data_series", f"canvas_id=canvases-0001&length=7&ending_at={END}"),
    ("get_canvas_data_summary", "/canvas/data_summary", f"canvas_id=canvases-0001&length=7&ending_at={END}"),
    ("list_segments", "/segments/list", "page=0"),
    ("get_segment_details", "/segments/details", "segment_id=segments-0001"),
    ("get_segment_size_series", "/segments/data_series", f"segment_id=segments-0001&length=7&ending_at={END}"),
    ("get_sessions_series", "/sessions/data_series", f"length=7&unit=day&ending_at={END}"),
    ("get_custom_events", "/events", ""),
    ("list_custom_events", "/events/list", "page=0"),
    ("get_custom_event_series", "/events/data_series", f"event=signup&length=7&unit=day&ending_at={END}"),
    ("get_custom_attributes", "/custom_attributes", ""),
    ("get_product_list", "/purchases/product_list", "page=0"),
    ("get_purchase_revenue_series", "/purchases/revenue_series", f"length=7&ending_at={END}"),
    ("get_dau", "/kpi/dau/data_series", f"length=7&ending_at={END}"),
    ("list_content_blocks", "/content_blocks/list", "limit=100&offset=1"),
    ("get_content_block_info", "/content_blocks/info", "content_block_id=cb-1&include_inclusion_data=true"),
    ("list_email_templates", "/templates/email/list", "limit=10"),
    ("get_email_template_info", "/templates/email/info", "email_template_id=tpl-1"),
    ("list_preference_centers", "/preference_center/v1/list", ""),
    ("get_preference_center_details", "/preference_center/v1/pc-2", ""),
    ("get_scheduled_broadcasts", "/messages/scheduled_broadcasts", "end_time=2030-01-01T00:00:00-05:00"),
    ("list_catalogs", "/catalogs", ""),
    ("get_catalog_items", "/catalogs/dishware/items", ""),
    ("get_catalog_item", "/catalogs/dishware/items/dishware-007", ""),
    ("list_cdi_integrations", "/cdi/integrations", ""),
    ("get_cdi_job_sync_status", "/cdi/integrations/int-003/job_sync_status", ""),
    ("get_sdk_authentication_keys", "/app_group/sdk_authentication/keys", "app_id=app-2"),
    ("get_subscription_group_status", "/subscription/status/get", "subscription_group_id=g&external_id=u1"),
    ("get_user_subscription_groups", "/subscription/user/status", "external_id[]=u1&external_id[]=u2&limit=10"),
    ("list_cards", "/feed/list", "page=0"),
    ("get_card_details", "/feed/details", "card_id=cards-0002"),
]
WRITE_TOOLS = [
    ("POST", "/content_blocks/create"),
    ("POST", "/content_blocks/update"),
    ("POST", "/templates/email/create"),
    ("POST", "/templates/email/update"),
    ("POST", "/media_library/create"),
    ("POST", "/catalogs/dishware/items"),
    ("PATCH", "/catalogs/dishware/items/dishware-007"),
    ("PUT", "/catalogs/dishware/items/dishware-007"),
    ("DELETE", "/catalogs/dishware"),
    ("POST", "/subscription/status/set"),
    ("POST", "/messages/send"),
]


async def ask(session: aiohttp.ClientSession, base: str, path: str, query: str) -> tuple[int, Any]:
    url = f"{base.rstrip('/')}{path}" + (f"?{query}" if query else "")
    async with session.get(url, headers={"Authorization": "Bearer key-mcp"}) as response:
        return response.status, json.loads(await response.read())


async def test_the_mcp_servers_read_tools_answer_as_braze_and_its_write_tools_never_reach_it(
    proxy_app: InProcessProxy, standin_server: StandinServer
) -> None:
    base = str(proxy_app.client.make_url("/"))
    async with aiohttp.ClientSession() as session:
        for tool, path, query in READ_TOOLS:
            direct = await ask(session, standin_server.url, path, query)
            through = await ask(session, base, path, query)
            assert through == direct, tool
            assert direct[0] == 200, (tool, direct)
        standin_server.state.reset()
        for method, path in WRITE_TOOLS:
            async with session.request(method, f"{base.rstrip('/')}{path}", json={"name": "x"}) as response:
                assert response.status == 405, (method, path)
                assert response.headers["Allow"] == "GET, HEAD"
                assert "send writes to Braze directly" in (await response.json())["message"]
    assert standin_server.state.calls == 0
