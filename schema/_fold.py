"""The workspace state fold: ``state + event -> state``, pure and deterministic.

The broker keeps each workspace's live state with it and sends it as the snapshot in
``subscribed``; the SDK applies the events that follow with the same function. Because the
fold depends only on the previous state and the event, a snapshot taken at offset N followed by
the events after N gives exactly the live state.

Events at or below ``state.last_offset`` are ignored, so re-applying a delivered event is
harmless. Memory stays bounded: new status keys and progress names beyond the limits are
ignored, and workers leave the state when their presence expires.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

import msgspec

from ._envelope import EventMsg
from ._limits import MAX_PROGRESS_BARS, MAX_STATUS_KEYS
from ._payloads import (
    CallRecord,
    Custom,
    DetailsChange,
    Hardware,
    Hyperparameters,
    LogRecord,
    Presence,
    Progress,
    Scalar,
    SemaphoresChange,
    Status,
    WorkspaceEvent,
)
from ._state import WorkerEntry, WorkspaceState
from ._workspace import WorkspaceSemaphores

_replace = msgspec.structs.replace
_SEMAPHORE_FIELDS = WorkspaceSemaphores.__struct_fields__


def new_workspace_state(name: str, *, epoch: int, created: datetime.datetime) -> WorkspaceState:
    """The state of a workspace with no events yet."""
    return WorkspaceState(name=name, epoch=epoch, created=created)


def semaphores_of(value: WorkspaceSemaphores) -> WorkspaceSemaphores:
    """The plain semaphores carried by a ``semaphores`` event or push."""
    if type(value) is WorkspaceSemaphores:
        return value
    return WorkspaceSemaphores(**{name: getattr(value, name) for name in _SEMAPHORE_FIELDS})


def fold_event(state: WorkspaceState, event: EventMsg) -> WorkspaceState:
    """Apply one event of ``state.name``'s stream and return the new state."""
    if event.offset <= state.last_offset:
        return state
    if event.workspace != state.name:
        raise ValueError(f"event of workspace {event.workspace!r} folded into {state.name!r}")
    now = event.received_time
    workers = state.workers
    if event.run_id is not None:
        workers = _touch(workers, event.run_id, now)
    changes: dict[str, object] = {}
    payload = event.payload
    match payload:
        case Status(key=key, value=value):
            if key in state.status or len(state.status) < MAX_STATUS_KEYS:
                changes["status"] = {**state.status, key: value}
        case Progress(name=name):
            if name in state.progress or len(state.progress) < MAX_PROGRESS_BARS:
                changes["progress"] = {**state.progress, name: payload}
        case WorkspaceEvent():
            changes["last_event"] = payload
        case DetailsChange(details=details):
            changes["details"] = details
        case SemaphoresChange():
            changes["semaphores"] = semaphores_of(payload)
        case Presence():
            workers = _apply_presence(workers, payload, now)
    return _replace(state, last_offset=event.offset, updated=now, workers=workers, **changes)


def fold_events(
    state: WorkspaceState,
    events: Iterable[EventMsg],
    *,
    changes: list[EventMsg] | None = None,
) -> WorkspaceState:
    """Apply events in order; the same result as ``fold_event`` one by one, made faster.

    Most events (logs, scalars, custom data) change nothing but the position, the time and
    their worker's last_seen: a run of them is applied as one change instead of one per event.
    ``changes``, when given, gets each of the others (status, progress, workspace events,
    details, semaphores, presence), in order: a caller that looks only at those (the broker's
    notification rules) is spared a second pass over every event.
    """
    last_plain: EventMsg | None = None
    seen: dict[str, datetime.datetime] = {}
    for event in events:
        if type(event.payload) in _PLAIN and event.workspace == state.name:
            position = state.last_offset if last_plain is None else last_plain.offset
            if event.offset > position:
                last_plain = event
                if event.run_id is not None:
                    previous = seen.get(event.run_id)
                    if previous is None or previous < event.received_time:
                        seen[event.run_id] = event.received_time
            continue
        if last_plain is not None:
            state = _fold_plain(state, last_plain, seen)
            last_plain = None
            seen.clear()
        if changes is not None:
            changes.append(event)
        state = fold_event(state, event)
    return state if last_plain is None else _fold_plain(state, last_plain, seen)


_PLAIN = frozenset({LogRecord, Scalar, Hyperparameters, Hardware, Custom, CallRecord})
"""Payload kinds that change no part of the state but the position, time and last_seen."""


def _fold_plain(
    state: WorkspaceState, last: EventMsg, seen: dict[str, datetime.datetime]
) -> WorkspaceState:
    workers = state.workers
    for run_id, time in seen.items():
        workers = _touch(workers, run_id, time)
    return _replace(state, last_offset=last.offset, updated=last.received_time, workers=workers)


def _touch(
    workers: tuple[WorkerEntry, ...], run_id: str, now: datetime.datetime
) -> tuple[WorkerEntry, ...]:
    for index, worker in enumerate(workers):
        if worker.run_id == run_id:
            if worker.last_seen >= now:
                return workers
            touched = _replace(worker, last_seen=now)
            return (*workers[:index], touched, *workers[index + 1 :])
    return workers


def _apply_presence(
    workers: tuple[WorkerEntry, ...], presence: Presence, now: datetime.datetime
) -> tuple[WorkerEntry, ...]:
    others = tuple(worker for worker in workers if worker.run_id != presence.run_id)
    if presence.state == "expired":
        return others
    if presence.state == "connected":
        entry = WorkerEntry(
            run_id=presence.run_id,
            connected=True,
            connected_at=now,
            last_seen=now,
            client=presence.client,
            actions=presence.actions,
        )
        return (*others, entry)
    # Disconnected: the run stays listed, offline and in place, until it returns or expires.
    return tuple(
        _replace(worker, connected=False, last_seen=max(worker.last_seen, now))
        if worker.run_id == presence.run_id
        else worker
        for worker in workers
    )
