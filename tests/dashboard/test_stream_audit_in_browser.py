"""The audit from the stream's attribution (mutex changes with who, calls with caller, action
and outcome), the grace countdown from the broker's ``grace_until``, and typed action forms
from an action's signature, run in Chromium."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser

from tests.dashboard.browser import JsResult, run_js_tests


@pytest.fixture(scope="module")
def results(browser: Browser) -> dict[str, JsResult]:
    return run_js_tests(browser, "stream_audit.test.js")


def test_every_case_passes(results: dict[str, JsResult]) -> None:
    failed = {name: result.detail for name, result in results.items() if not result.ok}
    assert set(results) == {
        "mutex changes name who made them, calls their caller, action and outcome",
        "the grace countdown is the broker's grace_until, not a guessed period",
        "a signature gives typed fields; without one, JSON-or-text fields",
    }
    assert failed == {}
