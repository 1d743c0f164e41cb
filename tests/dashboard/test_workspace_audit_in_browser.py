"""The audit entries (app/audit.js) and the log's text helpers (app/event-lines.js), run in
Chromium: who caught, released or moved the mutex; only http(s) URLs become links."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser

from tests.dashboard.browser import JsResult, run_js_tests


@pytest.fixture(scope="module")
def results(browser: Browser) -> dict[str, JsResult]:
    return run_js_tests(browser, "workspace_audit.test.js")


def test_every_case_passes(results: dict[str, JsResult]) -> None:
    failed = {name: result.detail for name, result in results.items() if not result.ok}
    assert results, "no case ran"
    assert failed == {}
