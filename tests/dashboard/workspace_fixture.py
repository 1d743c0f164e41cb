"""The workspace page on fixture data: the page of tests/dashboard/js/workspace_fixture.html,
served on the harness's fake origin. The actions panel it embeds is stubbed: it reads the fleet
store, which a fixture page has none of, and has live tests of its own
(tests/dashboard/test_actions_live.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal
from urllib.parse import urlencode

from playwright.sync_api import Browser, Page, Route

from tests.dashboard.browser import PageProblems, open_page

ACTIONS_STUB = (
    'import { h } from "/vendor/preact/preact.mjs";\n'
    "export function ActionsPanel({ workspace }) {\n"
    '  return h("p", { "data-testid": "actions-stub" }, `actions of ${workspace}`);\n'
    "}\n"
)
"""An ActionsPanel that only says it was given the workspace."""


@contextmanager
def fixture_page(
    browser: Browser,
    *,
    prepare: Callable[[Page], None] | None = None,
    wait_until: Literal["load", "domcontentloaded"] = "load",
    **params: str,
) -> Iterator[tuple[Page, PageProblems]]:
    """The workspace page rendered on a FakeConnection filled by ``params["scenario"]``;
    ``prepare`` is given the page before it is loaded (to route its requests), and the page is
    loaded once ``wait_until`` happened (its DOM only, when a request is held back)."""
    page, problems = open_page(browser)

    def stub(route: Route) -> None:
        route.fulfill(status=200, body=ACTIONS_STUB, content_type="text/javascript")

    page.route("**/app/views/actions.js", stub)
    if prepare is not None:
        prepare(page)
    try:
        page.goto(f"/__tests__/workspace_fixture.html?{urlencode(params)}", wait_until=wait_until)
        yield page, problems
    finally:
        page.context.close()


ROW_PX = 20
"""app/views/log.js ROW_PX."""
LOG_PAGE = 500
"""app/workspace-feed.js LOG_PAGE."""
MAX_ROWS = 50_000
"""app/log-model.js DEFAULT_MAX_ROWS."""


def scroll_to(page: Page, top: int) -> None:
    page.get_by_test_id("log-scroll").evaluate(
        "(element, top) => { element.scrollTop = top; }", top
    )


def wait_at_the_tail(page: Page) -> None:
    """Until the log view scrolls (its stylesheet, loaded after the page's first render, is
    applied) and shows the end of its lines: only then does a scroll land where it is asked."""
    page.wait_for_function(
        """() => {
            const scroll = document.querySelector("[data-testid=log-scroll]");
            return scroll !== null && getComputedStyle(scroll).overflowY === "auto"
                && scroll.scrollHeight > scroll.clientHeight
                && scroll.scrollTop + scroll.clientHeight >= scroll.scrollHeight - 1;
        }"""
    )


def wait_in_view(page: Page, offset: int) -> None:
    """Until the line of ``offset`` is inside the log view's viewport, the view scrolling."""
    page.wait_for_function(
        """([offset, rowPx]) => {
            const scroll = document.querySelector("[data-testid=log-scroll]");
            const line = scroll?.querySelector(`[data-offset='${offset}']`);
            if (!line || getComputedStyle(scroll).overflowY !== "auto") {
                return false;
            }
            const top = Number(line.dataset.index) * rowPx;
            return scroll.scrollTop <= top && top + rowPx <= scroll.scrollTop + scroll.clientHeight;
        }""",
        arg=[offset, ROW_PX],
    )
