"""The workspace state fold: snapshot at N plus the events after N equals the live state."""

from __future__ import annotations

import datetime
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import schema
from schema._limits import MAX_PROGRESS_BARS, MAX_STATUS_KEYS
from tests.schema.strategies import for_struct

WORKSPACE = "deploy-eu"
START = datetime.datetime(2026, 11, 1, 9, 0, tzinfo=datetime.UTC)
RUNS = ["run-a", "run-b", "run-c"]


def initial() -> schema.WorkspaceState:
    return schema.new_workspace_state(WORKSPACE, epoch=3, created=START)


def envelope(
    offset: int, payload: Any, *, run_id: str | None = None, at: int | None = None
) -> schema.EventMsg:
    time = START + datetime.timedelta(seconds=offset if at is None else at)
    return schema.EventMsg(
        workspace=WORKSPACE,
        offset=offset,
        create_time=time,
        received_time=time,
        payload=payload,
        run_id=run_id,
        seq=offset if run_id else None,
    )


# A stream with few keys, names and runs, so that updates collide and the fold's rules matter.
_payloads = st.one_of(
    st.builds(
        schema.Status, key=st.sampled_from(["phase", "host", "step"]), value=st.text(max_size=5)
    ),
    st.builds(
        schema.Progress,
        name=st.sampled_from(["hosts", "epochs"]),
        current=st.floats(0, 100),
        total=st.none() | st.floats(0, 100),
    ),
    st.builds(
        schema.WorkspaceEvent,
        message=st.text(max_size=8),
        severity=st.sampled_from(["info", "success", "warning", "error"]),
    ),
    st.builds(
        schema.Presence,
        run_id=st.sampled_from(RUNS),
        state=st.sampled_from(["connected", "disconnected", "expired"]),
        client=st.sampled_from(["sdk/1", "sdk/2"]),
        actions=st.lists(for_struct(schema.ActionSpec), max_size=2),
    ),
    for_struct(schema.SemaphoresChange),
    for_struct(schema.DetailsChange),
    for_struct(schema.Scalar),
    for_struct(schema.LogRecord),
    for_struct(schema.Custom),
)


@st.composite
def streams(draw: st.DrawFn) -> list[schema.EventMsg]:
    payloads = draw(st.lists(_payloads, max_size=40))
    events = []
    clock = 0
    for offset, payload in enumerate(payloads, start=1):
        clock += draw(st.integers(0, 3))
        run_id = draw(st.none() | st.sampled_from(RUNS))
        if isinstance(payload, schema.BrokerPayload):
            run_id = None
        events.append(envelope(offset, payload, run_id=run_id, at=clock))
    return events


def snapshot_over_the_wire(
    state: schema.WorkspaceState, codec: schema.Codec
) -> schema.WorkspaceState:
    frame = schema.Subscribed(id=1, sub=1, snapshot=[state], recovered=True)
    decoded = codec.decode_broker_frame(codec.encode(frame))
    assert isinstance(decoded, schema.Subscribed)
    return decoded.snapshot[0]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=streams(),
    split=st.floats(0, 1),
    codec=st.sampled_from([schema.JSON_CODEC, schema.MSGPACK_CODEC]),
)
def test_snapshot_at_any_point_plus_the_rest_equals_the_live_state(
    events: list[schema.EventMsg], split: float, codec: schema.Codec
) -> None:
    live = initial()
    for event in events:
        live = schema.fold_event(live, event)
    cut = int(len(events) * split)
    snapshot = snapshot_over_the_wire(schema.fold_events(initial(), events[:cut]), codec)
    assert schema.fold_events(snapshot, events[cut:]) == live
    assert live.last_offset == len(events)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(events=streams(), start=st.integers(0, 40))
def test_fold_events_equals_folding_one_by_one(events: list[schema.EventMsg], start: int) -> None:
    one_by_one = initial()
    for event in events:
        one_by_one = schema.fold_event(one_by_one, event)
    assert schema.fold_events(initial(), events) == one_by_one
    # From a midpoint, with some of its events repeated (as a resend delivers them).
    middle = schema.fold_events(initial(), events[:start])
    assert schema.fold_events(middle, events[max(0, start - 3) :]) == one_by_one


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(events=streams())
def test_fold_events_hands_over_every_event_that_changes_more_than_the_position(
    events: list[schema.EventMsg],
) -> None:
    changes: list[schema.EventMsg] = []
    schema.fold_events(initial(), events, changes=changes)
    handed = {id(event) for event in changes}
    assert changes == [event for event in events if id(event) in handed]
    state = initial()
    for event in events:
        after = schema.fold_event(state, event)
        if id(event) not in handed:
            # Only the position, the time and a worker's last_seen may have moved.
            moved = ("last_offset", "updated", "workers")
            assert after == msgspec.structs.replace(
                state, **{name: getattr(after, name) for name in moved}
            )
            assert [without_last_seen(w) for w in after.workers] == [
                without_last_seen(w) for w in state.workers
            ]
        state = after


def without_last_seen(worker: schema.WorkerEntry) -> schema.WorkerEntry:
    return msgspec.structs.replace(worker, last_seen=START)


@settings(max_examples=100)
@given(events=streams(), replay_from=st.integers(0, 40))
def test_events_already_folded_change_nothing(
    events: list[schema.EventMsg], replay_from: int
) -> None:
    state = schema.fold_events(initial(), events)
    assert schema.fold_events(state, events[replay_from:]) == state


def test_a_worker_lifecycle() -> None:
    action = schema.ActionSpec(name="set_lr", params=["value"])
    state = schema.fold_events(
        initial(),
        [
            envelope(
                1,
                schema.Presence(run_id="r1", state="connected", client="sdk/0.1", actions=[action]),
            ),
            envelope(2, schema.Status(key="phase", value="train"), run_id="r1"),
        ],
    )
    (worker,) = state.workers
    assert worker.connected
    assert worker.client == "sdk/0.1"
    assert worker.actions == [action]
    assert worker.connected_at == START + datetime.timedelta(seconds=1)
    assert worker.last_seen == START + datetime.timedelta(seconds=2)
    assert state.status == {"phase": "train"}
    assert state.updated == START + datetime.timedelta(seconds=2)

    state = schema.fold_event(
        state, envelope(3, schema.Presence(run_id="r1", state="disconnected"))
    )
    (worker,) = state.workers
    assert not worker.connected
    assert worker.actions == [action]
    assert worker.connected_at == START + datetime.timedelta(seconds=1)

    state = schema.fold_event(state, envelope(4, schema.Presence(run_id="r1", state="expired")))
    assert state.workers == ()
    assert state.last_offset == 4


def test_disconnect_keeps_the_order_of_workers() -> None:
    state = schema.fold_events(
        initial(),
        [
            envelope(i, schema.Presence(run_id=run, state="connected"))
            for i, run in enumerate(RUNS, 1)
        ],
    )
    state = schema.fold_event(
        state, envelope(9, schema.Presence(run_id="run-a", state="disconnected"))
    )
    assert [w.run_id for w in state.workers] == RUNS
    assert [w.connected for w in state.workers] == [False, True, True]


def test_semaphores_details_and_last_event() -> None:
    change = schema.SemaphoresChange(
        caught=True, has_mutex=True, holder="r1", fence=7, by="ops", reason="db"
    )
    details = schema.WorkspaceDetails(workflow="deploy", current_host="h1")
    event = schema.WorkspaceEvent(message="h1 failed", severity="error")
    state = schema.fold_events(
        initial(),
        [
            envelope(1, change),
            envelope(2, details_change := schema.DetailsChange(details=details)),
            envelope(3, event),
        ],
    )
    assert state.semaphores == schema.semaphores_of(change)
    assert state.semaphores == schema.WorkspaceSemaphores(
        caught=True, has_mutex=True, holder="r1", fence=7, by="ops", reason="db"
    )
    assert state.details == details_change.details
    assert state.last_event == event


def test_status_and_progress_stay_bounded_but_known_names_still_update() -> None:
    events = [
        envelope(i, schema.Status(key=f"k{i}", value="v")) for i in range(1, MAX_STATUS_KEYS + 11)
    ]
    state = schema.fold_events(initial(), events)
    assert len(state.status) == MAX_STATUS_KEYS
    assert "k1" in state.status
    assert f"k{MAX_STATUS_KEYS + 1}" not in state.status
    state = schema.fold_event(state, envelope(10_000, schema.Status(key="k1", value="new")))
    assert state.status["k1"] == "new"

    bars = [
        envelope(i, schema.Progress(name=f"p{i}", current=1))
        for i in range(1, MAX_PROGRESS_BARS + 6)
    ]
    assert len(schema.fold_events(initial(), bars).progress) == MAX_PROGRESS_BARS


def test_the_fold_does_not_mutate_earlier_states() -> None:
    first = schema.fold_event(initial(), envelope(1, schema.Status(key="a", value="1")))
    second = schema.fold_event(first, envelope(2, schema.Status(key="a", value="2")))
    assert first.status == {"a": "1"}
    assert second.status == {"a": "2"}


def test_events_of_another_workspace_are_refused() -> None:
    stray = msgspec.structs.replace(
        envelope(1, schema.Status(key="a", value="1")), workspace="other"
    )
    with pytest.raises(ValueError, match="other"):
        schema.fold_event(initial(), stray)
