from __future__ import annotations

import datetime

import schema
from sdk._cursors import SubscriptionCursors

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def state(name: str, epoch: int, last: int) -> schema.WorkspaceState:
    return schema.WorkspaceState(name=name, epoch=epoch, created=T0, last_offset=last)


def event(name: str, offset: int) -> schema.EventMsg:
    return schema.EventMsg(
        workspace=name,
        offset=offset,
        create_time=T0,
        received_time=T0,
        payload=schema.Status(key="k", value="v"),
    )


def test_latest_resumes_after_the_snapshot_even_when_nothing_arrived() -> None:
    cursors = SubscriptionCursors("latest")
    assert cursors.start() == "latest"
    cursors.subscribed([state("a", 1, 50), state("b", 2, 0)])
    assert cursors.start() == {"a": schema.Cursor(1, 50), "b": schema.Cursor(2, 0)}
    assert not cursors.accept(event("a", 50))
    assert cursors.accept(event("a", 51))
    assert not cursors.accept(event("a", 51))
    assert cursors.start()["a"] == schema.Cursor(1, 51)  # type: ignore[index]


def test_earliest_names_only_what_was_delivered() -> None:
    cursors = SubscriptionCursors("earliest")
    cursors.subscribed([state("a", 1, 50)])
    assert cursors.start() == {}
    assert cursors.accept(event("a", 7))
    assert cursors.start() == {"a": schema.Cursor(1, 7)}


def test_joined_removed_recreated_and_gaps() -> None:
    cursors = SubscriptionCursors({"a": schema.Cursor(1, 10)})
    assert cursors.start() == {"a": schema.Cursor(1, 10)}
    cursors.subscribed([state("a", 1, 30)])
    assert cursors.start() == {"a": schema.Cursor(1, 10)}
    cursors.skip_to("a", 20)
    assert not cursors.accept(event("a", 20))
    assert cursors.accept(event("a", 21))
    cursors.joined(state("new", 5, 0))
    assert cursors.accept(event("new", 1))
    cursors.removed("new")
    assert not cursors.accept(event("new", 2))
    # Re-created under a new epoch: the old cursor is void, the new epoch is read from the start.
    cursors.subscribed([state("a", 2, 3)])
    assert cursors.start() == {}
    assert cursors.accept(event("a", 1))
