"""The SQLite store keeps each sink's queue as batches (a real SQLite file): one row per sink
and commit, the oldest dropped by moving the sink's head, the ids removed out of order kept
beside it, the row gone once all its ids are.
Whatever the batches, the queue reads as one queue: the ids and notifications left, oldest
first, never a removed one, the oldest dropped past the bound as ``dropped_past_bound`` says; a
model of the queue checks every step."""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker._notify import Notification, SinkQueueStats
from broker._notify_queue import dropped_past_bound
from broker._sqlite_store import DATABASE_NAME, SQLiteStore
from broker._store import Commit
from tests.broker.store_cases import NAME, T0


def note(number: int, *, sink: str = "slack") -> Notification:
    """The ``number``-th notification made for ``sink`` (the stores are told nothing of it)."""
    return Notification(
        key=f"{NAME}/1/{number}/{sink}",
        sink=sink,
        trigger="event",
        workspace=NAME,
        epoch=1,
        at=T0,
        summary=f"{NAME} said {number}",
        coalesce=NAME,
        offset=number,
        severity="error",
    )


def notes(first: int, last: int, *, sink: str = "slack") -> list[Notification]:
    return [note(number, sink=sink) for number in range(first, last + 1)]


def numbered(first: int, last: int, *, sink: str = "slack") -> list[tuple[int, Notification]]:
    """Queued with ids ``first`` .. ``last``: the notifications of those numbers."""
    return [(number, note(number, sink=sink)) for number in range(first, last + 1)]


def queue_of(store: SQLiteStore, sink: str = "slack") -> list[tuple[int, Notification]]:
    return [(item.id, item.notification) for item in store.notify_queue(sink, 1_000_000)]


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path / DATABASE_NAME) as conn:
        found = conn.execute(sql).fetchall()
    conn.close()
    return found


def batches(path: Path) -> list[tuple[Any, ...]]:
    return rows(path, "SELECT sink, first_id, count FROM notifications ORDER BY sink, first_id")


def removed(path: Path) -> list[tuple[Any, ...]]:
    return rows(path, "SELECT sink, id FROM notify_removed ORDER BY sink, id")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path)
    yield opened
    opened.close()


def test_a_commit_writes_one_row_per_sink(store: SQLiteStore, tmp_path: Path) -> None:
    store.commit(Commit(notifications=[*notes(1, 3), *notes(1, 2, sink="hook"), note(4)]))
    store.commit(Commit(notifications=notes(5, 6)))

    assert batches(tmp_path) == [("hook", 1, 2), ("slack", 1, 4), ("slack", 5, 2)]
    assert queue_of(store) == numbered(1, 6)
    assert queue_of(store, "hook") == numbered(1, 2, sink="hook")


def test_ids_removed_out_of_order_stay_removed_and_a_batch_goes_once_all_are(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path)
    store.commit(Commit(notifications=notes(1, 5)))
    store.commit(Commit(notifications=notes(6, 8)))

    # Another workspace's group is removed first, skipping over what stays.
    store.notify_done("slack", [2, 4, 7], "sender")

    assert [id for id, _ in queue_of(store)] == [1, 3, 5, 6, 8]
    assert removed(tmp_path) == [("slack", 2), ("slack", 4), ("slack", 7)]
    assert batches(tmp_path) == [("slack", 1, 5), ("slack", 6, 3)]
    # Durable: a store opened anew reads the same queue and counts it alike.
    store.close()
    store = SQLiteStore(tmp_path)
    try:
        assert queue_of(store) == [
            (1, note(1)),
            (3, note(3)),
            (5, note(5)),
            (6, note(6)),
            (8, note(8)),
        ]
        assert store.notify_stats() == {"slack": SinkQueueStats(queued=5, dropped=0)}
        # Removed twice, and the rest of the first batch: the batch and its removed ids go.
        store.notify_done("slack", [1, 2, 3, 5], "sender")
        assert batches(tmp_path) == [("slack", 6, 3)]
        assert removed(tmp_path) == [("slack", 7)]
        assert queue_of(store) == [(6, note(6)), (8, note(8))]
        assert store.notify_stats() == {"slack": SinkQueueStats(queued=2, dropped=0)}
        # A limit that ends inside a batch, past a removed id.
        assert [item.id for item in store.notify_queue("slack", 1)] == [6]
        store.notify_done("slack", [6, 8], "sender")
        assert batches(tmp_path) == []
        assert removed(tmp_path) == []
        assert store.notify_stats() == {"slack": SinkQueueStats(queued=0, dropped=0)}
    finally:
        store.close()


def test_the_bound_drops_the_oldest_left_across_batches(store: SQLiteStore, tmp_path: Path) -> None:
    store.notify_limits({"slack": 6})
    store.commit(Commit(notifications=notes(1, 4)))
    store.notify_done("slack", [2, 3], "sender")
    store.commit(Commit(notifications=notes(5, 8)))
    assert store.notify_stats() == {"slack": SinkQueueStats(queued=6, dropped=0)}

    # Three past the bound: 1 and 4 (the rest of the first batch), then 5.
    store.commit(Commit(notifications=notes(9, 11)))

    assert queue_of(store) == numbered(6, 11)
    assert store.notify_stats() == {"slack": SinkQueueStats(queued=6, dropped=3)}
    assert batches(tmp_path) == [("slack", 5, 4), ("slack", 9, 3)]
    # The oldest are dropped by moving the sink's head: no id is kept for them.
    assert removed(tmp_path) == []
    assert rows(tmp_path, "SELECT name, head FROM notify_sinks") == [("slack", 6)]


def test_a_commit_past_the_bound_by_itself_writes_only_what_it_keeps(
    store: SQLiteStore, tmp_path: Path
) -> None:
    store.notify_limits({"slack": 3})
    store.commit(Commit(notifications=notes(1, 2)))
    store.notify_done("slack", [1], "sender")

    store.commit(Commit(notifications=notes(3, 7)))

    assert queue_of(store) == numbered(5, 7)
    assert store.notify_stats() == {"slack": SinkQueueStats(queued=3, dropped=3)}
    assert batches(tmp_path) == [("slack", 5, 3)]
    assert removed(tmp_path) == []


# One step on the queue: a commit of this many notifications, the removal of these ids (an
# id may be one never given, or one removed already), or the store opened anew.
_steps = st.one_of(
    st.tuples(st.just("commit"), st.integers(min_value=0, max_value=7)),
    st.tuples(st.just("done"), st.lists(st.integers(min_value=0, max_value=40), max_size=8)),
    st.tuples(st.just("reopen"), st.just(0)),
)


@settings(max_examples=60, deadline=None)
@given(bound=st.integers(min_value=1, max_value=24), steps=st.lists(_steps, max_size=25))
def test_the_queue_is_what_a_model_of_it_says(
    bound: int, steps: list[tuple[str, int | list[int]]]
) -> None:
    model: dict[int, Notification] = {}
    given_ids = dropped = 0
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory)
        store = SQLiteStore(path)
        store.notify_limits({"slack": bound})
        try:
            for action, argument in steps:
                if action == "commit":
                    assert isinstance(argument, int)
                    made = notes(given_ids + 1, given_ids + argument)
                    store.commit(Commit(notifications=made))
                    excess = dropped_past_bound(len(model), len(made), bound)
                    for notification in made:
                        given_ids += 1
                        model[given_ids] = notification
                    for id in sorted(model)[:excess]:
                        del model[id]
                    dropped += excess
                elif action == "done":
                    assert isinstance(argument, list)
                    assert store.notify_done("slack", argument, "sender")
                    for id in argument:
                        model.pop(id, None)
                else:
                    store.close()
                    store = SQLiteStore(path)
                    store.notify_limits({"slack": bound})
                assert queue_of(store) == sorted(model.items())
                if given_ids:
                    assert store.notify_stats() == {
                        "slack": SinkQueueStats(queued=len(model), dropped=dropped)
                    }
                # No row outlives its ids, and no removed id lies outside a batch or below
                # the head.
                ((head,),) = rows(path, "SELECT head FROM notify_sinks") or [(1,)]
                assert all(id >= head for _, id in removed(path))
                assert all(id >= head for id in model)
                spans = [(first, first + count) for _, first, count in batches(path)]
                assert all(
                    any(first <= model_id < end for first, end in spans) for model_id in model
                )
                assert all(
                    any(first <= id < end for first, end in spans) for _, id in removed(path)
                )
                assert all(any(first <= id < end for id in model) for first, end in spans)
        finally:
            store.close()


@pytest.mark.parametrize(
    ("queued", "incoming", "bound", "dropped"),
    [
        (0, 5, 10, 0),
        (5, 5, 10, 0),  # exactly full
        (10, 1, 10, 2),  # 9 left: an eighth of 10 is 1
        (0, 30, 10, 21),  # a commit past the bound by itself
        (9_999, 2, 10_000, 1_251),  # 8,750 left
        (3, 1, 3, 1),  # under 8, an eighth is nothing: exact
        (1, 1, 1, 1),
    ],
)
def test_past_the_bound_an_eighth_of_it_is_freed(
    queued: int, incoming: int, bound: int, dropped: int
) -> None:
    assert dropped_past_bound(queued, incoming, bound) == dropped
