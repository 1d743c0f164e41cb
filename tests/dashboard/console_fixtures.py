"""Fleet cases that ``pierhead watch``'s ConsoleModel answers, for the dashboard's app/lanes.js.

A case is a set of workspace states (JSON wire form), a filter, a clock and a list of keys;
``expected`` holds what the Python model computed: the workspaces per console lane, each
row's cells, and the selection after each key. ``python -m tests.dashboard.console_fixtures``
writes them to ``js/fixtures/console_cases.json``; ``test_console_fixtures`` checks the file
still says what the Python model does, and the browser runs it through app/lanes.js.
"""

from __future__ import annotations

import datetime
import json
import random
from pathlib import Path
from typing import Any, Final

import msgspec

import schema
from pierhead._console_view import LANES, ConsoleModel

CASES_PATH: Final = Path(__file__).resolve().parent / "js" / "fixtures" / "console_cases.json"
NOW: Final = datetime.datetime(2026, 3, 4, 12, 0, tzinfo=datetime.UTC)
SEED: Final = 13
GENERATED_CASES: Final = 40
NAMES: Final = ("deploy-a", "deploy-b", "Deploy-prod", "db-main", "train-x", "train-y", "web")
FILTERS: Final = ("", "db", "DEPLOY-*", "*-[ab]", "?rain*", "[!d]*", "prod", "zzz")
NUMBERS: Final = (0.0, 1.0, 3.0, 12.0, 0.5, 0.1 + 0.2, 1e7, 2.5e-5, 123456789.0, 1 / 3)
HOST_COUNTS: Final = ("3", "12", "3.5", "abc", " 7 ", "")

Wire = dict[str, Any]


def to_wire(value: object) -> Any:
    return json.loads(msgspec.json.encode(value))


def random_state(rng: random.Random, name: str) -> schema.WorkspaceState:
    created = NOW - datetime.timedelta(days=3)
    workers = []
    for index in range(rng.randint(0, 3)):
        seen = NOW - datetime.timedelta(seconds=rng.choice((5, 90, 7200, 200000)))
        workers.append(
            schema.WorkerEntry(
                run_id=f"host{index}:{rng.randint(1, 999)}",
                connected=rng.random() < 0.6,
                connected_at=created,
                last_seen=seen,
            )
        )
    holder = rng.choice([None, *(worker.run_id for worker in workers), "gone:1"])
    has_mutex = rng.random() < 0.4
    caught = rng.random() < 0.3
    semaphores = schema.WorkspaceSemaphores(
        caught=caught,
        has_mutex=has_mutex,
        holder=holder if has_mutex else None,
        fence=rng.randint(0, 9),
        by=rng.choice([None, "alice"]) if caught else None,
        reason=rng.choice([None, "disk <full>", ""]) if caught else None,
    )
    details: dict[str, str] = {}
    if rng.random() < 0.5:
        details["current_host"] = rng.choice(("db-3", "web-1", ""))
    if rng.random() < 0.4:
        details["progress_hosts_completed"] = rng.choice(HOST_COUNTS)
        details["progress_hosts_total"] = rng.choice(HOST_COUNTS)
    status = {"current_host": "from-status"} if rng.random() < 0.3 else {}
    progress: dict[str, schema.Progress] = {}
    for bar in rng.sample(("epoch", "hosts", "batches"), rng.randint(0, 2)):
        total = rng.choice((None, *NUMBERS))
        progress[bar] = schema.Progress(name=bar, current=rng.choice(NUMBERS), total=total)
    last_event = None
    if rng.random() < 0.7:
        severity: schema.Severity = rng.choice(("info", "success", "warning", "error"))
        last_event = schema.WorkspaceEvent(
            message=f"step <{rng.randint(1, 99)}>", severity=severity
        )
    updated = rng.choice([None, NOW - datetime.timedelta(seconds=rng.randint(0, 300000))])
    return schema.WorkspaceState(
        name=name,
        epoch=1,
        created=created,
        last_offset=rng.randint(0, 50),
        details=msgspec.convert(details, schema.WorkspaceDetails),
        semaphores=semaphores,
        workers=tuple(workers),
        status=status,
        progress=progress,
        updated=updated,
        last_event=last_event,
    )


def answer(states: list[schema.WorkspaceState], filter_: str, keys: list[str]) -> Wire:
    model = ConsoleModel()
    model.update_states({state.name: state for state in states})
    model.filter = filter_
    lanes = model.lanes()
    rows = {
        row.name: {
            "workers": row.workers,
            "host": row.host,
            "progress": None
            if row.progress is None
            else {"current": row.progress[0], "total": row.progress[1], "label": row.progress[2]},
            "where": row.where,
            "mutex": row.mutex,
            "caught": row.caught,
            "event": row.event,
            "severity": row.severity,
            "age": row.age,
        }
        for lane_rows in model.rows(NOW).values()
        for row in lane_rows
    }
    selections = [model.selected]
    for key in keys:
        model.press(key)
        selections.append(model.selected)
    return {
        "lanes": {lane: [state.name for state in lanes[lane]] for lane in LANES},
        "rows": rows,
        "selections": selections,
    }


def build() -> list[Wire]:
    rng = random.Random(SEED)
    cases = []
    for number in range(GENERATED_CASES):
        names = rng.sample(NAMES, rng.randint(0, len(NAMES)))
        states = [random_state(rng, name) for name in names]
        filter_ = rng.choice(FILTERS)
        keys = [rng.choice(("up", "down", "j", "k")) for _ in range(rng.randint(0, 6))]
        cases.append(
            {
                "name": f"generated {number + 1}",
                "now": to_wire(NOW),
                "filter": filter_,
                "states": [to_wire(state) for state in states],
                "keys": keys,
                "expected": answer(states, filter_, keys),
            }
        )
    return cases


def write(cases: list[Wire], path: Path = CASES_PATH) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cases": cases}, indent=1) + "\n", encoding="utf-8")


def read(path: Path = CASES_PATH) -> list[Wire]:
    cases: list[Wire] = json.loads(path.read_text(encoding="utf-8"))["cases"]
    return cases


if __name__ == "__main__":
    write(build())
