"""The resume-cursor cases shared with the dashboard's app/cursors.js still say what the SDK's
SubscriptionCursors does, and exercise every operation."""

from __future__ import annotations

from tests.sdk.cursor_fixtures import handwritten_cases, read, recomputed


def test_the_committed_cases_equal_what_the_python_cursors_do() -> None:
    drifted = [case["name"] for case in read() if recomputed(case) != case]
    assert drifted == [], f"regenerate with python -m tests.sdk.cursor_fixtures: {drifted}"


def test_the_handwritten_cases_are_committed_as_written() -> None:
    written = handwritten_cases()
    assert read()[: len(written)] == written


def test_the_cases_use_every_operation_and_both_answers() -> None:
    operations = [operation for case in read() for operation in case["operations"]]
    assert {operation["op"] for operation in operations} == {
        "start",
        "subscribed",
        "joined",
        "removed",
        "accept",
        "skip_to",
    }
    assert {operation["expected"] for operation in operations if operation["op"] == "accept"} == {
        True,
        False,
    }
    assert {type(case["since"]) for case in read()} == {str, dict}


def test_a_changed_expectation_is_caught() -> None:
    case = read()[0]
    case["operations"][-1]["offsets"]["a"] = 999
    assert recomputed(case) != case
