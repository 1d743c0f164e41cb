"""In a real browser: a page from another origin cannot open a session with the broker, the
dashboard's own origin can, and `--allowed-origin` admits exactly the origin it names."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from playwright.async_api import Browser, expect

from broker.testing import running_broker
from tests.dashboard.live import chromium, dashboard

PAGE = b"<!doctype html><title>another site</title><p>another site</p>"


@asynccontextmanager
async def other_origin() -> AsyncIterator[str]:
    """A second origin on loopback (another port, so the browser treats it as another site
    and does not refuse on its own): a tiny HTTP server answering every GET with a page."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n"
            + f"Content-Length: {len(PAGE)}\r\n\r\n".encode()
            + PAGE
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


PROBE = """(url) => new Promise((resolve) => {
    const socket = new WebSocket(url);
    socket.onopen = () => socket.send(JSON.stringify(
        {type: "hello", protocol: 1, role: "watcher", client: "probe"}));
    socket.onmessage = (message) => {
        socket.close();
        resolve(JSON.parse(message.data).type);
    };
    socket.onclose = () => resolve("refused");
})"""
"""Opens a session from the page: the broker's first frame (`welcome`), or "refused"."""


async def probe_from(browser: Browser, origin: str, broker_url: str) -> Any:
    """What a page of ``origin`` gets when it opens a session with the broker."""
    context = await browser.new_context()
    try:
        page = await context.new_page()
        # Not watched for console errors: a refused handshake logs one, as it should.
        await page.goto(f"{origin}/")
        return await page.evaluate(PROBE, broker_url)
    finally:
        await context.close()


async def own_origin_session(browser: Browser, broker_url: str) -> None:
    async with dashboard(browser, broker_url, "/") as live:
        await expect(live.page.get_by_test_id("connection-state")).to_have_text("connected")
        assert await live.page.evaluate(PROBE, broker_url + "/") == "welcome"


@pytest.mark.asyncio
async def test_a_page_from_another_origin_cannot_open_a_session() -> None:
    async with other_origin() as origin, running_broker() as broker, chromium() as browser:
        assert await probe_from(browser, origin, broker.url) == "refused"
        await own_origin_session(browser, broker.url)


@pytest.mark.asyncio
async def test_allowed_origin_admits_that_origin_and_still_the_dashboards_own() -> None:
    async with other_origin() as origin:
        async with running_broker(allowed_origins=(origin,)) as broker, chromium() as browser:
            assert await probe_from(browser, origin, broker.url) == "welcome"
            await own_origin_session(browser, broker.url)


@pytest.mark.asyncio
async def test_allowed_origin_does_not_admit_a_third_origin() -> None:
    async with other_origin() as origin, other_origin() as trusted:
        async with running_broker(allowed_origins=(trusted,)) as broker, chromium() as browser:
            assert await probe_from(browser, trusted, broker.url) == "welcome"
            assert await probe_from(browser, origin, broker.url) == "refused"
