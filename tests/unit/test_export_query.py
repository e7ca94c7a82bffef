"""Pure: the export rows' parsing and keys, Braze's Link header pointed at the proxy, entries that keep a Link,
freshness by class, and the table itself (every row names Braze's limit and where it is published)."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.core.endpoints import SERVED
from proxy.core.entry import Entry, decode, encode
from proxy.core.errors import InvalidRequest
from proxy.core.export_query import ExportQuestion, parse_export
from proxy.core.exports import EVENTS_GROUP, EXPORTS, GROUP_LIMITS, route_of
from proxy.core.freshness import FreshnessPolicy, by_class
from proxy.core.links import rewrite
from proxy.settings.model import DEFAULT_GROUPS

BY_NAME = {e.name: e for e in EXPORTS}
CAMPAIGNS = BY_NAME["campaigns_list"]
ITEMS = BY_NAME["catalog_items"]


def ask(name: str, query: str, *values: str) -> ExportQuestion:
    return parse_export(BY_NAME[name], values, parse_qsl(query, keep_blank_values=True))


def test_defaults_written_or_omitted_order_and_case_are_one_key() -> None:
    spellings = [
        "last_edit.time[gt]=2020-06-01",
        "page=0&last_edit.time[gt]=2020-06-01&include_archived=false",
        "sort_direction=ASC&last_edit.time%5Bgt%5D=2020-06-01",
        "include_archived=FALSE&page=00&last_edit.time[gt]=2020-06-01&sort_direction=asc",
    ]
    keys = {ask("campaigns_list", q).cache_key("p1") for q in spellings}
    assert len(keys) == 1, keys
    assert ask("campaigns_list", spellings[1]).upstream_params() == [("last_edit.time[gt]", "2020-06-01")]


def test_pages_and_filters_are_different_questions() -> None:
    keys = {
        ask("campaigns_list", q).cache_key("p1")
        for q in (
            "",
            "page=1",
            "page=2",
            "include_archived=true",
            "sort_direction=desc",
            "last_edit.time[gt]=2021-01-01",
        )
    }
    assert len(keys) == 6


def test_repeated_values_keep_their_order() -> None:
    ab = ask("subscription_status", "subscription_group_id=g&external_id[]=a&external_id[]=b")
    ba = ask("subscription_status", "external_id[]=b&subscription_group_id=g&external_id[]=a")
    assert ab.upstream_params() == [("external_id[]", "a"), ("external_id[]", "b"), ("subscription_group_id", "g")]
    assert ab.cache_key("p") != ba.cache_key("p")


def test_path_values_are_encoded_and_never_climb() -> None:
    question = ask("catalog_item", "", "my catalog", "a/b?c")
    assert question.upstream_path == "/catalogs/my%20catalog/items/a%2Fb%3Fc"
    with pytest.raises(InvalidRequest, match="path parameter 'catalog_name'"):
        ask("catalog_items", "", "..")


def test_the_legacy_key_never_reaches_the_key_or_braze() -> None:
    question = ask("events_export", "api_key=secret&cursor=abc")
    assert question.upstream_params() == [("cursor", "abc")]
    assert "secret" not in question.cache_key("p")


def test_undocumented_parameters_are_passed_on_and_in_the_key() -> None:
    question = ask("catalogs_list", "fields=a%20b")
    assert question.upstream_params() == [("fields", "a b")]
    assert question.cache_key("p") != ask("catalogs_list", "").cache_key("p")


@pytest.mark.parametrize(
    ("name", "query", "fragment"),
    [
        ("campaigns_list", "page=-1", "parameter 'page' must be an integer of at least 0"),
        ("campaigns_list", "page=1&page=2", "parameter 'page' may be given once"),
        ("campaigns_list", "include_archived=yes", "parameter 'include_archived' must be 'true' or 'false'"),
        ("campaigns_list", "last_edit.time[gt]=soon", "must be an ISO-8601 date or date-time"),
        ("content_blocks_list", "limit=1001", "parameter 'limit' must be an integer from 1 to 1000"),
        ("subscription_user_status", "external_id=a&limit=0", "from 1 to 100"),
        ("scheduled_broadcasts", "", "parameter 'end_time' is required"),
        ("subscription_status", "subscription_group_id=g" + "&email=e" * 51, "may be given at most 50 times"),
        ("campaigns_details", "campaign_id=x&note=\x01", "must be printable"),
    ],
)
def test_bad_input_names_the_problem(name: str, query: str, fragment: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_export(BY_NAME[name], (), [tuple(p.split("=", 1)) for p in query.split("&") if p])  # type: ignore[misc]
    assert any(fragment in e for e in raised.value.errors), raised.value.errors


@given(st.text(min_size=1, max_size=30), st.text(min_size=1, max_size=30))
def test_a_cursor_or_an_id_never_breaks_out_of_its_place_in_the_key(cursor: str, other: str) -> None:
    try:
        a = parse_export(ITEMS, ["x"], [("cursor", cursor)])
        b = parse_export(ITEMS, ["x"], [("cursor", other)])
    except InvalidRequest:
        return
    assert (a.cache_key("p") == b.cache_key("p")) == (cursor == other)
    assert a.cache_key("p").startswith("v1:p:catalog_items:/catalogs/x/items?")


UPSTREAM = "https://rest.iad-03.braze.com"
BASE = "http://braze-proxy.analytics:8080"


def test_an_absolute_link_to_braze_goes_to_the_proxy() -> None:
    link = (
        '<https://rest.iad-03.braze.com/events?cursor=c2tpcDow>; rel="prev",'
        '<https://rest.iad-03.braze.com/events?cursor=c2tpcDoxMDA=>; rel="next"'
    )
    assert rewrite(link, UPSTREAM, BASE) == (
        f'<{BASE}/events?cursor=c2tpcDow>; rel="prev",<{BASE}/events?cursor=c2tpcDoxMDA=>; rel="next"'
    )


def test_relative_links_and_other_hosts_are_left_alone() -> None:
    relative = '</catalogs/all_restaurants/items?cursor=c2tpcDow>; rel="prev"'
    assert rewrite(relative, UPSTREAM, BASE) == relative
    other = '<https://example.com/events?cursor=x>; rel="next"'
    assert rewrite(other, UPSTREAM, BASE) == other


def test_another_braze_host_and_a_gateway_prefix() -> None:
    link = '<https://rest.fra-02.braze.eu/cdi/integrations?cursor=a>; rel="next"'
    assert rewrite(link, UPSTREAM, BASE) == f'<{BASE}/cdi/integrations?cursor=a>; rel="next"'
    gateway = "http://egress.internal:3128/braze"
    link = '<http://egress.internal:3128/braze/custom_attributes?cursor=b>; rel="next"'
    assert rewrite(link, gateway, BASE + "/") == f'<{BASE}/custom_attributes?cursor=b>; rel="next"'


def test_an_entry_keeps_its_link_and_an_old_entry_still_reads() -> None:
    entry = Entry(b'{"items":[]}', 200, "application/json", 1.0, 2.0, 3.0, '</x?cursor=a|b>; rel="next"')
    assert decode(encode(entry)) == entry
    plain = Entry(b"{}", 200, "application/json", 1.0, 2.0, 3.0)
    assert encode(plain).startswith(b"E1|") and decode(encode(plain)) == plain
    assert decode(encode(entry)[:-14]) is None  # the link cut short
    assert decode(b"E2|200|1|2|3|999|application/json\nshort") is None


def test_freshness_by_class() -> None:
    policy = FreshnessPolicy(None, 1, 1, 1, 1, 1, 1, 1, 86400.0, 60.0, ttl_lists=300.0, ttl_details=600.0)  # type: ignore[arg-type]
    assert by_class(ask("campaigns_list", ""), policy).ttl == 300.0
    assert by_class(ask("campaigns_details", "campaign_id=c"), policy).ttl == 600.0
    never = by_class(ask("sdk_authentication_keys", "app_id=a"), policy)
    assert (never.phase, never.ttl, never.stale) == ("never", 0.0, 0.0)
    assert {e.name for e in EXPORTS if not e.stored} == {
        "sdk_authentication_keys",
        "subscription_status",
        "subscription_user_status",
    }


def test_every_row_names_brazes_limit_and_its_page_and_has_a_budget() -> None:
    names = [e.name for e in EXPORTS] + [e.name for e in SERVED]
    assert len(set(names)) == len(names)
    assert all(name.replace("_", "").isalnum() and name.islower() for name in names)
    for export in EXPORTS:
        assert export.limit and export.source.startswith("https://www.braze.com/docs/api/"), export.name
        assert export.budget_group == "default" or export.budget_group in DEFAULT_GROUPS, export.name
    for group, (limit, source) in GROUP_LIMITS.items():
        assert group in DEFAULT_GROUPS and limit and source.startswith("https://www.braze.com/docs/api/")
    assert DEFAULT_GROUPS[EVENTS_GROUP].rate_limit_per_hour == 1000 / 5


def test_routes_match_paths_with_their_parameters() -> None:
    routes = [e.path for e in EXPORTS]
    assert route_of("/catalogs/x/items/y", routes) == "/catalogs/{catalog_name}/items/{item_id}"
    assert route_of("/preference_center/v1/list", routes) == "/preference_center/v1/list"
    assert route_of("/preference_center/v1/abc", routes) == "/preference_center/v1/{preference_center_external_id}"
    assert route_of("/catalogs/../items", routes) is None
    assert route_of("/users/track", routes) is None
