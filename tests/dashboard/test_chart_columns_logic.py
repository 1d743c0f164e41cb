"""A chart's columns kept from frame to frame (``ChartColumns`` in app/series.js), run in
Chromium: after every batch of points they equal the full recompute on the same points, across
thinning, older history pages, steps that go back and overlaid runs; live points are merged in
without a full build."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser

from tests.dashboard.browser import JsResult, run_js_tests

MODULE = "chart_columns.test.js"
CASES = [
    "live points are merged into the columns without a full build and equal the full recompute",
    "a step sent again replaces the value there, smoothed from the average before it",
    "across thinning the columns are built again and equal the full recompute",
    "an older history page and a step going back are built again and equal the full recompute",
    "runs overlaid on wall-clock time merge into the tail and equal the full recompute",
    "random batches of points give the columns of the full recompute after every batch",
    "columnsOf() appends to a chart's columns in place and answers each setting apart",
]


@pytest.fixture(scope="module")
def results(browser: Browser) -> dict[str, JsResult]:
    return run_js_tests(browser, MODULE)


def test_the_browser_ran_every_case(results: dict[str, JsResult]) -> None:
    assert sorted(results) == sorted(CASES)


@pytest.mark.parametrize("name", CASES)
def test_chart_columns(results: dict[str, JsResult], name: str) -> None:
    result = results[name]
    assert result.ok, f"{name}: {result.detail}"
