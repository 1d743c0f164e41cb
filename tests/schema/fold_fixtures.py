"""Fold cases shared by the Python fold and the dashboard's JavaScript port (app/fold.js).

Each case is an initial state and a list of steps, all in their JSON wire form: the event as a
watcher receives it, then either the state the Python fold computes after it or the error it
raises. ``python -m tests.schema.fold_fixtures`` writes them to ``fixtures/fold_cases.json``;
``test_fold_fixtures`` checks that the committed file still equals what the fold computes, and
the browser test runs the same file through the JavaScript fold.

Generated cases come from the schema's own strategies under a fixed seed; handwritten ones pin
the edges (bounds, equal instants written with different offsets, microseconds, keys that are
special in JavaScript, replays, another workspace's events).
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any, Final

import msgspec
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import schema
from schema._limits import MAX_PROGRESS_BARS, MAX_STATUS_KEYS
from tests.schema.strategies import aware_datetimes, for_struct

CASES_PATH: Final = Path(__file__).resolve().parent / "fixtures" / "fold_cases.json"
WORKSPACE: Final = "deploy-eu"
RUNS: Final = ["run-a", "run-b", "run-c"]
START: Final = datetime.datetime(2026, 11, 1, 9, 0, tzinfo=datetime.UTC)
GENERATED_CASES: Final = 40

Wire = dict[str, Any]


def to_wire(value: object) -> Any:
    """``value`` exactly as the JSON codec puts it on the wire, parsed."""
    return json.loads(msgspec.json.encode(value))


def state_from_wire(wire: Wire) -> schema.WorkspaceState:
    return msgspec.json.decode(json.dumps(wire), type=schema.WorkspaceState)


def event_from_wire(wire: Wire) -> schema.EventMsg:
    return msgspec.json.decode(json.dumps(wire), type=schema.EventMsg)


def steps_for(state: schema.WorkspaceState, events: list[schema.EventMsg]) -> list[Wire]:
    """Each event with the state the fold gives after it, or the error it raises."""
    steps: list[Wire] = []
    for event in events:
        try:
            state = schema.fold_event(state, event)
        except ValueError:
            steps.append({"event": to_wire(event), "error": "wrong_workspace"})
        else:
            steps.append({"event": to_wire(event), "state": to_wire(state)})
    return steps


def case(name: str, initial: schema.WorkspaceState, events: list[schema.EventMsg]) -> Wire:
    return {"name": name, "initial": to_wire(initial), "steps": steps_for(initial, events)}


def recomputed(committed: Wire) -> Wire:
    """A committed case with its expected steps computed again from its initial state and
    events, as decoded from the wire."""
    events = [event_from_wire(step["event"]) for step in committed["steps"]]
    return {
        "name": committed["name"],
        "initial": committed["initial"],
        "steps": steps_for(state_from_wire(committed["initial"]), events),
    }


# Handwritten edges --------------------------------------------------------------------------


def at(seconds: float, zone: datetime.timezone = datetime.UTC) -> datetime.datetime:
    return (START + datetime.timedelta(seconds=seconds)).astimezone(zone)


def envelope(
    offset: int,
    payload: Any,
    *,
    run_id: str | None = None,
    received: datetime.datetime | None = None,
    workspace: str = WORKSPACE,
) -> schema.EventMsg:
    time = at(offset) if received is None else received
    return schema.EventMsg(
        workspace=workspace,
        offset=offset,
        create_time=time,
        received_time=time,
        payload=payload,
        run_id=run_id,
        seq=offset if run_id else None,
    )


def fresh() -> schema.WorkspaceState:
    return schema.new_workspace_state(WORKSPACE, epoch=3, created=START)


def connected(run_id: str, client: str = "") -> schema.Presence:
    return schema.Presence(run_id=run_id, state="connected", client=client)


def handwritten_cases() -> list[Wire]:
    plus_two = datetime.timezone(datetime.timedelta(hours=2))
    minus_half = datetime.timezone(datetime.timedelta(hours=-5, minutes=-30))
    action = schema.ActionSpec(name="set_lr", description="learning rate", params=["value"])
    nearly_full_status = msgspec.structs.replace(
        fresh(), status={f"k{i}": "v" for i in range(MAX_STATUS_KEYS - 1)}
    )
    nearly_full_progress = msgspec.structs.replace(
        fresh(),
        progress={
            f"p{i}": schema.Progress(name=f"p{i}", current=i) for i in range(MAX_PROGRESS_BARS - 1)
        },
    )
    return [
        case(
            "worker lifecycle: connect, touch, disconnect, reconnect, expire",
            fresh(),
            [
                envelope(1, schema.Presence(run_id="r1", state="connected", actions=[action])),
                envelope(2, schema.Status(key="phase", value="train"), run_id="r1"),
                envelope(3, schema.Presence(run_id="r2", state="connected", client="sdk/0.1")),
                envelope(4, schema.Presence(run_id="r1", state="disconnected")),
                envelope(5, schema.LogRecord(message="still here"), run_id="r1"),
                envelope(6, connected("r1", client="sdk/0.2")),
                envelope(7, schema.Presence(run_id="r2", state="expired")),
                envelope(8, schema.Presence(run_id="r1", state="expired")),
                envelope(9, schema.Presence(run_id="gone", state="disconnected")),
            ],
        ),
        case(
            "replays, gaps in offsets and older offsets change nothing",
            fresh(),
            [
                envelope(5, schema.Status(key="a", value="1")),
                envelope(5, schema.Status(key="a", value="replayed")),
                envelope(2, schema.Status(key="a", value="older")),
                envelope(9, schema.Progress(name="hosts", current=3, total=10, rate=0.5)),
                envelope(10, schema.Progress(name="hosts", current=4)),
            ],
        ),
        case(
            "another workspace's event is refused unless already applied",
            fresh(),
            [
                envelope(1, schema.Status(key="a", value="1")),
                envelope(2, schema.Status(key="a", value="2"), workspace="other"),
                envelope(1, schema.Status(key="a", value="3"), workspace="other"),
                envelope(3, schema.Status(key="a", value="4")),
            ],
        ),
        case(
            "last_seen never moves back, compared as instants across offsets and microseconds",
            fresh(),
            [
                envelope(1, connected("r1"), received=at(10, plus_two)),
                # The same instant written in UTC: not later, so the first spelling stays.
                envelope(2, schema.Scalar(name="loss", value=0.5), run_id="r1", received=at(10)),
                envelope(3, schema.Scalar(name="loss", value=0.4), run_id="r1", received=at(5)),
                envelope(4, schema.LogRecord(message="µs"), run_id="r1", received=at(10.000001)),
                envelope(5, schema.Presence(run_id="r1", state="disconnected"), received=at(7)),
                envelope(6, connected("r2"), received=at(20, minus_half)),
                envelope(
                    7,
                    schema.Presence(run_id="r2", state="disconnected"),
                    received=at(20.5, plus_two),
                ),
            ],
        ),
        case(
            "semaphores, details and the last event replace as a whole",
            fresh(),
            [
                envelope(
                    1,
                    schema.SemaphoresChange(
                        caught=True, has_mutex=True, holder="r1", fence=7, by="ops", reason="db"
                    ),
                ),
                envelope(2, schema.SemaphoresChange(fence=8)),
                envelope(3, schema.SemaphoresChange()),
                envelope(
                    4,
                    schema.DetailsChange(
                        details=schema.WorkspaceDetails(workflow="deploy", current_host="h1")
                    ),
                ),
                envelope(5, schema.DetailsChange(details=schema.WorkspaceDetails())),
                envelope(6, schema.WorkspaceEvent(message="h1 failed", severity="error")),
                envelope(7, schema.WorkspaceEvent(message="<script>alert(1)</script>")),
                envelope(8, schema.Hardware(cpu_percent=12.5)),
                envelope(9, schema.Hyperparameters(values={"lr": 0.1})),
                envelope(10, schema.Custom(name="x", data={"nested": [1, None]})),
            ],
        ),
        case(
            "status keys stop at the bound but known keys still update",
            nearly_full_status,
            [
                envelope(1, schema.Status(key="last", value="fits")),
                envelope(2, schema.Status(key="over", value="ignored")),
                envelope(3, schema.Status(key="k0", value="updated")),
                # Names an object inherits in JavaScript are not keys of the state.
                envelope(4, schema.Status(key="constructor", value="ignored")),
                envelope(5, schema.Status(key="__proto__", value="ignored")),
            ],
        ),
        case(
            "progress names stop at the bound but known names still update",
            nearly_full_progress,
            [
                envelope(1, schema.Progress(name="last", current=1)),
                envelope(2, schema.Progress(name="over", current=1)),
                envelope(3, schema.Progress(name="p0", current=99, total=100)),
                envelope(4, schema.Progress(name="toString", current=1)),
            ],
        ),
        case(
            "keys that are special to JavaScript objects are plain keys",
            fresh(),
            [
                envelope(1, schema.Status(key="__proto__", value="p")),
                envelope(2, schema.Status(key="constructor", value="c")),
                envelope(3, schema.Progress(name="toString", current=1)),
                envelope(4, schema.Status(key="hasOwnProperty", value="h")),
            ],
        ),
    ]


# Generated streams --------------------------------------------------------------------------


def _safe_fence(semaphores: Any) -> Any:
    # Fences are exact in JavaScript numbers up to 2**53 (see app/fold.js).
    return msgspec.structs.replace(semaphores, fence=semaphores.fence % 2**53)


_semaphores = for_struct(schema.WorkspaceSemaphores).map(_safe_fence)
_few_times = st.integers(0, 40).map(lambda seconds: at(seconds))
_times = _few_times | aware_datetimes
_payloads = st.one_of(
    st.builds(schema.Status, key=st.sampled_from(["phase", "host"]), value=st.text(max_size=5)),
    st.builds(
        schema.Progress,
        name=st.sampled_from(["hosts", "epochs"]),
        current=st.floats(0, 100),
        total=st.none() | st.floats(0, 100),
        rate=st.none() | st.floats(0, 5),
    ),
    for_struct(schema.WorkspaceEvent),
    st.builds(
        schema.Presence,
        run_id=st.sampled_from(RUNS),
        state=st.sampled_from(["connected", "disconnected", "expired"]),
        client=st.sampled_from(["", "sdk/1"]),
        actions=st.lists(for_struct(schema.ActionSpec), max_size=1),
    ),
    for_struct(schema.SemaphoresChange).map(_safe_fence),
    for_struct(schema.DetailsChange),
    for_struct(schema.Scalar),
    for_struct(schema.LogRecord),
    for_struct(schema.Hardware),
    for_struct(schema.Hyperparameters),
    for_struct(schema.Custom),
    for_struct(schema.CallRecord),
)


@st.composite
def _initial_states(draw: st.DrawFn) -> schema.WorkspaceState:
    if draw(st.booleans()):
        return fresh()
    workers = tuple(
        msgspec.structs.replace(worker, run_id=run_id)
        for worker, run_id in zip(
            draw(st.lists(for_struct(schema.WorkerEntry), max_size=3)), RUNS, strict=False
        )
    )
    return msgspec.structs.replace(
        fresh(),
        last_offset=draw(st.integers(0, 4)),
        workers=workers,
        semaphores=draw(_semaphores),
        status=draw(st.dictionaries(st.sampled_from(["phase", "other"]), st.text(max_size=4))),
        updated=draw(st.none() | _times),
    )


@st.composite
def _streams(draw: st.DrawFn) -> list[schema.EventMsg]:
    events = []
    offset = 0
    for payload in draw(st.lists(_payloads, min_size=6, max_size=20)):
        # Mostly the next offset; sometimes a jump, sometimes one already applied.
        offset = max(1, offset + draw(st.sampled_from([1, 1, 1, 1, 3, 0, -2])))
        run_id = (
            None
            if isinstance(payload, schema.BrokerPayload)
            else draw(st.none() | st.sampled_from(RUNS))
        )
        events.append(envelope(offset, payload, run_id=run_id, received=draw(_times)))
    return events


def generated_cases() -> list[Wire]:
    cases: list[Wire] = []

    @settings(
        derandomize=True,
        database=None,
        max_examples=GENERATED_CASES,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(initial=_initial_states(), events=_streams())
    def collect(initial: schema.WorkspaceState, events: list[schema.EventMsg]) -> None:
        cases.append(case(f"generated {len(cases) + 1}", initial, events))

    collect()
    return cases


def all_cases() -> list[Wire]:
    return handwritten_cases() + generated_cases()


def write(cases: list[Wire], path: Path = CASES_PATH) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # One case a line, so a change to one case is a one-line diff.
    lines = ",\n".join(json.dumps(item, ensure_ascii=False) for item in cases)
    path.write_text('{"cases": [\n' + lines + "\n]}\n", encoding="utf-8")


def read(path: Path = CASES_PATH) -> list[Wire]:
    cases: list[Wire] = json.loads(path.read_text(encoding="utf-8"))["cases"]
    return cases


if __name__ == "__main__":
    write(all_cases())
