"""The fleet's and the connection's pure modules, run in Chromium: app/lanes.js answers every
case as pierhead watch's ConsoleModel does (js/fixtures/console_cases.json), and the request
bookkeeping and close-code rules hold."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser

from tests.dashboard import console_fixtures
from tests.dashboard.browser import JsResult, run_js_tests

CONSOLE_CASES = [case["name"] for case in console_fixtures.read()]
CONNECTION_CASES = [
    "a reply settles the request with its id, once",
    "an error reply rejects with the broker's code",
    "a drop fails the requests sent and keeps those not sent yet",
    "a request past its time fails with timeout; its late reply is dropped",
    "ids stay within 2^53-1, wrap to 1 and skip ids in use; the caller's frame is left alone",
    "4001, 4003, 4009 and 4000 end the session with a message",
    "drops, drains, unreachable nodes, slow consumers and rate limits reconnect",
]


def test_the_committed_console_cases_equal_what_the_console_model_does() -> None:
    assert console_fixtures.read() == console_fixtures.build(), (
        "run python -m tests.dashboard.console_fixtures"
    )


@pytest.fixture(scope="module")
def console_results(browser: Browser) -> dict[str, JsResult]:
    return run_js_tests(browser, "console.test.js")


@pytest.fixture(scope="module")
def connection_results(browser: Browser) -> dict[str, JsResult]:
    return run_js_tests(browser, "requests.test.js")


def test_the_browser_ran_every_console_case(console_results: dict[str, JsResult]) -> None:
    assert sorted(console_results) == sorted(CONSOLE_CASES)


@pytest.mark.parametrize("name", CONSOLE_CASES)
def test_the_fleet_rows_match_the_console(console_results: dict[str, JsResult], name: str) -> None:
    result = console_results[name]
    assert result.ok, f"{name}: {result.detail}"


def test_the_browser_ran_every_connection_case(connection_results: dict[str, JsResult]) -> None:
    assert sorted(connection_results) == sorted(CONNECTION_CASES)


@pytest.mark.parametrize("name", CONNECTION_CASES)
def test_the_connection_logic(connection_results: dict[str, JsResult], name: str) -> None:
    result = connection_results[name]
    assert result.ok, f"{name}: {result.detail}"
