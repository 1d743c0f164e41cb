"""The dashboard's JavaScript fold, run in Chromium, computes what the Python fold computes for
every shared case (tests/schema/fixtures/fold_cases.json)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser

from tests.dashboard.browser import JsResult, run_js_tests
from tests.schema.fold_fixtures import read

CASE_NAMES = [case["name"] for case in read()]


@pytest.fixture(scope="module")
def fold_results(browser: Browser) -> dict[str, JsResult]:
    return run_js_tests(browser, "fold.test.js")


def test_the_browser_ran_every_case(fold_results: dict[str, JsResult]) -> None:
    assert sorted(fold_results) == sorted(CASE_NAMES)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_the_javascript_fold_matches_the_python_fold(
    fold_results: dict[str, JsResult], name: str
) -> None:
    result = fold_results[name]
    assert result.ok, f"{name}: {result.detail}"
