"""The fold cases shared with the dashboard's JavaScript fold still say what the Python fold
computes, and cover every payload kind and rule of docs/protocol.md §12."""

from __future__ import annotations

import typing

from schema._types import PayloadKind
from tests.schema.fold_fixtures import handwritten_cases, read, recomputed


def test_the_committed_cases_equal_what_the_python_fold_computes() -> None:
    drifted = [case["name"] for case in read() if recomputed(case) != case]
    assert drifted == [], f"regenerate with python -m tests.schema.fold_fixtures: {drifted}"


def test_the_handwritten_cases_are_committed_as_written() -> None:
    written = handwritten_cases()
    assert read()[: len(written)] == written


def test_the_cases_cover_every_payload_kind_and_presence_state() -> None:
    steps = [step for case in read() for step in case["steps"]]
    kinds = {step["event"]["payload"]["kind"] for step in steps}
    assert kinds == set(typing.get_args(PayloadKind))
    presence = {
        step["event"]["payload"]["state"]
        for step in steps
        if step["event"]["payload"]["kind"] == "presence"
    }
    assert presence == {"connected", "disconnected", "expired"}
    assert any("error" in step for step in steps)
    assert any(case["initial"].get("workers") for case in read())


def test_a_changed_expectation_is_caught() -> None:
    case = read()[0]
    case["steps"][-1]["state"]["last_offset"] += 1
    assert recomputed(case) != case
