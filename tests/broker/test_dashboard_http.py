"""The dashboard's files over plain HTTP GETs on the broker's own port."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from http import HTTPStatus

import pytest
import websockets

from broker._dashboard import static_root
from broker._dashboard._assets import CONTENT_SECURITY_POLICY, DashboardAssets
from broker.testing import running_broker

HTML = "text/html,application/xhtml+xml"

FILES = {
    "/index.html": b"<!doctype html><title>pierhead</title>",
    "/app/main.js": b"export {};",
    "/vendor/lib/LICENSE": b"MIT",
}


def test_a_page_path_gets_the_index_and_an_asset_gets_itself() -> None:
    assets = DashboardAssets(FILES)
    for path in ("/", "/index.html", "/w/deploy-a", "/w/deploy-a?offset=3"):
        answer = assets.answer(path, accept=HTML, if_none_match=None)
        assert (answer.status, answer.body) == (HTTPStatus.OK, FILES["/index.html"]), path
    for path, accept in [("/", None), ("/", "*/*"), ("/index.html", None)]:
        assert assets.answer(path, accept=accept, if_none_match=None).status == 200, path
    script = assets.answer("/app/main.js", accept="*/*", if_none_match=None)
    assert script.status == HTTPStatus.OK
    assert dict(script.headers)["Content-Type"] == "text/javascript; charset=utf-8"


def test_what_is_not_there_or_not_served_is_not_found() -> None:
    assets = DashboardAssets(FILES)
    # A missing asset is not answered with the page, even to a browser asking for a page.
    for path, accept in [
        ("/app/missing.js", HTML),
        ("/vendor/lib/LICENSE", HTML),
        ("/w/deploy-a", "*/*"),
        ("/favicon.ico", "image/*"),
    ]:
        assert assets.answer(path, accept=accept, if_none_match=None).status == 404, path


def test_a_file_the_browser_has_is_not_sent_again() -> None:
    assets = DashboardAssets(FILES)
    first = assets.answer("/app/main.js", accept=None, if_none_match=None)
    etag = dict(first.headers)["ETag"]
    again = assets.answer("/app/main.js", accept=None, if_none_match=f'W/{etag}, "other"')
    assert (again.status, again.body) == (HTTPStatus.NOT_MODIFIED, b"")
    changed = DashboardAssets({**FILES, "/app/main.js": b"export const x = 1;"})
    assert changed.answer("/app/main.js", accept=None, if_none_match=etag).status == 200


def test_every_answer_keeps_the_page_to_itself() -> None:
    assets = DashboardAssets(FILES)
    for path in ("/", "/app/main.js", "/app/missing.js"):
        headers = dict(assets.answer(path, accept=HTML, if_none_match=None).headers)
        assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert "unsafe" not in CONTENT_SECURITY_POLICY
    assert "script-src 'self';" in CONTENT_SECURITY_POLICY


def test_the_shipped_folder_has_an_index_and_its_modules() -> None:
    assets = DashboardAssets.from_folder(static_root())
    assert "/index.html" in assets
    assert "/app/main.js" in assets


def get(url: str, *, accept: str = HTML) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Accept": accept})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.mark.asyncio
async def test_the_broker_serves_the_dashboard_beside_its_websocket() -> None:
    async with running_broker() as broker:
        base = f"http://127.0.0.1:{broker.port}"
        status, headers, body = await asyncio.to_thread(get, f"{base}/")
        assert status == 200
        assert body.startswith(b"<!doctype html>")
        assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        status, headers, _ = await asyncio.to_thread(get, f"{base}/app/main.js", accept="*/*")
        assert (status, headers["Content-Type"]) == (200, "text/javascript; charset=utf-8")
        assert (await asyncio.to_thread(get, f"{base}/app/nothing.js"))[0] == 404
        # The same port still speaks the protocol.
        async with websockets.connect(broker.url, subprotocols=["pierhead.v1.json"]) as socket:  # type: ignore[list-item]
            assert socket.subprotocol == "pierhead.v1.json"


@pytest.mark.asyncio
async def test_no_dashboard_leaves_only_the_websocket() -> None:
    async with running_broker(dashboard=False) as broker:
        status, _, _ = await asyncio.to_thread(get, f"http://127.0.0.1:{broker.port}/")
        assert status == HTTPStatus.UPGRADE_REQUIRED
