"""The cases every Store must pass, run on SQLite (real database files) and on Redis (the
tests' server): round trips, epochs, paging, history and retention. What only one store does
(SQLite's schema versions, Redis's claims and scripts) is tested beside it, in
test_sqlite_store.py and test_redis_store.py."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Literal

import pytest

from broker import _redis_store, _sqlite_store
from broker._redis_store import RedisStore
from broker._redis_url import parse_redis_url
from broker._sqlite_store import SQLiteStore
from broker._store import Commit, HistoryFilter, Store, StoredWorkspace
from schema import EventMsg
from tests.broker.store_cases import (
    LONG_AGO,
    MINUTE,
    NAME,
    T0,
    batch,
    by_key,
    fold,
    history_cases,
    make_event,
    offsets,
    ten_events,
)
from tests.redis_server import RedisServer

StoreKind = Literal["sqlite", "redis"]
SMALL_CHUNKS = 3
"""Events per chunk that make every test span chunk boundaries: reads, history and retention
that start, stop or cut inside a chunk."""


@pytest.fixture(
    params=[
        ("sqlite", _sqlite_store.CHUNK_EVENTS),
        ("sqlite", SMALL_CHUNKS),
        ("redis", _redis_store.CHUNK_EVENTS),
        ("redis", SMALL_CHUNKS),
    ],
    ids=["sqlite-chunks", "sqlite-small-chunks", "redis-chunks", "redis-small-chunks"],
)
def store(
    tmp_path: pathlib.Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Store]:
    kind: StoreKind
    kind, chunk_events = request.param
    opened: SQLiteStore | RedisStore
    if kind == "sqlite":
        opened = SQLiteStore(tmp_path / "data", chunk_events=chunk_events)
    else:
        # Only the Redis cases start the session's server (emptied after each test).
        server: RedisServer = request.getfixturevalue("emptied_redis")
        monkeypatch.setattr(_redis_store, "CHUNK_EVENTS", chunk_events)
        opened = RedisStore(parse_redis_url(server.url, {}), node="n1")
    yield opened
    opened.close()


def test_a_new_store_holds_nothing(store: Store) -> None:
    # That each class is a Store is checked by mypy where the fixture yields it as one.
    assert store.load() == []
    assert store.read(NAME, 1, 0, 10) == []


def test_commit_and_load_round_trip(store: Store) -> None:
    events = [make_event(n, run_id="r1", seq=n) for n in range(1, 6)]
    store.commit(batch(NAME, 3, events, run_seqs={"r1": 5}))
    store.commit(Commit(states={("idle", 1): fold("idle", 1, [])}))

    loaded = by_key(store.load())

    assert set(loaded) == {(NAME, 3), ("idle", 1)}
    assert loaded[NAME, 3] == StoredWorkspace(
        state=fold(NAME, 3, events), first_offset=1, run_seqs={"r1": 5}
    )
    # A workspace without stored events starts after its state.
    assert loaded["idle", 1] == StoredWorkspace(
        state=fold("idle", 1, []), first_offset=1, run_seqs={}
    )


def test_run_seq_never_decreases(store: Store) -> None:
    store.commit(batch(NAME, 1, [], run_seqs={"r1": 5, "r2": 1}))
    store.commit(batch(NAME, 1, [], run_seqs={"r1": 3, "r2": 2}))
    assert store.load()[0].run_seqs == {"r1": 5, "r2": 2}


def test_delete_then_recreate_with_a_new_epoch(store: Store) -> None:
    old = [make_event(n, run_id="r1", seq=n) for n in range(1, 6)]
    store.commit(batch(NAME, 1, old, run_seqs={"r1": 5}))
    store.commit(batch("other", 1, [make_event(1, workspace="other")]))

    # Same offsets as the old epoch: they only fit because the delete is applied first.
    new = [make_event(n) for n in range(1, 3)]
    store.commit(batch(NAME, 2, new, run_seqs={"r1": 1}, deleted=[(NAME, 1), ("never", 1)]))

    loaded = by_key(store.load())
    assert set(loaded) == {(NAME, 2), ("other", 1)}
    assert loaded[NAME, 2].run_seqs == {"r1": 1}
    assert loaded[NAME, 2].state.last_offset == 2
    assert store.read(NAME, 1, 0, 100) == []
    assert store.read(NAME, 2, 0, 100) == new
    assert offsets(store.read("other", 1, 0, 100)) == [1]

    store.commit(Commit(deleted=[(NAME, 2)]))
    assert set(by_key(store.load())) == {("other", 1)}
    assert store.history(HistoryFilter(NAME, 2)) == ([], False)


def test_read_pages_in_offset_order(store: Store) -> None:
    events = [make_event(n) for n in range(1, 11)]
    store.commit(batch(NAME, 1, events[:6]))
    store.commit(batch(NAME, 1, events[6:], before=events[:6]))

    pages = []
    after = 0
    while page := store.read(NAME, 1, after, 4):
        pages.append(offsets(page))
        after = page[-1].offset
    assert pages == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]
    assert store.read(NAME, 1, 3, 2) == events[3:5]
    assert store.read(NAME, 1, 10, 5) == []


def test_read_of_an_unknown_workspace_or_epoch_is_empty(store: Store) -> None:
    store.commit(batch(NAME, 1, [make_event(1)]))
    assert store.read("unknown", 1, 0, 10) == []
    assert store.read(NAME, 2, 0, 10) == []


@pytest.fixture
def ten(store: Store) -> list[EventMsg]:
    """Offsets 1-10 of :func:`ten_events`, stored."""
    events = ten_events()
    store.commit(batch(NAME, 1, events, run_seqs={"r1": 9}))
    return events


@history_cases
def test_history(
    store: Store,
    ten: list[EventMsg],
    query: HistoryFilter,
    expected: list[int],
    more: bool,
) -> None:
    events, has_more = store.history(query)
    assert (offsets(events), has_more) == (expected, more)
    assert events == [ten[offset - 1] for offset in expected]


def test_trim_by_count(store: Store) -> None:
    events = [make_event(n) for n in range(1, 11)]
    store.commit(batch(NAME, 1, events))
    store.commit(batch("small", 1, [make_event(1, workspace="small")]))
    state_before = by_key(store.load())[NAME, 1].state

    trimmed = store.trim(max_events=3, max_age=LONG_AGO, now=T0)

    assert trimmed == {(NAME, 1): 8}
    assert offsets(store.read(NAME, 1, 0, 100)) == [8, 9, 10]
    loaded = by_key(store.load())
    assert loaded[NAME, 1].first_offset == 8
    assert loaded[NAME, 1].state == state_before
    assert loaded["small", 1].first_offset == 1
    assert store.trim(max_events=3, max_age=LONG_AGO, now=T0) == {}


def test_trim_by_age(store: Store) -> None:
    # Offset n is received at T0 + n minutes.
    store.commit(batch(NAME, 1, [make_event(n) for n in range(1, 11)]))

    trimmed = store.trim(max_events=1000, max_age=5 * MINUTE, now=T0 + 10 * MINUTE)

    # Offset 5 was received exactly at the cut-off, so it stays.
    assert trimmed == {(NAME, 1): 5}
    assert offsets(store.read(NAME, 1, 0, 100)) == [5, 6, 7, 8, 9, 10]
    assert store.load()[0].first_offset == 5


def test_trim_takes_the_stricter_of_count_and_age(store: Store) -> None:
    store.commit(batch(NAME, 1, [make_event(n) for n in range(1, 11)]))
    assert store.trim(max_events=2, max_age=5 * MINUTE, now=T0 + 10 * MINUTE) == {(NAME, 1): 9}
    assert store.trim(max_events=2, max_age=0 * MINUTE, now=T0 + 10 * MINUTE) == {(NAME, 1): 10}


def test_trim_of_every_event_leaves_the_state(store: Store) -> None:
    events = [make_event(n) for n in range(1, 6)]
    store.commit(batch(NAME, 1, events))

    assert store.trim(max_events=1000, max_age=MINUTE, now=T0 + 60 * MINUTE) == {(NAME, 1): 6}

    assert store.read(NAME, 1, 0, 100) == []
    assert store.history(HistoryFilter(NAME, 1)) == ([], False)
    assert store.load() == [
        StoredWorkspace(state=fold(NAME, 1, events), first_offset=6, run_seqs={})
    ]
    # The stream carries on after the trimmed offsets.
    store.commit(batch(NAME, 1, [make_event(6)], before=events))
    assert offsets(store.read(NAME, 1, 0, 100)) == [6]


def test_trim_by_age_only_removes_a_prefix(store: Store) -> None:
    # Receive times stepping backwards: offset 4 is old but sits behind young offset 3.
    minutes = {1: 1, 2: 2, 3: 9, 4: 3, 5: 10}
    events = [make_event(n, received=T0 + m * MINUTE) for n, m in minutes.items()]
    store.commit(batch(NAME, 1, events))

    assert store.trim(max_events=1000, max_age=5 * MINUTE, now=T0 + 10 * MINUTE) == {(NAME, 1): 3}
    assert offsets(store.read(NAME, 1, 0, 100)) == [3, 4, 5]
