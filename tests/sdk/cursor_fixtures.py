"""Resume-cursor cases shared by the SDK's SubscriptionCursors and the dashboard's
app/cursors.js.

A case is a start position and a list of operations in their JSON wire form (``start``,
``subscribed`` with a snapshot, ``joined``, ``removed``, ``accept`` of an event, ``skip_to``
after a gap); each carries what the Python cursors answered (``expected``) and the cursors
after it (``epochs`` and ``offsets``). ``python -m tests.sdk.cursor_fixtures`` writes them to
``fixtures/cursor_cases.json``; ``test_cursor_fixtures`` checks they still say what the Python
code does, and the browser test runs the same file through the JavaScript port.
"""

from __future__ import annotations

import datetime
import json
import random
from pathlib import Path
from typing import Any, Final

import msgspec

import schema
from sdk._cursors import SubscriptionCursors

CASES_PATH: Final = Path(__file__).resolve().parent / "fixtures" / "cursor_cases.json"
T0: Final = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
SEED: Final = 13
GENERATED_CASES: Final = 20
RESULT_FIELDS: Final = ("expected", "epochs", "offsets")

Wire = dict[str, Any]


def to_wire(value: object) -> Any:
    return json.loads(msgspec.json.encode(value))


def decode(wire: Any, target: Any) -> Any:
    return msgspec.json.decode(json.dumps(wire), type=target)


def state(name: str, epoch: int, last: int) -> Wire:
    value = schema.WorkspaceState(name=name, epoch=epoch, created=T0, last_offset=last)
    return to_wire(value)  # type: ignore[no-any-return]


def event(name: str, offset: int) -> Wire:
    value = schema.EventMsg(
        workspace=name,
        offset=offset,
        create_time=T0,
        received_time=T0,
        payload=schema.Status(key="k", value="v"),
    )
    return to_wire(value)  # type: ignore[no-any-return]


def play(since: Any, operations: list[Wire]) -> list[Wire]:
    """The operations with what SubscriptionCursors answered and held after each."""
    start = decode(since, schema.StartPosition | dict[str, schema.Cursor])
    cursors = SubscriptionCursors(start)
    played: list[Wire] = []
    for operation in operations:
        result: Any = None
        match operation["op"]:
            case "start":
                result = to_wire(cursors.start())
            case "subscribed":
                cursors.subscribed(decode(operation["snapshot"], list[schema.WorkspaceState]))
            case "joined":
                cursors.joined(decode(operation["state"], schema.WorkspaceState))
            case "removed":
                cursors.removed(operation["workspace"])
            case "accept":
                result = cursors.accept(decode(operation["event"], schema.EventMsg))
            case "skip_to":
                cursors.skip_to(operation["workspace"], operation["offset"])
            case other:
                raise ValueError(f"unknown cursor operation {other!r}")
        entry = {key: value for key, value in operation.items() if key not in RESULT_FIELDS}
        if result is not None:
            entry["expected"] = result
        entry["epochs"] = dict(cursors.epochs)
        entry["offsets"] = dict(cursors.offsets)
        played.append(entry)
    return played


def case(name: str, since: Any, operations: list[Wire]) -> Wire:
    return {"name": name, "since": since, "operations": play(since, operations)}


def recomputed(committed: Wire) -> Wire:
    return case(committed["name"], committed["since"], committed["operations"])


def handwritten_cases() -> list[Wire]:
    start: Wire = {"op": "start"}
    return [
        case(
            "latest resumes after the snapshot even when nothing arrived",
            "latest",
            [
                start,
                {"op": "subscribed", "snapshot": [state("a", 1, 50), state("b", 2, 0)]},
                start,
                {"op": "accept", "event": event("a", 50)},
                {"op": "accept", "event": event("a", 51)},
                {"op": "accept", "event": event("a", 51)},
                start,
                {"op": "subscribed", "snapshot": [state("a", 1, 80)]},
                start,
            ],
        ),
        case(
            "earliest names only what was delivered",
            "earliest",
            [
                start,
                {"op": "subscribed", "snapshot": [state("a", 1, 50)]},
                start,
                {"op": "accept", "event": event("a", 7)},
                start,
            ],
        ),
        case(
            "a cursor map resumes, skips a gap, follows joins and removals and a new epoch",
            {"a": {"epoch": 1, "offset": 10}},
            [
                start,
                {"op": "subscribed", "snapshot": [state("a", 1, 30)]},
                start,
                {"op": "skip_to", "workspace": "a", "offset": 20},
                {"op": "accept", "event": event("a", 20)},
                {"op": "accept", "event": event("a", 21)},
                {"op": "skip_to", "workspace": "a", "offset": 5},
                {"op": "skip_to", "workspace": "unknown", "offset": 5},
                {"op": "joined", "state": state("new", 5, 0)},
                {"op": "accept", "event": event("new", 1)},
                {"op": "removed", "workspace": "new"},
                {"op": "accept", "event": event("new", 2)},
                {"op": "subscribed", "snapshot": [state("a", 2, 3)]},
                start,
                {"op": "accept", "event": event("a", 1)},
                start,
            ],
        ),
    ]


def generated_cases(seed: int = SEED) -> list[Wire]:
    """Random operation sequences over few workspaces, epochs and offsets, so they collide."""
    rng = random.Random(seed)
    names = ["a", "b", "c"]

    def random_operation() -> Wire:
        name = rng.choice(names)
        match rng.choice(["start", "subscribed", "joined", "removed", "accept", "accept", "skip"]):
            case "start":
                return {"op": "start"}
            case "subscribed":
                snapshot = [
                    state(each, rng.randint(1, 2), rng.randint(0, 8))
                    for each in rng.sample(names, rng.randint(0, 3))
                ]
                return {"op": "subscribed", "snapshot": snapshot}
            case "joined":
                return {"op": "joined", "state": state(name, rng.randint(1, 2), rng.randint(0, 3))}
            case "removed":
                return {"op": "removed", "workspace": name}
            case "accept":
                return {"op": "accept", "event": event(name, rng.randint(1, 12))}
            case _:
                return {"op": "skip_to", "workspace": name, "offset": rng.randint(0, 12)}

    cases = []
    for number in range(1, GENERATED_CASES + 1):
        since: Any = rng.choice(
            [
                "latest",
                "earliest",
                {name: {"epoch": 1, "offset": rng.randint(0, 5)} for name in rng.sample(names, 2)},
            ]
        )
        operations = [random_operation() for _ in range(rng.randint(5, 25))]
        cases.append(case(f"generated {number}", since, operations))
    return cases


def all_cases() -> list[Wire]:
    return handwritten_cases() + generated_cases()


def write(cases: list[Wire], path: Path = CASES_PATH) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ",\n".join(json.dumps(item) for item in cases)
    path.write_text('{"cases": [\n' + lines + "\n]}\n", encoding="utf-8")


def read(path: Path = CASES_PATH) -> list[Wire]:
    cases: list[Wire] = json.loads(path.read_text(encoding="utf-8"))["cases"]
    return cases


if __name__ == "__main__":
    write(all_cases())
