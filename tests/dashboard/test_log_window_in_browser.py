"""The log window of the workspace page (app/log-model.js), run in Chromium: contiguous rows,
gaps named, memory bounded at both ends, attachment to the live stream."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser

from tests.dashboard.browser import JsResult, run_js_tests


@pytest.fixture(scope="module")
def results(browser: Browser) -> dict[str, JsResult]:
    return run_js_tests(browser, "log_model.test.js")


def test_every_case_passes(results: dict[str, JsResult]) -> None:
    failed = {name: result.detail for name, result in results.items() if not result.ok}
    assert results, "no case ran"
    assert failed == {}
