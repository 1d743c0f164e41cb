"""Time travel (app/timetravel.js), run in Chromium: the state rebuilt at every offset of the
shared fold cases equals the Python fold's, and retention is reported."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser

from tests.dashboard.browser import JsResult, run_js_tests


@pytest.fixture(scope="module")
def results(browser: Browser) -> dict[str, JsResult]:
    return run_js_tests(browser, "time_travel.test.js")


def test_every_case_passes(results: dict[str, JsResult]) -> None:
    failed = {name: result.detail for name, result in results.items() if not result.ok}
    assert results, "no case ran"
    assert failed == {}
