"""Where the workspace page's log view is scrolled is never undone by a decision taken on a
layout or a position that has since changed: the view is pinned to the tail, or brought to a
deep link's line, again when its size changes after the first page was drawn (here: its
stylesheet arriving late, as the fixture page adds it); and a render between a scroll and its
scroll event neither pins the view back to the tail nor puts the old top line back."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, Route, expect

from tests.dashboard.workspace_fixture import (
    LOG_PAGE,
    ROW_PX,
    fixture_page,
    scroll_to,
    wait_at_the_tail,
    wait_in_view,
)

STYLESHEET = "**/app/workspace.css"
"""The workspace page's stylesheet, which sizes the log view as a scrolling viewport."""


class HeldStylesheet:
    """The page's stylesheet, answered only when released."""

    def __init__(self) -> None:
        self.held: list[Route] = []

    def prepare(self, page: Page) -> None:
        page.route(STYLESHEET, self.hold)

    def hold(self, route: Route) -> None:
        self.held.append(route)

    def release(self) -> None:
        assert self.held, "the page never asked for its stylesheet"
        for route in self.held:
            route.fallback()


def assert_unstyled(page: Page) -> None:
    overflow = page.get_by_test_id("log-scroll").evaluate("e => getComputedStyle(e).overflowY")
    assert overflow == "visible", "the log view scrolls before its stylesheet arrived"


def force_render_with_scroll(page: Page, top: int) -> None:
    """Scroll the log view and, in the same task, type a search every line matches: the view
    renders before the browser sends the scroll event."""
    page.get_by_test_id("log-scroll").evaluate(
        """(element, top) => {
            element.scrollTop = top;
            const search = document.querySelector("input[type=search]");
            search.value = "line";
            search.dispatchEvent(new Event("input", {bubbles: true}));
        }""",
        top,
    )


def wait_top_line(page: Page, offset: int) -> None:
    page.wait_for_function(
        """([offset, rowPx]) => {
            const scroll = document.querySelector("[data-testid=log-scroll]");
            const top = Math.floor(scroll.scrollTop / rowPx);
            const row = scroll.querySelector(`[data-index='${top}']`);
            return row !== null && row.dataset.offset === String(offset);
        }""",
        arg=[offset, ROW_PX],
    )


def test_the_tail_is_followed_once_the_stylesheet_arrives(browser: Browser) -> None:
    stylesheet = HeldStylesheet()
    with fixture_page(
        browser,
        prepare=stylesheet.prepare,
        wait_until="domcontentloaded",
        scenario="big",
        lines="5000",
    ) as (
        page,
        problems,
    ):
        summary = page.get_by_test_id("log-summary")
        expect(summary).to_have_attribute("data-attached", "true")
        expect(page.get_by_test_id("log-scroll").locator("[data-offset='5000']")).to_be_attached()
        assert_unstyled(page)
        stylesheet.release()
        wait_at_the_tail(page)
        expect(page.get_by_test_id("following")).to_be_visible()
        scroll_to(page, 0)
        expect(summary).to_have_attribute("data-first", str(5000 - 2 * LOG_PAGE + 1))
        wait_top_line(page, 5000 - LOG_PAGE + 1)
        problems.assert_none()


def test_a_deep_link_is_in_view_once_the_stylesheet_arrives(browser: Browser) -> None:
    stylesheet = HeldStylesheet()
    with fixture_page(
        browser,
        prepare=stylesheet.prepare,
        wait_until="domcontentloaded",
        scenario="big",
        lines="5000",
        at="2500",
    ) as (page, problems):
        expect(page.get_by_test_id("log-scroll").locator("[data-offset='2500']")).to_be_attached()
        assert_unstyled(page)
        stylesheet.release()
        wait_in_view(page, 2500)
        problems.assert_none()


def test_a_render_before_the_scroll_event_does_not_pin_the_view_back(browser: Browser) -> None:
    with fixture_page(browser, scenario="big", lines="5000") as (page, problems):
        wait_at_the_tail(page)
        force_render_with_scroll(page, 0)
        expect(page.get_by_test_id("to-tail")).to_have_text("Follow ↓")
        summary = page.get_by_test_id("log-summary")
        expect(summary).to_have_attribute("data-first", str(5000 - 2 * LOG_PAGE + 1))
        wait_top_line(page, 5000 - LOG_PAGE + 1)
        problems.assert_none()


def test_a_render_before_the_scroll_event_does_not_put_the_old_top_line_back(
    browser: Browser,
) -> None:
    with fixture_page(browser, scenario="big", lines="5000", at="2500") as (page, problems):
        wait_in_view(page, 2500)
        summary = page.get_by_test_id("log-summary")
        first = int(summary.get_attribute("data-first") or "0")
        force_render_with_scroll(page, 0)
        expect(summary).to_have_attribute("data-first", str(first - LOG_PAGE))
        wait_top_line(page, first)
        problems.assert_none()
