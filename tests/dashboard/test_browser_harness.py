"""The browser harness itself: the dashboard's page and its vendored libraries load under the
CSP the broker will send, and a page's errors, stray requests and inline scripts fail a test."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page

from tests.dashboard.browser import open_page, run_js_tests


def test_the_index_page_loads_its_modules_and_styles(dashboard_page: Page) -> None:
    loaded: list[str] = []
    dashboard_page.on("requestfinished", lambda request: loaded.append(request.url))
    # No broker behind the fake origin: the page's websocket is answered by nobody.
    dashboard_page.route_web_socket("wss://pierhead.test/", lambda socket: None)
    dashboard_page.goto("/")
    dashboard_page.get_by_test_id("connection-state").get_by_text("connecting").wait_for()
    assert any(url.endswith("/vendor/uplot/uPlot.min.css") for url in loaded)
    assert any(url.endswith("/app/main.js") for url in loaded)


@pytest.mark.parametrize("name", ["preact with hooks and htm", "uplot draws a series"])
def test_the_vendored_libraries_work_in_the_browser(browser: Browser, name: str) -> None:
    result = run_js_tests(browser, "vendored.test.js")[name]
    assert result.ok, f"{name}: {result.detail}"


def test_a_console_error_and_an_uncaught_exception_fail_the_page(browser: Browser) -> None:
    page, problems = open_page(browser)
    try:
        page.goto("/")
        with page.expect_event("pageerror"):
            page.evaluate(
                "() => { console.error('broken'); setTimeout(() => { throw new Error('boom'); }); }"
            )
    finally:
        page.context.close()
    with pytest.raises(AssertionError) as failure:
        problems.assert_none()
    assert "console error: broken" in str(failure.value)
    assert "boom" in str(failure.value)


def test_requests_to_other_origins_are_refused(browser: Browser) -> None:
    page, problems = open_page(browser)
    try:
        page.goto("/")
        with page.expect_console_message(lambda message: message.type == "error"):
            page.evaluate("() => fetch('https://elsewhere.test/x').catch(() => null)")
    finally:
        page.context.close()
    assert any("elsewhere.test" in message for message in problems.messages)


def test_the_content_security_policy_blocks_inline_script(browser: Browser) -> None:
    page, problems = open_page(browser)
    try:
        page.goto("/")
        with page.expect_console_message(lambda message: message.type == "error"):
            page.evaluate(
                "() => { const s = document.createElement('script');"
                " s.textContent = 'window.inlineRan = true'; document.body.append(s); }"
            )
        assert page.evaluate("() => window.inlineRan === undefined")
    finally:
        page.context.close()
    assert any("Content Security Policy" in message for message in problems.messages)
