"""hooks.HitDispatch: a GET on a path with a hit path is answered there when it can be; anything else, and a hit
path that fails, goes to the app."""

from __future__ import annotations

import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from proxy.http.hooks import HitDispatch

PATH = "/sessions/data_series"


class App:
    def __init__(self) -> None:
        self.asked: list[str] = []

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        self.asked.append(f"{request.method} {request.raw_path}")
        return web.Response(text="app")


def hit_with(answer: web.Response | None, seen: list[str]):  # type: ignore[no-untyped-def]
    def hit(request: web.BaseRequest) -> web.Response | None:
        seen.append(request.raw_path)
        return answer

    return hit


async def test_a_hit_is_answered_before_the_app() -> None:
    app, seen, answer = App(), [], web.Response(text="hit")
    dispatch = HitDispatch({PATH: hit_with(answer, seen)}, app)
    assert await dispatch(make_mocked_request("GET", f"{PATH}?length=3")) is answer
    assert seen == [f"{PATH}?length=3"] and app.asked == []


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", f"{PATH}x"), ("GET", f"{PATH}/"), ("POST", PATH), ("HEAD", PATH), ("GET", "/")],
)
async def test_other_requests_go_to_the_app(method: str, path: str) -> None:
    app, seen = App(), []
    dispatch = HitDispatch({PATH: hit_with(web.Response(text="hit"), seen)}, app)
    response = await dispatch(make_mocked_request(method, path))
    assert isinstance(response, web.Response) and response.text == "app"
    assert seen == [] and app.asked == [f"{method} {path}"]


async def test_a_miss_goes_to_the_app() -> None:
    app, seen = App(), []
    dispatch = HitDispatch({PATH: hit_with(None, seen)}, app)
    await dispatch(make_mocked_request("GET", PATH))
    assert seen == [PATH] and app.asked == [f"GET {PATH}"]


async def test_a_failing_hit_path_is_reported_and_the_app_answers(caplog: pytest.LogCaptureFixture) -> None:
    def broken(request: web.BaseRequest) -> web.Response | None:
        raise KeyError("a bug")

    app = App()
    with caplog.at_level(logging.ERROR, logger="braze_proxy.web"):
        await HitDispatch({PATH: broken}, app)(make_mocked_request("GET", PATH))
    assert app.asked == [f"GET {PATH}"]
    assert any("hit path failed" in r.getMessage() and r.exc_info for r in caplog.records)
