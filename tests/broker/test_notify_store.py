"""The notification queues of both stores (a real SQLite file, a real Redis server): queued in
the commit of their events, ordered and numbered per sink, bounded with a durable count of the
dropped, removed by id under the sink's sender lease."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from broker._notify import Notification, SinkQueueStats
from broker._notify_queue import DEFAULT_BOUND
from broker._redis_store import RedisStore, StoreConflictError
from broker._redis_url import parse_redis_url
from broker._sqlite_store import DATABASE_NAME, SCHEMA_VERSION, SQLiteStore
from broker._store import Commit, Store
from broker._threads import StoreThreads
from broker._writer import GroupCommitWriter
from schema import EventMsg
from tests.broker.store_cases import LONG_AGO, NAME, T0, batch, fold, make_event, note, offsets
from tests.redis_server import RedisServer

WAIT_S = 15.0
"""The longest a test waits for any one condition before it fails."""


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Return once ``condition()`` holds (the server signals nothing: it is asked every few
    milliseconds); fail after :data:`WAIT_S`."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        threading.Event().wait(0.005)


def notes_of(events: Sequence[EventMsg], *, sink: str = "slack") -> list[Notification]:
    return [
        note(event.offset, sink=sink, workspace=event.workspace, event=event) for event in events
    ]


def queued(store: Store, sink: str = "slack", limit: int = 100_000) -> list[Notification]:
    return [item.notification for item in store.notify_queue(sink, limit)]


def ids(store: Store, sink: str = "slack") -> list[int]:
    return [item.id for item in store.notify_queue(sink, 100_000)]


@dataclass
class Backend:
    """Opens stores of one kind on one database: a SQLite data directory, or a Redis server
    of the test's own (so that it can be restarted)."""

    path: Path
    server: RedisServer | None
    opened: list[Store] = field(default_factory=list)

    def open(self, *, node: str = "n1") -> Store:
        store: Store
        if self.server is None:
            store = SQLiteStore(self.path)
        else:
            store = RedisStore(parse_redis_url(self.server.url, {}), node=node)
        self.opened.append(store)
        return store

    def restart(self, *, node: str = "n1") -> Store:
        """Every store closed, the Redis server killed and started again on its AOF, and the
        store opened anew."""
        self.close()
        if self.server is not None:
            self.server.restart()
        return self.open(node=node)

    def close(self) -> None:
        for store in self.opened:
            store.close()
        self.opened.clear()


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    server: RedisServer | None = None
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
    opened = Backend(tmp_path / "data", server)
    yield opened
    opened.close()


@pytest.fixture
def store(backend: Backend) -> Store:
    return backend.open()


# -- both stores -------------------------------------------------------------------------------


def test_a_commit_queues_its_notifications_with_its_events_in_order(store: Store) -> None:
    first = [make_event(n) for n in (1, 2, 3)]
    second = [make_event(n) for n in (4, 5)]
    store.commit(replace(batch(NAME, 1, first), notifications=notes_of(first)))
    store.commit(
        replace(
            batch(NAME, 1, second, before=first),
            notifications=notes_of(second),
        )
    )

    assert offsets(store.read(NAME, 1, 0, 10)) == [1, 2, 3, 4, 5]
    assert queued(store) == notes_of([*first, *second])
    numbers = ids(store)
    assert numbers == sorted(set(numbers))
    # Oldest first, up to the limit.
    assert [item.notification.offset for item in store.notify_queue("slack", 2)] == [1, 2]
    assert store.notify_queue("slack", 0) == []
    assert store.notify_queue("slack", -1) == []
    assert store.notify_stats() == {"slack": SinkQueueStats(queued=5, dropped=0)}


def test_each_sink_has_its_own_queue_and_ids(store: Store) -> None:
    events = [make_event(n) for n in (1, 2)]
    other = [make_event(1, workspace="other")]
    mixed = [
        note(1, sink="slack", event=events[0]),
        note(1, sink="hook", event=events[0]),
        note(1, sink="hook", workspace="other"),
        note(2, sink="slack", event=events[1]),
    ]
    store.commit(
        Commit(
            events=[*events, *other],
            states={(NAME, 1): fold(NAME, 1, events), ("other", 1): fold("other", 1, other)},
            notifications=mixed,
        )
    )

    assert queued(store, "slack") == [mixed[0], mixed[3]]
    assert queued(store, "hook") == [mixed[1], mixed[2]]
    assert ids(store, "slack") == [1, 2]
    assert ids(store, "hook") == [1, 2]
    assert queued(store, "nobody") == []
    assert store.notify_stats() == {
        "slack": SinkQueueStats(queued=2, dropped=0),
        "hook": SinkQueueStats(queued=2, dropped=0),
    }


def test_a_commit_may_queue_notifications_without_events(store: Store) -> None:
    store.commit(batch(NAME, 1, [make_event(1)]))
    stall = note(None)

    store.commit(Commit(notifications=[stall]))

    assert queued(store) == [stall]
    assert offsets(store.read(NAME, 1, 0, 10)) == [1]


def test_redis_a_notification_queued_again_while_it_waits_is_stored_once(
    redis_stores: Callable[..., RedisStore],
) -> None:
    # On Redis a commit of notifications alone is sent again after a lost reply; keys are
    # unique by how they are made, so the embedded store, which has no such resend, keeps
    # no index of them.
    store = redis_stores()
    stall = note(None)
    store.commit(Commit(notifications=[stall, stall]))
    store.commit(Commit(notifications=[stall]))

    assert queued(store) == [stall]
    assert store.notify_stats()["slack"].queued == 1


def test_past_the_bound_the_oldest_are_dropped_and_counted_across_a_restart(
    backend: Backend,
) -> None:
    store = backend.open()
    store.notify_limits({"slack": 3, "hook": 10})
    events = [make_event(n) for n in range(1, 6)]
    store.commit(
        replace(
            batch(NAME, 1, events),
            notifications=[*notes_of(events), *notes_of(events, sink="hook")],
        )
    )

    assert queued(store) == notes_of(events[2:])
    assert ids(store) == [3, 4, 5]
    assert store.notify_stats() == {
        "slack": SinkQueueStats(queued=3, dropped=2),
        "hook": SinkQueueStats(queued=5, dropped=0),
    }

    store = backend.restart()
    assert store.notify_stats() == {
        "slack": SinkQueueStats(queued=3, dropped=2),
        "hook": SinkQueueStats(queued=5, dropped=0),
    }
    store.notify_limits({"slack": 3})
    more = [make_event(6)]
    store.commit(replace(batch(NAME, 1, more, before=events), notifications=notes_of(more)))
    assert ids(store) == [4, 5, 6]
    assert store.notify_stats()["slack"] == SinkQueueStats(queued=3, dropped=3)


def test_a_sink_without_a_limit_is_bounded_at_ten_thousand(store: Store) -> None:
    store.notify_limits({"hook": 1})
    many = [note(n) for n in range(1, DEFAULT_BOUND + 3)]

    store.commit(Commit(notifications=many))

    # Past the bound the oldest go until an eighth of it is free: 8,750 are left.
    assert DEFAULT_BOUND == 10_000
    assert store.notify_stats()["slack"] == SinkQueueStats(queued=8_750, dropped=1_252)
    assert [item.notification for item in store.notify_queue("slack", 1)] == [many[1_252]]
    store.commit(Commit(notifications=many[:1_250]))
    assert store.notify_stats()["slack"] == SinkQueueStats(queued=10_000, dropped=1_252)
    store.commit(Commit(notifications=[many[1_250]]))
    assert store.notify_stats()["slack"] == SinkQueueStats(queued=8_750, dropped=2_503)


def test_ids_go_on_after_a_restart_that_finds_a_sink_with_its_queue_emptied(
    backend: Backend,
) -> None:
    store = backend.open()
    store.commit(Commit(notifications=[note(1), note(2)]))
    assert store.notify_lease("slack", "sender", 30.0)
    assert store.notify_done("slack", [1, 2], "sender")

    store = backend.restart()
    assert store.notify_stats() == {"slack": SinkQueueStats(queued=0, dropped=0)}
    store.commit(Commit(notifications=[note(3)]))
    assert ids(store) == [3]
    assert store.notify_lease("slack", "sender", 30.0)
    assert store.notify_done("slack", [3], "sender")
    assert ids(store) == []


def test_notify_done_removes_exactly_the_ids_given(store: Store) -> None:
    events = [make_event(n) for n in range(1, 6)]
    store.commit(replace(batch(NAME, 1, events), notifications=notes_of(events)))
    assert store.notify_lease("slack", "sender", 30.0)

    # 2 and 4, and ids that were never queued.
    assert store.notify_done("slack", [2, 4, 99, 0, -1], "sender")

    assert ids(store) == [1, 3, 5]
    assert queued(store) == notes_of([events[0], events[2], events[4]])
    assert store.notify_done("slack", [1, 3, 5], "sender")
    assert queued(store) == []
    assert store.notify_stats() == {"slack": SinkQueueStats(queued=0, dropped=0)}
    # Ids go on from the last one given: a sender's ids never name a newer notification.
    store.commit(Commit(notifications=[note(None)]))
    assert ids(store) == [6]


def test_deleting_a_workspace_leaves_its_queued_notifications(store: Store) -> None:
    events = [make_event(n) for n in (1, 2)]
    store.commit(replace(batch(NAME, 1, events), notifications=notes_of(events)))

    store.commit(Commit(deleted=[(NAME, 1)]))

    assert store.load() == []
    assert queued(store) == notes_of(events)


@pytest.mark.asyncio
async def test_a_group_commit_queues_its_submissions_notifications_in_order(
    backend: Backend,
) -> None:
    store = backend.open()
    commits: list[Commit] = []
    writer = GroupCommitWriter(store, commits.append, max_events=100, threads=StoreThreads())
    runner = asyncio.create_task(writer.run())
    # The writer's thread is held in a job while three submissions queue: one commit takes them.
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        entered.set()
        release.wait(WAIT_S)

    held = writer.in_writer(hold)
    assert await asyncio.to_thread(entered.wait, WAIT_S)
    events = [make_event(n) for n in range(1, 4)]
    other = make_event(1, workspace="other")
    done = [
        writer.submit(
            events=events[:2],
            states={(NAME, 1): fold(NAME, 1, events[:2])},
            notifications=notes_of(events[:2]),
        ),
        writer.submit(
            events=[other],
            states={("other", 1): fold("other", 1, [other])},
            notifications=notes_of([other]),
        ),
        writer.submit(
            events=events[2:],
            states={(NAME, 1): fold(NAME, 1, events)},
            notifications=notes_of(events[2:]),
        ),
    ]
    release.set()
    await held
    await asyncio.gather(*done)
    writer.stop()
    await runner

    (commit,) = commits
    assert list(commit.notifications) == notes_of([*events[:2], other, events[2]])
    by_workspace = {
        name: [n for n in queued(store) if n.workspace == name] for name in (NAME, "other")
    }
    assert by_workspace == {NAME: notes_of(events), "other": notes_of([other])}


# -- SQLite --------------------------------------------------------------------------------------


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(tmp_path)
    yield store
    store.close()


def test_sqlite_a_commit_that_fails_queues_nothing_and_stores_nothing(
    sqlite_store: SQLiteStore, tmp_path: Path
) -> None:
    store = sqlite_store
    first = [make_event(1)]
    store.commit(replace(batch(NAME, 1, first), notifications=notes_of(first)))
    before = store.load()

    # Its events fail (offset 1 again): its notifications are not queued.
    again = [make_event(2), make_event(1)]
    with pytest.raises(sqlite3.IntegrityError):
        store.commit(
            replace(
                batch(NAME, 1, again, before=first),
                notifications=notes_of(again, sink="hook"),
            )
        )
    assert queued(store, "hook") == []
    assert store.notify_stats() == {"slack": SinkQueueStats(queued=1, dropped=0)}

    # Its notifications fail (refused by the database): its events are not stored.
    with sqlite3.connect(tmp_path / DATABASE_NAME) as conn:
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON notifications WHEN NEW.sink = 'hook'"
            " BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    conn.close()
    second = [make_event(2)]
    with pytest.raises(sqlite3.IntegrityError, match="refused"):
        store.commit(
            replace(
                batch(NAME, 1, second, before=first),
                notifications=notes_of(second, sink="hook"),
            )
        )
    assert store.load() == before
    assert offsets(store.read(NAME, 1, 0, 10)) == [1]


def test_sqlite_the_sender_lease_is_always_granted(sqlite_store: SQLiteStore) -> None:
    store = sqlite_store
    store.commit(Commit(notifications=[note(None)]))
    assert store.notify_lease("slack", "a", 1.0)
    assert store.notify_lease("slack", "b", 1.0)
    assert store.notify_done("slack", [1], "c")
    assert queued(store) == []


def test_sqlite_marks_are_kept_until_removed_and_a_removal_goes_before_a_mark(
    sqlite_store: SQLiteStore,
) -> None:
    store = sqlite_store
    assert store.defers_notifications
    store.commit(Commit(notify_marks={(NAME, 1): 4, ("other", 2): 9}))
    # A mark already stored keeps its earlier offset.
    store.commit(Commit(notify_marks={(NAME, 1): 6}))
    assert store.notify_marked() == {(NAME, 1): 4, ("other", 2): 9}
    # Removed and made again in one commit (a merge of both writes): the new one stands.
    store.commit(Commit(notify_unmarked=[(NAME, 1)], notify_marks={(NAME, 1): 11}))
    store.commit(Commit(notify_unmarked=[("other", 2)]))
    assert store.notify_marked() == {(NAME, 1): 11}


def test_sqlite_a_deleted_workspace_takes_its_mark_along(sqlite_store: SQLiteStore) -> None:
    store = sqlite_store
    store.commit(replace(batch(NAME, 1, [make_event(1)]), notify_marks={(NAME, 1): 1}))
    store.commit(Commit(deleted=[(NAME, 1)]))
    assert store.notify_marked() == {}


def test_sqlite_retention_keeps_the_events_of_a_mark(sqlite_store: SQLiteStore) -> None:
    store = sqlite_store
    events = [make_event(n) for n in range(1, 11)]
    store.commit(replace(batch(NAME, 1, events), notify_marks={(NAME, 1): 5}))
    assert store.trim(max_events=2, max_age=LONG_AGO, now=T0) == {(NAME, 1): 5}
    assert offsets(store.read(NAME, 1, 0, 100)) == list(range(5, 11))
    store.commit(Commit(notify_unmarked=[(NAME, 1)]))
    assert store.trim(max_events=2, max_age=LONG_AGO, now=T0) == {(NAME, 1): 9}


def test_redis_queues_in_the_commit_of_the_events(redis_stores: Callable[..., RedisStore]) -> None:
    store = redis_stores()
    assert not store.defers_notifications
    assert store.notify_marked() == {}
    with pytest.raises(ValueError, match="in their events' commit"):
        store.commit(Commit(notify_marks={(NAME, 1): 1}))


@pytest.mark.parametrize("version", [3, 4])
def test_sqlite_migrates_a_database_of_an_older_version(tmp_path: Path, version: int) -> None:
    store = SQLiteStore(tmp_path)
    events = [make_event(n, run_id="r1", seq=n) for n in (1, 2)]
    store.commit(batch(NAME, 1, events, run_seqs={"r1": 2}))
    loaded = store.load()
    store.close()
    # What such a database is: the same, without the tables that came later.
    with sqlite3.connect(tmp_path / DATABASE_NAME) as conn:
        conn.execute("DROP TABLE notify_marks")
        if version == 3:
            conn.execute("DROP TABLE notifications")
            conn.execute("DROP TABLE notify_sinks")
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (version,))
    conn.close()

    store = SQLiteStore(tmp_path)
    try:
        assert store.load() == loaded
        assert store.notify_stats() == {}
        assert store.notify_marked() == {}
        more = [make_event(3)]
        store.commit(replace(batch(NAME, 1, more, before=events), notifications=notes_of(more)))
        assert queued(store) == notes_of(more)
        assert offsets(store.read(NAME, 1, 0, 10)) == [1, 2, 3]
        store.commit(Commit(notify_marks={(NAME, 1): 3}))
        assert store.notify_marked() == {(NAME, 1): 3}
    finally:
        store.close()
    with sqlite3.connect(tmp_path / DATABASE_NAME) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
            SCHEMA_VERSION,
        )
        assert SCHEMA_VERSION == 5
    conn.close()


# -- Redis ---------------------------------------------------------------------------------------


@pytest.fixture
def redis_stores(redis_server: RedisServer) -> Iterator[Callable[..., RedisStore]]:
    opened: list[RedisStore] = []

    def open_store(*, node: str = "n1") -> RedisStore:
        store = RedisStore(parse_redis_url(redis_server.url, {}), node=node)
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()


def test_redis_a_commit_refused_for_a_lost_claim_queues_nothing(
    redis_stores: Callable[..., RedisStore], redis_server: RedisServer
) -> None:
    old = redis_stores(node="n1")
    first = [make_event(1)]
    old.commit(replace(batch(NAME, 1, first), notifications=notes_of(first)))
    client = redis_server.client()
    try:
        # What a lapse does (n1 paused past its lease), without waiting for it.
        client.delete(f"ph:{{{NAME}}}:owner")
    finally:
        client.close()
    new = redis_stores(node="n2")
    assert [item.state.name for item in new.load()] == [NAME]

    more = [make_event(2)]
    with pytest.raises(StoreConflictError, match="written by another node now"):
        old.commit(
            replace(
                batch(NAME, 1, more, before=first),
                notifications=notes_of(more, sink="hook"),
            )
        )
    # Without events too (a stall): only the workspace's writer queues for it.
    with pytest.raises(StoreConflictError, match="written by another node now"):
        old.commit(Commit(notifications=[note(None, sink="hook")]))

    assert queued(new, "hook") == []
    assert queued(new) == notes_of(first)
    assert set(new.notify_stats()) == {"slack"}
    # The writer queues.
    new.commit(Commit(notifications=[note(None, sink="hook")]))
    assert queued(new, "hook") == [note(None, sink="hook")]


def test_redis_a_commit_sent_again_queues_its_notifications_once(
    redis_stores: Callable[..., RedisStore],
) -> None:
    store = redis_stores()
    events = [make_event(n) for n in (1, 2)]
    commit = replace(batch(NAME, 1, events), notifications=notes_of(events))
    store.commit(commit)
    # Sent again (its reply was lost): the events are recognised as stored.
    store.commit(commit)
    assert queued(store) == notes_of(events)
    assert ids(store) == [1, 2]


def test_redis_the_sender_lease_is_exclusive_and_taken_over_after_its_ttl(
    redis_stores: Callable[..., RedisStore], redis_server: RedisServer
) -> None:
    one, two = redis_stores(node="n1"), redis_stores(node="n2")
    one.commit(Commit(notifications=[note(n) for n in (1, 2, 3)]))

    assert one.notify_lease("slack", "one", 30.0)
    assert not two.notify_lease("slack", "two", 30.0)
    # Renewed: its holder extends it.
    assert one.notify_lease("slack", "one", 60.0)
    client = redis_server.client()
    try:
        assert client.pttl("ph:notify:{slack}:lease") > 30_000
    finally:
        client.close()
    # Another sink's lease is another lease.
    assert two.notify_lease("hook", "two", 30.0)
    # Only the holder removes.
    assert not two.notify_done("slack", [1], "two")
    assert ids(two) == [1, 2, 3]
    assert one.notify_done("slack", [1], "one")
    assert ids(two) == [2, 3]

    # "one" renews a last time, for a moment, and stops (its node paused or died): once its
    # lease lapses, "two" takes it.
    assert one.notify_lease("slack", "one", 0.2)
    client = redis_server.client()
    try:
        wait_until(lambda: not client.exists("ph:notify:{slack}:lease"), "the lease to lapse")
    finally:
        client.close()
    assert two.notify_lease("slack", "two", 30.0)
    assert not one.notify_lease("slack", "one", 30.0)
    # The stale holder's removal is refused and removes nothing.
    assert not one.notify_done("slack", [2, 3], "one")
    assert ids(one) == [2, 3]
    assert two.notify_done("slack", [2], "two")
    assert ids(one) == [3]


def test_redis_keys_of_a_sink_are_as_documented(
    redis_stores: Callable[..., RedisStore], redis_server: RedisServer
) -> None:
    store = redis_stores()
    store.notify_limits({"slack": 1})
    store.commit(Commit(notifications=[note(1), note(2)]))
    store.notify_lease("slack", "sender", 30.0)
    client = redis_server.client()
    try:
        assert client.smembers("ph:notify:sinks") == {b"slack"}
        entries = client.xrange("ph:notify:{slack}:queue")
        assert entries is not None
        assert [entry_id for entry_id, _ in entries] == [b"2-0"]
        assert client.hgetall("ph:notify:{slack}:meta") == {b"last": b"2", b"dropped": b"1"}
        assert client.hgetall("ph:notify:{slack}:keys") == {note(2).key.encode(): b"2"}
        assert client.get("ph:notify:{slack}:lease") == b"sender"
    finally:
        client.close()
