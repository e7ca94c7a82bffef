"""The rest of Braze's read-only export surface, described as data: lists, details, catalogs, templates, CDI, keys
and per-user lookups that one-base-URL clients (Airbyte's Braze source, the `braze-api` client, Braze's MCP
server) call beside the series.

Each row is Braze's path (path parameters as `{name}`, aiohttp's route syntax too), the query parameters Braze
documents with their rule, the answer's top-level keys, how it pages, its freshness class, the budget group it
spends and Braze's published limit with the page that says so. Parameters Braze does not document are passed on
as they are (a client may know more than this table); documented ones are checked and written canonically.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["int", "bool", "choice", "time", "text"]
Freshness = Literal["list", "detail", "per_user", "keys"]
Paging = Literal["none", "page", "offset", "cursor"]

DEFAULT_LIMIT = "250,000 an hour, shared (the default)"
LIMITS_PAGE = "https://www.braze.com/docs/api/api_limits/"
_DOCS = "https://www.braze.com/docs/api/endpoints/"


@dataclass(frozen=True, slots=True)
class Param:
    """A query parameter Braze documents. `default`: the value Braze assumes when it is omitted (dropped from the
    key and the upstream query, so both spellings are one question). `many`: may be repeated (`external_id[]`)."""

    name: str
    kind: Kind = "text"
    required: bool = False
    default: str | None = None
    choices: tuple[str, ...] = ()
    low: int = 0
    high: int | None = None
    many: int = 0  # how many values it may take when repeated; 0: given once
    text: str = ""


@dataclass(frozen=True, slots=True)
class Export:
    path: str
    name: str  # short, stable: cache keys, the `braze_endpoint` label, ENDPOINT_GROUPS, purge by endpoint
    summary: str
    answer: str  # the success answer's top-level keys
    freshness: Freshness
    limit: str  # Braze's published limit for the endpoint
    source: str  # the page of Braze's docs that says so
    params: tuple[Param, ...] = ()
    paging: Paging = "none"
    budget_group: str = "default"

    @property
    def stored(self) -> bool:
        """Whether answers are kept: never for per-user answers and keys (only coalesced and budgeted)."""
        return self.freshness in ("list", "detail")

    @property
    def path_params(self) -> tuple[str, ...]:
        return tuple(re.findall(r"\{(\w+)\}", self.path))

    def succeeded(self, payload: dict[str, Any]) -> bool:
        """A 2xx body that is Braze's success: no `errors`, and `message` "success" where there is one (catalog,
        CDI and preference-center answers have none). Anything else is passed on and never stored."""
        return not payload.get("errors") and payload.get("message", "success") == "success"

    def storable(self, payload: dict[str, Any]) -> bool:
        return True  # any JSON object that succeeded: these answers have no shape the proxy relies on


def _page(text: str = "the page, from 0") -> Param:
    return Param("page", "int", default="0", text=text)


ARCHIVED = Param("include_archived", "bool", default="false", text="include archived items")
SORT = Param("sort_direction", "choice", default="asc", choices=("asc", "desc"), text="by creation time")
EDITED = Param("last_edit.time[gt]", "time", text="only items edited after this time (yyyy-MM-DDTHH:mm:ss)")
CURSOR = Param("cursor", text="the page's cursor, from the previous page's Link header")
DRAFT = Param("post_launch_draft_version", "bool", default="false", text="the draft of a launched message")
MODIFIED = (
    Param("modified_after", "time", text="only items updated at or after this time"),
    Param("modified_before", "time", text="only items updated at or before this time"),
    Param("limit", "int", low=1, high=1000, text="at most this many, 1 to 1000 (default 100)"),
    Param("offset", "int", text="skip this many"),
)
USERS = tuple(
    Param(name, many=50, text="a user (repeat it, up to 50)")
    for name in ("external_id", "external_id[]", "email", "email[]", "phone", "phone[]")
)
EVENTS_GROUP = "events_products"
EVENTS_LIMIT = "1,000 an hour, shared by /events/list, /purchases/product_list, /events and /custom_attributes"


def _id(name: str) -> Param:
    return Param(name, required=True, text="its API identifier")


def _listing(path: str, name: str, summary: str, answer: str, page: str, *extra: Param) -> Export:
    return Export(path, name, summary, answer, "list", DEFAULT_LIMIT, _DOCS + page, (_page(), *extra), "page")


EXPORTS: tuple[Export, ...] = (
    _listing(
        "/campaigns/list", "campaigns_list", "Campaigns, 100 a page", "message, campaigns",
        "export/campaigns/get_campaigns/", ARCHIVED, SORT, EDITED,
    ),
    Export(
        "/campaigns/details", "campaigns_details", "One campaign", "message, name, messages, ...", "detail",
        DEFAULT_LIMIT, _DOCS + "export/campaigns/get_campaign_details/", (_id("campaign_id"), DRAFT),
    ),
    _listing(
        "/canvas/list", "canvas_list", "Canvases, 100 a page", "message, canvases",
        "export/canvas/get_canvases/", ARCHIVED, SORT, EDITED,
    ),
    Export(
        "/canvas/details", "canvas_details", "One Canvas", "message, name, variants, steps, ...", "detail",
        DEFAULT_LIMIT, _DOCS + "export/canvas/get_canvas_details/", (_id("canvas_id"), DRAFT),
    ),
    _listing(
        "/segments/list", "segments_list", "Segments, 100 a page", "message, segments",
        "export/segments/get_segment/", SORT,
    ),
    Export(
        "/segments/details", "segments_details", "One segment", "message, name, description, ...", "detail",
        DEFAULT_LIMIT, _DOCS + "export/segments/get_segment_details/", (_id("segment_id"),),
    ),
    Export(
        "/events/list", "events_list", "Custom event names, 250 a page", "message, events", "list", EVENTS_LIMIT,
        _DOCS + "export/custom_events/get_custom_events/", (_page(),), "page", EVENTS_GROUP,
    ),
    Export(
        "/events", "events_export", "Custom events with their details, 50 a page", "message, events", "list",
        EVENTS_LIMIT, _DOCS + "export/custom_events/get_custom_events_data/", (CURSOR,), "cursor", EVENTS_GROUP,
    ),
    _listing(
        "/feed/list", "feed_list", "News Feed cards, 100 a page (deprecated by Braze)", "message, cards",
        "export/news_feed/get_news_feed_cards/", ARCHIVED, SORT,
    ),
    Export(
        "/feed/details", "feed_details", "One News Feed card (deprecated by Braze)", "message, name, ...", "detail",
        DEFAULT_LIMIT, _DOCS + "export/news_feed/get_news_feed_card_details/", (_id("card_id"),),
    ),
    Export(
        "/purchases/product_list", "products_list", "Product names, 250 a page", "message, products", "list",
        EVENTS_LIMIT, _DOCS + "export/purchases/get_list_product_id/", (_page(),), "page", EVENTS_GROUP,
    ),
    Export(
        "/custom_attributes", "custom_attributes", "Custom attributes, 50 a page", "message, attributes", "list",
        EVENTS_LIMIT, _DOCS + "export/custom_attributes/get_custom_attributes/", (CURSOR,), "cursor", EVENTS_GROUP,
    ),
    Export(
        "/content_blocks/list", "content_blocks_list", "Content Blocks", "message, count, content_blocks", "list",
        DEFAULT_LIMIT, _DOCS + "templates/content_blocks_templates/get_list_email_content_blocks/", MODIFIED,
        "offset",
    ),
    Export(
        "/content_blocks/info", "content_blocks_info", "One Content Block", "message, content_block_id, content, ...",
        "detail", DEFAULT_LIMIT, _DOCS + "templates/content_blocks_templates/get_see_email_content_blocks_information/",
        (_id("content_block_id"), Param("include_inclusion_data", "bool", default="false", text="inclusions")),
    ),
    Export(
        "/templates/email/list", "templates_email_list", "Email templates", "message, count, templates", "list",
        DEFAULT_LIMIT, _DOCS + "templates/email_templates/get_list_email_templates/", MODIFIED, "offset",
    ),
    Export(
        "/templates/email/info", "templates_email_info", "One email template", "message, email_template_id, ...",
        "detail", DEFAULT_LIMIT, _DOCS + "templates/email_templates/get_see_email_template_information/",
        (_id("email_template_id"),),
    ),
    Export(
        "/preference_center/v1/list", "preference_centers_list", "Preference centers", "preference_centers", "list",
        "1,000 a minute per workspace", _DOCS + "preference_center/get_list_preference_center/",
        budget_group="preference_center",
    ),
    Export(
        "/preference_center/v1/{preference_center_external_id}", "preference_center", "One preference center",
        "name, preference_center_api_id, preference_center_body, ...", "detail", "1,000 a minute per workspace",
        _DOCS + "preference_center/get_view_details_preference_center/", budget_group="preference_center",
    ),
    Export(
        "/messages/scheduled_broadcasts", "scheduled_broadcasts", "Broadcasts scheduled until end_time",
        "message, scheduled_broadcasts", "list", DEFAULT_LIMIT,
        _DOCS + "messaging/schedule_messages/get_messages_scheduled/",
        (Param("end_time", "time", required=True, text="ISO-8601 time until which to list"),),
    ),
    Export(
        "/catalogs", "catalogs_list", "Catalogs of the workspace", "message, catalogs", "list",
        "50 a minute, shared by the synchronous catalog endpoints",
        _DOCS + "catalogs/catalog_management/synchronous/get_list_catalogs/", budget_group="catalogs",
    ),
    Export(
        "/catalogs/{catalog_name}/items", "catalog_items", "A catalog's items, 50 a page (relative Link header)",
        "message, items", "list", "50 a minute, shared by the synchronous catalog item endpoints",
        _DOCS + "catalogs/catalog_items/synchronous/get_catalog_items_details_bulk/", (CURSOR,), "cursor",
        "catalog_items",
    ),
    Export(
        "/catalogs/{catalog_name}/items/{item_id}", "catalog_item", "One catalog item", "message, items", "detail",
        "50 a minute, shared by the synchronous catalog item endpoints",
        _DOCS + "catalogs/catalog_items/synchronous/get_catalog_item_details/", budget_group="catalog_items",
    ),
    Export(
        "/cdi/integrations", "cdi_integrations", "CDI integrations, 10 a page", "results", "list",
        "50 a minute", _DOCS + "cdi/get_integration_list/", (CURSOR,), "cursor", "cdi_integrations",
    ),
    Export(
        "/cdi/integrations/{integration_id}/job_sync_status", "cdi_job_sync_status", "An integration's past syncs",
        "results", "list", "100 a minute", _DOCS + "cdi/get_job_sync_status/", (CURSOR,), "cursor", "cdi_job_status",
    ),
    Export(
        "/app_group/sdk_authentication/keys", "sdk_authentication_keys", "An app's SDK authentication keys",
        "keys", "keys", DEFAULT_LIMIT, _DOCS + "sdk_authentication/get_sdk_authentication_keys/",
        (_id("app_id"),),
    ),
    Export(
        "/subscription/status/get", "subscription_status", "Users' state in one subscription group",
        "message, status", "per_user", DEFAULT_LIMIT,
        _DOCS + "subscription_groups/get_list_user_subscription_group_status/",
        (_id("subscription_group_id"), *USERS),
    ),
    Export(
        "/subscription/user/status", "subscription_user_status", "A user's subscription groups",
        "message, users, total_count", "per_user", DEFAULT_LIMIT,
        _DOCS + "subscription_groups/get_list_user_subscription_groups/",
        (*USERS, Param("limit", "int", low=1, high=100, text="at most this many, 1 to 100"), Param("offset", "int")),
    ),
)  # fmt: skip

# Braze's budgets for the groups above, as published, for a fifth of each (the proxy shares the workspace).
GROUP_LIMITS: dict[str, tuple[str, str]] = {
    EVENTS_GROUP: (EVENTS_LIMIT, LIMITS_PAGE),
    "catalogs": ("50 a minute", _DOCS + "catalogs/catalog_management/synchronous/get_list_catalogs/"),
    "catalog_items": ("50 a minute", _DOCS + "catalogs/catalog_items/synchronous/get_catalog_items_details_bulk/"),
    "cdi_integrations": ("50 a minute", _DOCS + "cdi/get_integration_list/"),
    "cdi_job_status": ("100 a minute", _DOCS + "cdi/get_job_sync_status/"),
    "preference_center": ("1,000 a minute", _DOCS + "preference_center/get_list_preference_center/"),
}


def names() -> Iterator[str]:
    return (export.name for export in EXPORTS)


def route_of(path: str, routes: Iterable[str]) -> str | None:
    """The route template in `routes` (`/catalogs/{catalog_name}/items`, ...) that `path` matches, or None."""
    parts = path.split("/")
    for route in routes:
        pattern = route.split("/")
        if len(pattern) == len(parts) and all(
            p == q or (p.startswith("{") and q not in ("", ".", "..")) for p, q in zip(pattern, parts, strict=True)
        ):
            return route
    return None
