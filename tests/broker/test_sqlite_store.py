"""SQLiteStore against real database files: what only it does (its files, schema versions and
migration, atomic rollback, chunk sizes). The cases every store passes are in test_store.py."""

from __future__ import annotations

import pathlib
import sqlite3
import threading
from collections.abc import Iterator

import msgspec
import pytest

import schema
from broker._sqlite_store import (
    CHUNK_BYTES,
    CHUNK_EVENTS,
    DATABASE_NAME,
    SCHEMA_VERSION,
    SQLiteStore,
    StoreVersionError,
)
from broker._store import Commit, HistoryFilter, StoredWorkspace
from schema import EventMsg
from tests.broker.store_cases import (
    NAME,
    T0,
    batch,
    check_history_and_read_against_the_model,
    fold,
    make_event,
    offsets,
)


@pytest.fixture(params=[CHUNK_EVENTS, 3], ids=["chunks", "small-chunks"])
def store(tmp_path: pathlib.Path, request: pytest.FixtureRequest) -> Iterator[SQLiteStore]:
    # Small chunks make every test span chunk boundaries: reads, history and retention that
    # start, stop or cut inside a chunk.
    opened = SQLiteStore(tmp_path / "data", chunk_events=request.param)
    yield opened
    opened.close()


def test_creates_the_data_directory_and_a_wal_database(tmp_path: pathlib.Path) -> None:
    data = tmp_path / "nested" / "data"
    SQLiteStore(data, synchronous="normal").close()
    with sqlite3.connect(data / DATABASE_NAME) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


def test_refuses_an_unknown_synchronous_mode(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteStore(tmp_path, synchronous="off")  # type: ignore[arg-type]


# -- commit and load ---------------------------------------------------------------------------


def test_reopen_after_close_gives_the_same(tmp_path: pathlib.Path) -> None:
    first = SQLiteStore(tmp_path)
    events = [make_event(n, kind="status", run_id="r1", seq=n) for n in range(1, 4)]
    first.commit(batch(NAME, 1, events, run_seqs={"r1": 3}))
    loaded = first.load()
    first.close()

    second = SQLiteStore(tmp_path)
    try:
        assert second.load() == loaded
        assert second.read(NAME, 1, 0, 10) == events
    finally:
        second.close()


def test_closed_store_refuses_reads(tmp_path: pathlib.Path) -> None:
    closed = SQLiteStore(tmp_path)
    closed.close()
    closed.close()
    with pytest.raises(sqlite3.ProgrammingError):
        closed.read(NAME, 1, 0, 10)


def test_events_follow_the_stored_epoch_when_the_commit_has_no_state(
    store: SQLiteStore,
) -> None:
    store.commit(batch(NAME, 4, [make_event(1)]))
    store.commit(Commit(events=[make_event(2)]))
    assert offsets(store.read(NAME, 4, 0, 10)) == [1, 2]


def test_events_of_a_workspace_without_state_are_refused(store: SQLiteStore) -> None:
    with pytest.raises(ValueError, match="no state"):
        store.commit(Commit(events=[make_event(1, workspace="ghost")]))
    with pytest.raises(ValueError, match="no state"):
        store.commit(Commit(run_seqs={("ghost", 1, "r1"): 1}))
    assert store.load() == []


def test_failing_commit_rolls_back_everything_in_it(store: SQLiteStore) -> None:
    first = [make_event(n, run_id="r1", seq=n) for n in range(1, 4)]
    store.commit(batch(NAME, 1, first, run_seqs={"r1": 3}))
    store.commit(batch("doomed", 1, [make_event(1, workspace="doomed")]))
    before = store.load()

    duplicate = [make_event(4), make_event(3)]
    failing = Commit(
        events=duplicate,
        states={
            (NAME, 1): fold(NAME, 1, [*first, *duplicate]),
            ("new", 1): fold("new", 1, []),
        },
        run_seqs={(NAME, 1, "r1"): 9},
        deleted=[("doomed", 1)],
    )
    with pytest.raises(sqlite3.IntegrityError):
        store.commit(failing)

    assert store.load() == before
    assert store.read(NAME, 1, 0, 100) == first
    assert offsets(store.read("doomed", 1, 0, 100)) == [1]
    # The transaction is closed: the store keeps working.
    store.commit(batch(NAME, 1, [make_event(4)], before=first))
    assert offsets(store.read(NAME, 1, 0, 100)) == [1, 2, 3, 4]


def test_refuses_a_database_with_a_newer_schema_version(tmp_path: pathlib.Path) -> None:
    SQLiteStore(tmp_path).close()
    with sqlite3.connect(tmp_path / DATABASE_NAME) as conn:
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION + 1,)
        )
    conn.close()

    newer = f"schema version {SCHEMA_VERSION + 1}, newer than version {SCHEMA_VERSION}"
    with pytest.raises(StoreVersionError, match=newer):
        SQLiteStore(tmp_path)


def test_large_events_are_split_into_chunks_of_about_a_mebibyte(tmp_path: pathlib.Path) -> None:
    events = [
        EventMsg(
            workspace=NAME,
            offset=n,
            create_time=T0,
            received_time=T0,
            payload=schema.LogRecord(message=str(n) * (60_000 // len(str(n)))),
            series="big" if n % 2 else None,
        )
        for n in range(1, 101)
    ]
    store = SQLiteStore(tmp_path)
    try:
        store.commit(batch(NAME, 1, events))
        assert store.read(NAME, 1, 0, 1000) == events
        assert store.read(NAME, 1, 50, 3) == events[50:53]
        assert store.history(HistoryFilter(NAME, 1, series="big", limit=2)) == (
            [events[98], events[96]],
            True,
        )
    finally:
        store.close()
    with sqlite3.connect(tmp_path / DATABASE_NAME) as conn:
        sizes = [size for (size,) in conn.execute("SELECT length(body) FROM chunks")]
    conn.close()
    # 100 events of ~60 kB: several chunks, none much over a mebibyte.
    assert len(sizes) > 4
    assert max(sizes) <= CHUNK_BYTES
    assert sum(sizes) > 100 * 60_000


VERSION_1_SCHEMA = (
    """CREATE TABLE workspaces (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
    epoch INTEGER NOT NULL, last_offset INTEGER NOT NULL, state BLOB NOT NULL,
    UNIQUE (name, epoch))""",
    """CREATE TABLE events (workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    "offset" INTEGER NOT NULL, kind TEXT NOT NULL, series TEXT, run_id TEXT, seq INTEGER,
    received_us INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY (workspace_id, "offset"))
    WITHOUT ROWID""",
    'CREATE INDEX events_by_kind ON events (workspace_id, kind, "offset")',
    """CREATE TABLE runs (workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    run_id TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (workspace_id, run_id))
    WITHOUT ROWID""",
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value)",
    "INSERT INTO meta (key, value) VALUES ('schema_version', 1)",
)


def test_migrates_a_version_1_database_of_event_rows(tmp_path: pathlib.Path) -> None:
    events = [
        make_event(n, kind="scalar" if n % 3 else "log", series="a" if n % 2 else None, seq=n)
        for n in range(1, 1201)
    ]
    state = fold(NAME, 1, events)
    with sqlite3.connect(tmp_path / DATABASE_NAME) as conn:
        for statement in VERSION_1_SCHEMA:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO workspaces VALUES (1, ?, 1, ?, ?)",
            (NAME, state.last_offset, msgspec.msgpack.encode(state)),
        )
        conn.execute("INSERT INTO runs VALUES (1, 'r1', 1200)")
        # Retention had removed offsets 1-99 before the upgrade.
        conn.executemany(
            'INSERT INTO events (workspace_id, "offset", kind, received_us, body)'
            " VALUES (1, ?, ?, 0, ?)",
            [
                (event.offset, event.payload.__struct_config__.tag, msgspec.msgpack.encode(event))
                for event in events[99:]
            ],
        )
    conn.close()

    store = SQLiteStore(tmp_path)
    try:
        assert store.load() == [
            StoredWorkspace(state=state, first_offset=100, run_seqs={"r1": 1200})
        ]
        assert store.read(NAME, 1, 0, 2000) == events[99:]
        assert store.history(HistoryFilter(NAME, 1, series="a", kinds=["log"], limit=2)) == (
            [events[1196], events[1190]],
            True,
        )
    finally:
        store.close()
    with sqlite3.connect(tmp_path / DATABASE_NAME) as conn:
        assert conn.execute("SELECT value FROM meta").fetchone() == (SCHEMA_VERSION,)
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
        assert "events" not in tables
        assert "chunks" in tables
    conn.close()


# -- read --------------------------------------------------------------------------------------


def test_readers_on_another_thread_see_only_whole_commits(tmp_path: pathlib.Path) -> None:
    store = SQLiteStore(tmp_path, synchronous="normal")
    batch_size, batches = 25, 40
    events = [make_event(n) for n in range(1, batch_size * batches + 1)]
    seen: list[list[int]] = []
    reads = 0
    stop = threading.Event()

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            seen.append(offsets(store.read(NAME, 1, 0, len(events))))
            reads += 1

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for start in range(0, len(events), batch_size):
            store.commit(batch(NAME, 1, events[start : start + batch_size], before=events[:start]))
            # Let the reader in after every commit, so reads interleave with writes.
            read_before = reads
            while reads == read_before and thread.is_alive():
                stop.wait(0.0005)
    finally:
        stop.set()
        thread.join()
        store.close()

    assert len({len(result) for result in seen}) > batches // 2
    for result in seen:
        assert len(result) % batch_size == 0
        assert result == list(range(1, len(result) + 1))


# -- history -----------------------------------------------------------------------------------


def test_history_and_read_match_a_simple_model(tmp_path: pathlib.Path) -> None:
    # Chunks of at most 4 events: pages start, stop and get cut anywhere inside a chunk.
    store = SQLiteStore(tmp_path, synchronous="normal", chunk_events=4)
    try:
        check_history_and_read_against_the_model(store)
    finally:
        store.close()
