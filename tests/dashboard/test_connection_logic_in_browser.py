"""The dashboard's resume cursors and reconnect backoff, run in Chromium: the cursors answer
every shared case as the SDK's SubscriptionCursors does (tests/sdk/fixtures/cursor_cases.json),
and the backoff follows the SDK's full-jitter rule."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser

from tests.dashboard.browser import JsResult, run_js_tests
from tests.sdk.cursor_fixtures import read

CURSOR_CASES = [case["name"] for case in read()]
GAP_CASE = "a gap frame is remembered and skipped"
BACKOFF_CASES = [
    "caps double to the maximum",
    "each delay is the draw times the cap (full jitter)",
    "reset starts from the initial delay",
    "bounds other than 0 < initial <= maximum are refused",
]


@pytest.fixture(scope="module")
def cursor_results(browser: Browser) -> dict[str, JsResult]:
    return run_js_tests(browser, "cursors.test.js")


@pytest.fixture(scope="module")
def backoff_results(browser: Browser) -> dict[str, JsResult]:
    return run_js_tests(browser, "backoff.test.js")


def test_the_browser_ran_every_cursor_case(cursor_results: dict[str, JsResult]) -> None:
    assert sorted(cursor_results) == sorted([*CURSOR_CASES, GAP_CASE])


@pytest.mark.parametrize("name", [*CURSOR_CASES, GAP_CASE])
def test_the_javascript_cursors_match_the_sdk(
    cursor_results: dict[str, JsResult], name: str
) -> None:
    result = cursor_results[name]
    assert result.ok, f"{name}: {result.detail}"


def test_the_browser_ran_every_backoff_case(backoff_results: dict[str, JsResult]) -> None:
    assert sorted(backoff_results) == sorted(BACKOFF_CASES)


@pytest.mark.parametrize("name", BACKOFF_CASES)
def test_the_javascript_backoff(backoff_results: dict[str, JsResult], name: str) -> None:
    result = backoff_results[name]
    assert result.ok, f"{name}: {result.detail}"
