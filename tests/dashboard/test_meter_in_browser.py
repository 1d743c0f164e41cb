"""The dashboard's paint meter (app/meter.js, ``window.pierhead.meter``), run in Chromium: what
the dashboard benchmark reads to tell events on screen from events published."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser

from tests.dashboard.browser import JsResult, run_js_tests

CASES = [
    "an event delivered to two subscriptions counts once",
    "drawn only after 3 painted frames",
    "latency counts from create_time; the oldest share the last bucket",
    "reset zeroes the counts and still skips offsets seen",
]


@pytest.fixture(scope="module")
def meter_results(browser: Browser) -> dict[str, JsResult]:
    return run_js_tests(browser, "meter.test.js")


def test_the_browser_ran_every_case(meter_results: dict[str, JsResult]) -> None:
    assert sorted(meter_results) == sorted(CASES)


@pytest.mark.parametrize("name", CASES)
def test_the_paint_meter(meter_results: dict[str, JsResult], name: str) -> None:
    result = meter_results[name]
    assert result.ok, f"{name}: {result.detail}"
