"""The endpoint groups as data: a move of an endpoint to a group is checked (an unknown endpoint or group
named). Every endpoint through the real app: tests/inprocess/test_endpoints.py."""

from __future__ import annotations

from urllib.parse import urlencode

from proxy.core.endpoints import (
    Endpoint,
    group_move_problems,
)

OLD_END = "2020-02-01T00:00:00Z"  # settled long ago, for every endpoint (14-day windows included)
IDS = {
    "event": "purchase_made",
    "segment_id": "seg-1",
    "campaign_id": "camp-1",
    "send_id": "send-1",
    "canvas_id": "canvas-1",
    "card_id": "card-1",
}


def ids_of(endpoint: Endpoint) -> dict[str, str]:
    return {f.name: IDS[f.name] for f in endpoint.filters if f.required}


def query_of(endpoint: Endpoint, **extra: str | None) -> str:
    params = {"length": str(min(3, endpoint.max_length)), "ending_at": OLD_END, **ids_of(endpoint), **extra}
    return urlencode({k: v for k, v in params.items() if v is not None})


def spellings(endpoint: Endpoint) -> list[str]:
    """Other spellings of query_of(endpoint): order, case, offsets, an empty optional filter, option spellings."""
    ids = ids_of(endpoint)
    out = [
        urlencode({**ids, "ending_at": OLD_END, "length": str(min(3, endpoint.max_length))}),
        query_of(endpoint, unit="DAY"),
        query_of(endpoint, ending_at="2020-01-31T19:00:00-05:00"),  # the same instant
        query_of(endpoint, ending_at="2020-02-01T23:59:59.999+00:00"),  # the same day
    ]
    optional = [f.name for f in endpoint.filters if not f.required]
    if optional:
        out.append(query_of(endpoint, **{optional[0]: ""}))
    if endpoint.flags:
        out.append(query_of(endpoint, **{endpoint.flags[0]: "false"}))
    return out


def test_group_moves_are_checked() -> None:
    assert group_move_problems({"events": "purchases"}, ["campaigns", "purchases"]) == []
    assert group_move_problems({"sends": "default"}, []) == []
    assert group_move_problems({"event": "campaigns"}, ["campaigns"])[0].startswith("'event' is not an endpoint")
    assert group_move_problems({"events": "purchase"}, ["purchases"]) == [
        "'events' moves to 'purchase', which has no budget"
    ]
