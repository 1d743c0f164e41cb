"""Live dashboard tests: the real page, served by a real broker, in headless Chromium.

Playwright's async API, so the page, the broker (``running_broker`` in the test's event loop,
or ``broker_process`` for a broker to SIGKILL) and real SDK workers all run in one event loop::

    async with running_broker() as broker, chromium() as browser:
        async with dashboard(browser, broker.url, "/", token=secret) as live:
            await expect(live.page.get_by_test_id("fleet")).to_be_visible()

``dashboard`` opens the page in a fresh browser context (its own sessionStorage, where the
token goes before any script of the page runs) and fails the test when the page logged an
error, threw, or a request failed, unless the test said that message was expected
(``live.expect_console(r"WebSocket connection to .* failed")`` while the broker is down).
Every browser and context is closed when its block ends, whatever happens inside.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from playwright.async_api import Browser, ConsoleMessage, Error, Page, async_playwright, expect

from tests.dashboard.browser import chromium_executable, no_chromium
from tests.support import WAIT_S

TOKEN_KEY: Final = "pierhead.token"
"""Where the page keeps its token (app/views/shell.js TOKEN_KEY)."""

expect.set_options(timeout=WAIT_S * 1000)


def http_base(broker_url: str) -> str:
    """The page's origin for a broker's websocket URL: ``ws://h:p`` -> ``http://h:p``."""
    parts = urlsplit(broker_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return f"{scheme}://{parts.netloc}"


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """A headless Chromium (Debian's, ``$PIERHEAD_CHROMIUM`` or Playwright's), closed at the
    end; no browser fails the test, never skips it."""
    async with async_playwright() as playwright:
        try:
            browser = await playwright.chromium.launch(
                executable_path=chromium_executable(), headless=True
            )
        except Error as exc:
            raise no_chromium(exc) from exc
        try:
            yield browser
        finally:
            await browser.close()


BROKER_DOWN: Final = (
    r"WebSocket connection to .* failed"
    r"|net::ERR_(CONNECTION_REFUSED|CONNECTION_RESET|EMPTY_RESPONSE)"
)
"""What Chromium reports about a broker that is down: refused sockets and cut file loads."""


@dataclass
class PageProblems:
    """Console errors, uncaught exceptions and failed requests of one page, less the ones the
    test said to expect."""

    messages: list[str] = field(default_factory=list)
    expected: list[re.Pattern[str]] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self._add(f"page error: {error}"))
        page.on(
            "requestfailed",
            lambda request: self._add(f"request failed: {request.url} ({request.failure})"),
        )
        page.on(
            "response",
            lambda response: (
                self._add(f"HTTP {response.status}: {response.url}")
                if response.status >= 400
                else None
            ),
        )

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "assert"):
            self._add(f"console {message.type}: {message.text}")

    def _add(self, message: str) -> None:
        if not any(pattern.search(message) for pattern in self.expected):
            self.messages.append(message)

    def assert_none(self) -> None:
        assert self.messages == [], "problems on the page:\n  " + "\n  ".join(self.messages)


@dataclass
class LivePage:
    """A dashboard page open on a broker."""

    page: Page
    base: str
    """The page's origin, ``http://127.0.0.1:PORT``."""
    problems: PageProblems

    def expect_console(self, pattern: str) -> None:
        """From now on, a problem matching ``pattern`` (a regex) does not fail the test."""
        self.problems.expected.append(re.compile(pattern))

    def expect_broker_down(self) -> None:
        """From now on, what the browser reports while the broker is down does not fail the
        test: each refused reconnect, and any file the page was loading when the broker died
        (a view's module or stylesheet loaded on demand)."""
        self.expect_console(BROKER_DOWN)

    async def goto(self, path: str) -> None:
        await self.page.goto(self.base + path)


@asynccontextmanager
async def dashboard(
    browser: Browser, broker_url: str, path: str = "/", *, token: str | None = None
) -> AsyncIterator[LivePage]:
    """The dashboard of the broker at ``broker_url`` opened at ``path`` in a fresh context,
    signed in with ``token`` if given. Fails the test on any unexpected page problem."""
    base = http_base(broker_url)
    context = await browser.new_context()
    context.set_default_timeout(WAIT_S * 1000)
    try:
        if token is not None:
            # Before any script of the page: the page reads its token at start.
            await context.add_init_script(
                f"window.sessionStorage.setItem({json.dumps(TOKEN_KEY)}, {json.dumps(token)});"
            )
        page = await context.new_page()
        problems = PageProblems()
        problems.watch(page)
        live = LivePage(page, base, problems)
        await live.goto(path)
        yield live
    finally:
        await context.close()
    problems.assert_none()
