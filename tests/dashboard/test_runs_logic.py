"""The run views' pure modules, run in Chromium: scalar series per run (bounded, exact below
the bound), EMA smoothing checked against a Python reference, progress rate and ETA, the
hyperparameter diff, action arguments and refusals, and the URL settings."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import pytest
from playwright.sync_api import Browser, Page

from tests.dashboard.browser import JsResult, run_js_tests

MODULES = {
    "series.test.js": [
        "scalars are kept per run and name; other kinds and runless events are not",
        "history pages and live events merge in offset order without duplicates",
        "past the bound the older half is thinned and the newer half stays exact",
        "up to the bound every point is kept exactly",
        "a hardware payload becomes CPU, RAM and per-GPU metrics",
        "smoothing weight 0 leaves the values as they are",
        "holes stay holes and do not move the average",
        "a smoothing weight outside [0, 1) is refused",
        "runs are joined on the union of their steps, holes as null",
        "with smoothing each run has its raw column then its smoothed one",
        "the time axis is create_time in seconds; a scalar without a step is placed at its offset",
        "a chart's columns are the same array until one of its series changes",
    ],
    "rates.test.js": [
        "rate is measured between samples and ETA is what is left at that rate",
        "the rate the worker sent is used as it is",
        "a bar that went back (a new epoch) measures from its restart",
        "the rate covers the latest window of samples only",
        "no rate from one sample, no ETA without a total or while stalled, 0 when done",
        "durations and rates read as people write them",
    ],
    "params_diff.test.js": [
        "nested maps become dotted keys; lists and null are values",
        "two runs' parameters side by side, each key marked same, changed or one-sided",
    ],
    "action_args.test.js": [
        "a field that parses as JSON is JSON, anything else is its text",
        "empty fields are left out so the action's defaults apply; unknown fields are ignored",
        "a call is refused with its reason: not connected, no operator role, worker offline",
    ],
    "runs_query.test.js": [
        "runs, axis, log and smoothing are read from the query",
        "an empty or unreadable query gives the defaults",
        "settings written to the query read back the same; defaults are left out",
    ],
}

CASES = [(module, name) for module, names in MODULES.items() for name in names]


@pytest.fixture(scope="module")
def results(browser: Browser) -> dict[str, dict[str, JsResult]]:
    return {module: run_js_tests(browser, module) for module in MODULES}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_the_browser_ran_every_case(results: dict[str, dict[str, JsResult]], module: str) -> None:
    assert sorted(results[module]) == sorted(MODULES[module])


@pytest.mark.parametrize(("module", "name"), CASES)
def test_run_view_logic(results: dict[str, dict[str, JsResult]], module: str, name: str) -> None:
    result = results[module][name]
    assert result.ok, f"{name}: {result.detail}"


def ema_reference(values: Sequence[float | None], weight: float) -> list[float | None]:
    """TensorBoard's debiased EMA, written from its definition."""
    last, count = 0.0, 0
    smoothed: list[float | None] = []
    for value in values:
        if value is None:
            smoothed.append(None)
            continue
        last = last * weight + (1 - weight) * value
        count += 1
        smoothed.append(value if weight == 0 else last / (1 - weight**count))
    return smoothed


@pytest.mark.parametrize("weight", [0.0, 0.3, 0.6, 0.9, 0.99])
def test_the_ema_matches_the_python_reference(dashboard_page: Page, weight: float) -> None:
    noise = random.Random(13)
    values: list[float | None] = [
        None if step % 17 == 5 else 2.5 * math.exp(-step / 40) + noise.gauss(0, 0.05)
        for step in range(300)
    ]
    dashboard_page.goto("/__tests__/runs_blank.html")
    smoothed = dashboard_page.evaluate(
        "async ([values, weight]) => (await import('/app/series.js')).ema(values, weight)",
        [values, weight],
    )
    expected = ema_reference(values, weight)
    assert len(smoothed) == len(expected)
    for step, (got, want) in enumerate(zip(smoothed, expected, strict=True)):
        if want is None:
            assert got is None, f"step {step}: a hole became {got}"
        else:
            assert got == pytest.approx(want, rel=1e-12, abs=1e-15), f"step {step}"
