"""Fixtures of the dashboard tests: one headless Chromium per test module, a page per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from tests.dashboard.browser import launch_chromium, open_page


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Per module, not per session: Playwright's sync API runs an event loop of its own, which
    # must be gone before pytest-asyncio runs the async tests of other modules.
    yield from launch_chromium()


@pytest.fixture
def dashboard_page(browser: Browser) -> Iterator[Page]:
    """A page on the dashboard's origin; the test fails if the page logged an error, threw,
    or a request failed, even when its own assertions passed."""
    page, problems = open_page(browser)
    yield page
    page.context.close()
    problems.assert_none()
