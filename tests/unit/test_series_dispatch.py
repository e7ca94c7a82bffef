"""hooks.SeriesDispatch: a GET on a series path goes straight to its handler; anything else goes to the app."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from proxy.http.hooks import SeriesDispatch

PATH = "/sessions/data_series"


class Seen:
    """A handler that answers with its own name and remembers what it was asked."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.asked: list[str] = []

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        self.asked.append(f"{request.method} {request.raw_path}")
        return web.Response(text=self.name)


async def test_a_get_on_a_series_path_goes_to_its_handler() -> None:
    series, app = Seen("series"), Seen("app")
    response = await SeriesDispatch({PATH: series}, app)(make_mocked_request("GET", f"{PATH}?length=3"))
    assert isinstance(response, web.Response) and response.text == "series"
    assert series.asked == [f"GET {PATH}?length=3"] and app.asked == []


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", f"{PATH}x"), ("GET", f"{PATH}/"), ("POST", PATH), ("HEAD", PATH), ("GET", "/"), ("GET", "/metrics")],
)
async def test_everything_else_goes_to_the_app(method: str, path: str) -> None:
    series, app = Seen("series"), Seen("app")
    response = await SeriesDispatch({PATH: series}, app)(make_mocked_request(method, path))
    assert isinstance(response, web.Response) and response.text == "app"
    assert series.asked == [] and app.asked == [f"{method} {path}"]
