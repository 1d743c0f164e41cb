"""The workspace page's log view on fixture data: virtualised at 100,000 lines (a screenful of
rows in the DOM, the right line at any position), bounded in memory, opened with the latest
page only and paged back on demand, follow-tail with "N new", level filter and search, and a
deep link to an offset."""

from __future__ import annotations

from playwright.sync_api import Browser, expect

from tests.dashboard.workspace_fixture import (
    LOG_PAGE,
    MAX_ROWS,
    ROW_PX,
    fixture_page,
    scroll_to,
    wait_at_the_tail,
    wait_in_view,
)


def test_a_hundred_thousand_lines_keep_a_screenful_in_the_dom(browser: Browser) -> None:
    with fixture_page(browser, scenario="big", lines="1") as (page, problems):
        summary = page.get_by_test_id("log-summary")
        expect(summary).to_have_attribute("data-last", "1")
        page.evaluate(
            """() => {
              const items = [];
              for (let index = 2; index <= 100001; index += 1) {
                items.push({payload: {kind: "log", message: `line ${index}`}});
              }
              fake.append("train-big", items);
            }"""
        )
        expect(summary).to_have_attribute("data-last", "100001")
        expect(summary).to_have_attribute("data-count", str(MAX_ROWS))
        expect(summary).to_have_attribute("data-first", str(100_001 - MAX_ROWS + 1))
        wait_in_view(page, 100_001)
        rows = page.get_by_test_id("log-scroll").locator(".log-row")
        assert rows.count() < 100
        middle = MAX_ROWS // 2
        scroll_to(page, middle * ROW_PX)
        row = page.get_by_test_id("log-scroll").locator(f"[data-index='{middle}']")
        expect(row).to_have_attribute("data-offset", str(100_001 - MAX_ROWS + 1 + middle))
        expect(row).to_contain_text(f"line {100_001 - MAX_ROWS + 1 + middle}")
        assert rows.count() < 100
        problems.assert_none()


def test_the_log_opens_with_the_latest_page_and_pages_back_on_demand(browser: Browser) -> None:
    with fixture_page(browser, scenario="big", lines="5000") as (page, problems):
        summary = page.get_by_test_id("log-summary")
        expect(summary).to_have_attribute("data-first", str(5000 - LOG_PAGE + 1))
        expect(summary).to_have_attribute("data-attached", "true")
        log_queries = page.evaluate("fake.historyQueries.filter(query => !query.kinds)")
        assert log_queries == [{"workspace": "train-big", "limit": LOG_PAGE}]
        wait_at_the_tail(page)
        scroll_to(page, 0)
        expect(summary).to_have_attribute("data-first", str(5000 - 2 * LOG_PAGE + 1))
        # The line that was on top comes back on top: the view does not jump to the start of
        # the page it loaded. The scroll position is restored once the rows are drawn, so the
        # line on top is read again until it settles.
        page.wait_for_function(
            """expected => {
                const scroll = document.querySelector("[data-testid=log-scroll]");
                const top = Math.floor(scroll.scrollTop / 20);
                const row = scroll.querySelector(`[data-index='${top}']`);
                return row !== null && row.dataset.offset === expected;
            }""",
            arg=str(5000 - LOG_PAGE + 1),
        )
        problems.assert_none()


def test_scrolled_up_it_counts_new_lines_and_follows_again(browser: Browser) -> None:
    with fixture_page(browser, scenario="big", lines="2000") as (page, problems):
        expect(page.get_by_test_id("following")).to_be_visible()
        wait_at_the_tail(page)
        scroll_to(page, 100 * ROW_PX)
        to_tail = page.get_by_test_id("to-tail")
        expect(to_tail).to_have_text("Follow ↓")
        page.evaluate(
            """fake.append("train-big", [1, 2, 3].map(n => ({payload: {kind: "log",
               message: `new ${n}`}})))"""
        )
        expect(to_tail).to_have_text("3 new ↓")
        to_tail.click()
        expect(page.get_by_test_id("following")).to_be_visible()
        expect(page.get_by_test_id("log-scroll").get_by_text("new 3")).to_be_visible()
        problems.assert_none()


def test_level_filter_and_search(browser: Browser) -> None:
    with fixture_page(browser, scenario="basic") as (page, problems):
        rows = page.get_by_test_id("log-scroll").locator(".log-row")
        expect(rows).to_have_count(10)
        page.get_by_label("Level").select_option("warning")
        expect(rows).to_have_count(2)
        expect(rows.nth(0)).to_have_attribute("data-level", "warning")
        expect(rows.nth(1)).to_have_attribute("data-level", "error")
        page.get_by_label("Level").select_option("debug")
        page.get_by_label("Search").fill("RESTART")
        expect(rows).to_have_count(1)
        expect(rows).to_contain_text("TASK [restart] ok")
        problems.assert_none()


def test_a_deep_link_opens_the_log_and_time_travel_at_its_offset(browser: Browser) -> None:
    with fixture_page(browser, scenario="big", lines="5000", at="2500") as (page, problems):
        summary = page.get_by_test_id("log-summary")
        expect(summary).to_have_attribute("data-attached", "false")
        wait_in_view(page, 2500)
        past = page.locator("[data-testid=past-state][data-offset='2500']")
        expect(past).to_have_attribute("data-exact", "true")
        expect(past.get_by_test_id("state-json")).to_contain_text('"last_offset": 2500')
        # Scrolling down pages forward until the window reaches the live end.
        for _ in range(10):
            if summary.get_attribute("data-attached") == "true":
                break
            last = summary.get_attribute("data-last")
            scroll_to(page, 10**9)
            expect(summary).not_to_have_attribute("data-last", last or "")
        expect(summary).to_have_attribute("data-attached", "true")
        expect(summary).to_have_attribute("data-last", "5000")
        problems.assert_none()


def test_retention_before_the_first_stored_line_is_a_gap(browser: Browser) -> None:
    with fixture_page(browser, scenario="big", lines="300", retained="101") as (page, problems):
        wait_at_the_tail(page)
        scroll_to(page, 0)
        gap = page.get_by_test_id("log-scroll").locator("[data-gap='1-100']")
        expect(gap).to_contain_text("offsets 1\N{EN DASH}100 missing (removed by retention)")
        problems.assert_none()
