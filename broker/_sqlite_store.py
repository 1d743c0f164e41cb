"""The embedded :class:`~broker._store.Store`: one SQLite database in WAL mode.

The database is ``pierhead.db`` inside the data directory. Tables (schema version 1):

``meta(key TEXT PRIMARY KEY, value)``
    ``schema_version`` lives here. A database written by a newer version is refused, so an old
    broker never misreads (or "repairs") a layout it does not know; an older one is migrated.

``workspaces(id INTEGER PRIMARY KEY, name, epoch, last_offset, state)``
    One row per live workspace epoch, ``UNIQUE (name, epoch)``. ``state`` is the MessagePack of
    the latest folded :class:`schema.WorkspaceState` and ``last_offset`` its offset, kept as a
    column so retention need not decode states. The surrogate id keeps the event keys short.

``events(workspace_id, "offset", kind, series, run_id, seq, received_us, body)``
    ``PRIMARY KEY (workspace_id, "offset")`` ``WITHOUT ROWID``: events are clustered in stream
    order, which is exactly what ``read`` and unfiltered ``history`` scan. ``body`` is the
    MessagePack of the whole :class:`schema.EventMsg`; the other columns are copies for
    filtering. ``received_us`` is the broker's receive time in integer microseconds since the
    Unix epoch.

    Indices for ``history``: ``(workspace_id, kind, "offset")``, and partial
    ``(workspace_id, series, "offset")`` and ``(workspace_id, run_id, "offset")`` where the column
    is not NULL (broker-made events carry neither; ``= ?`` implies ``IS NOT NULL``, so SQLite
    uses them). Each walks one filter's matches in offset order, so a page needs no sort.

    Retention by age needs no index on ``received_us``: it walks the primary key from the oldest
    event and stops at the first one young enough to keep, so it reads only what it deletes
    (plus one row), and an index would cost every insert.

``runs(workspace_id, run_id, seq)``
    ``PRIMARY KEY (workspace_id, run_id)`` ``WITHOUT ROWID``: the highest durable publish seq per
    run, which only ever increases.

Threading: ``commit`` and ``trim`` use one writer connection (any thread, one at a time);
``read``, ``history`` and ``load`` use a connection per calling thread. Each read is a single
statement or an explicit read transaction, so WAL gives it a snapshot of whole commits.
"""

from __future__ import annotations

import datetime
import pathlib
import queue
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Final, Literal

import msgspec

from schema import EventMsg, WorkspaceState

from ._store import Commit, HistoryFilter, StoredWorkspace

__all__ = ["DATABASE_NAME", "SCHEMA_VERSION", "SQLiteStore", "StoreVersionError"]

DATABASE_NAME: Final = "pierhead.db"
SCHEMA_VERSION: Final = 1

# How long a connection waits for a lock before giving up with "database is locked". Only a
# checkpoint or another process holding the database can make it wait at all.
_BUSY_TIMEOUT_S: Final = 10.0

_SYNCHRONOUS_PRAGMAS: Final = {
    "full": "PRAGMA synchronous = FULL",
    "normal": "PRAGMA synchronous = NORMAL",
}

_UNIX_EPOCH: Final = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_MICROSECOND: Final = datetime.timedelta(microseconds=1)

_CREATE_SCHEMA: Final = (
    """
    CREATE TABLE workspaces (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        last_offset INTEGER NOT NULL,
        state BLOB NOT NULL,
        UNIQUE (name, epoch)
    )
    """,
    """
    CREATE TABLE events (
        workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
        "offset" INTEGER NOT NULL,
        kind TEXT NOT NULL,
        series TEXT,
        run_id TEXT,
        seq INTEGER,
        received_us INTEGER NOT NULL,
        body BLOB NOT NULL,
        PRIMARY KEY (workspace_id, "offset")
    ) WITHOUT ROWID
    """,
    'CREATE INDEX events_by_kind ON events (workspace_id, kind, "offset")',
    """
    CREATE INDEX events_by_series ON events (workspace_id, series, "offset")
    WHERE series IS NOT NULL
    """,
    """
    CREATE INDEX events_by_run ON events (workspace_id, run_id, "offset")
    WHERE run_id IS NOT NULL
    """,
    """
    CREATE TABLE runs (
        workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
        run_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (workspace_id, run_id)
    ) WITHOUT ROWID
    """,
)

_INSERT_EVENT: Final = """
    INSERT INTO events (workspace_id, "offset", kind, series, run_id, seq, received_us, body)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""
_UPSERT_STATE: Final = """
    INSERT INTO workspaces (name, epoch, last_offset, state) VALUES (?, ?, ?, ?)
    ON CONFLICT (name, epoch) DO UPDATE
    SET last_offset = excluded.last_offset, state = excluded.state
"""
_UPSERT_RUN: Final = """
    INSERT INTO runs (workspace_id, run_id, seq) VALUES (?, ?, ?)
    ON CONFLICT (workspace_id, run_id) DO UPDATE SET seq = max(seq, excluded.seq)
"""
_READ: Final = """
    SELECT e.body FROM events AS e JOIN workspaces AS w ON w.id = e.workspace_id
    WHERE w.name = ? AND w.epoch = ? AND e."offset" > ?
    ORDER BY e."offset" LIMIT ?
"""


class StoreVersionError(RuntimeError):
    """The database was written by a newer pierhead whose layout this one does not know."""


def _received_us(event: EventMsg) -> int:
    return (event.received_time - _UNIX_EPOCH) // _MICROSECOND


def _kind(event: EventMsg) -> str:
    # The payload's msgspec tag is its wire ``kind``.
    return str(event.payload.__struct_config__.tag)


class SQLiteStore:
    """Workspace streams, states and run positions in ``<path>/pierhead.db``."""

    def __init__(
        self, path: pathlib.Path, *, synchronous: Literal["full", "normal"] = "full"
    ) -> None:
        if synchronous not in _SYNCHRONOUS_PRAGMAS:
            raise ValueError(f"synchronous must be 'full' or 'normal', not {synchronous!r}")
        path.mkdir(parents=True, exist_ok=True)
        self._database = path / DATABASE_NAME
        self._synchronous_pragma = _SYNCHRONOUS_PRAGMAS[synchronous]
        self._encoder = msgspec.msgpack.Encoder()
        self._event_decoder = msgspec.msgpack.Decoder(EventMsg)
        self._state_decoder = msgspec.msgpack.Decoder(WorkspaceState)
        self._idle_readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False
        self._writer = self._connect()
        try:
            self._configure_writer()
            self._prepare_schema()
        except BaseException:
            self._writer.close()
            raise

    # -- connections -------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; every one is explicit below.
        # check_same_thread=False: the writer moves between threads (one at a time), and
        # close() closes every reader from whichever thread calls it.
        return sqlite3.connect(
            self._database,
            timeout=_BUSY_TIMEOUT_S,
            isolation_level=None,
            check_same_thread=False,
        )

    def _configure_writer(self) -> None:
        mode = self._writer.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise sqlite3.OperationalError(f"could not switch {self._database} to WAL: {mode}")
        self._writer.execute(self._synchronous_pragma)
        self._writer.execute("PRAGMA foreign_keys = ON")

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        """A reader connection for one call. Pooled, not per thread: worker threads come and
        go, and a connection per thread ever seen would leak."""
        if self._closed:
            raise sqlite3.ProgrammingError("the store is closed")
        try:
            conn = self._idle_readers.get_nowait()
        except queue.Empty:
            conn = self._connect()
            conn.execute("PRAGMA query_only = ON")
            with self._readers_lock:
                self._readers.append(conn)
        try:
            yield conn
        finally:
            self._idle_readers.put(conn)

    @contextmanager
    def _write_transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._writer
        # IMMEDIATE takes the write lock up front, so nothing fails half-way for lack of it.
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def _read_transaction(self) -> Iterator[sqlite3.Connection]:
        with self._reader() as conn:
            # Several statements in one transaction read the same snapshot.
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    # -- schema ------------------------------------------------------------------------------

    def _prepare_schema(self) -> None:
        with self._write_transaction() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value)")
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                for statement in _CREATE_SCHEMA:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                    (SCHEMA_VERSION,),
                )
                return
            version = row[0]
            if not isinstance(version, int) or version > SCHEMA_VERSION:
                raise StoreVersionError(
                    f"{self._database} has schema version {version!r}, newer than version "
                    f"{SCHEMA_VERSION} that this pierhead understands; upgrade pierhead"
                )
            # Migrations from older versions go here once there is more than one.

    # -- writing -----------------------------------------------------------------------------

    def commit(self, commit: Commit) -> None:
        """Write ``commit`` in one transaction; durable on return, or rolled back and raised."""
        with self._write_transaction() as conn:
            for name, epoch in commit.deleted:
                self._delete_workspace(conn, name, epoch)
            ids = self._upsert_states(conn, commit.states)
            self._insert_events(conn, commit.events, ids)
            self._upsert_runs(conn, commit.run_seqs, ids)

    def _delete_workspace(self, conn: sqlite3.Connection, name: str, epoch: int) -> None:
        row = conn.execute(
            "SELECT id FROM workspaces WHERE name = ? AND epoch = ?", (name, epoch)
        ).fetchone()
        if row is None:
            return
        conn.execute("DELETE FROM events WHERE workspace_id = ?", row)
        conn.execute("DELETE FROM runs WHERE workspace_id = ?", row)
        conn.execute("DELETE FROM workspaces WHERE id = ?", row)

    def _upsert_states(
        self, conn: sqlite3.Connection, states: Mapping[tuple[str, int], WorkspaceState]
    ) -> dict[tuple[str, int], int]:
        """Write the states, creating workspace rows for new keys; their ids by key."""
        ids: dict[tuple[str, int], int] = {}
        for (name, epoch), state in states.items():
            body = self._encoder.encode(state)
            conn.execute(_UPSERT_STATE, (name, epoch, state.last_offset, body))
            ids[name, epoch] = self._workspace_id(conn, name, epoch)
        return ids

    def _insert_events(
        self,
        conn: sqlite3.Connection,
        events: Sequence[EventMsg],
        ids: Mapping[tuple[str, int], int],
    ) -> None:
        # An event names its workspace but not the epoch; the commit's states say which epoch.
        by_name: dict[str, int | None] = {}
        for name, epoch in ids:
            by_name[name] = None if name in by_name else ids[name, epoch]
        encode = self._encoder.encode
        rows = [
            (
                self._event_workspace_id(conn, event.workspace, by_name),
                event.offset,
                _kind(event),
                event.series,
                event.run_id,
                event.seq,
                _received_us(event),
                encode(event),
            )
            for event in events
        ]
        conn.executemany(_INSERT_EVENT, rows)

    def _event_workspace_id(
        self, conn: sqlite3.Connection, name: str, by_name: dict[str, int | None]
    ) -> int:
        if name in by_name:
            workspace_id = by_name[name]
            if workspace_id is None:
                raise ValueError(f"commit has states of several epochs of {name!r} and its events")
            return workspace_id
        # Not in this commit's states: the stored epoch (the broker keeps one live per name).
        row = conn.execute(
            "SELECT id FROM workspaces WHERE name = ? ORDER BY epoch DESC LIMIT 1", (name,)
        ).fetchone()
        if row is None:
            raise ValueError(f"event of workspace {name!r}, which has no state")
        by_name[name] = row[0]
        return int(row[0])

    def _upsert_runs(
        self,
        conn: sqlite3.Connection,
        run_seqs: Mapping[tuple[str, int, str], int],
        ids: Mapping[tuple[str, int], int],
    ) -> None:
        rows = []
        for (name, epoch, run_id), seq in run_seqs.items():
            workspace_id = ids.get((name, epoch))
            if workspace_id is None:
                workspace_id = self._workspace_id(conn, name, epoch)
            rows.append((workspace_id, run_id, seq))
        conn.executemany(_UPSERT_RUN, rows)

    def _workspace_id(self, conn: sqlite3.Connection, name: str, epoch: int) -> int:
        row = conn.execute(
            "SELECT id FROM workspaces WHERE name = ? AND epoch = ?", (name, epoch)
        ).fetchone()
        if row is None:
            raise ValueError(f"workspace {name!r} epoch {epoch} has no state")
        return int(row[0])

    def trim(
        self, *, max_events: int, max_age: datetime.timedelta, now: datetime.datetime
    ) -> dict[tuple[str, int], int]:
        """Apply retention by count and age; the new ``first_offset`` of each workspace trimmed.

        Age removes the oldest events up to the first one received at or after
        ``now - max_age``. Should receive times ever step backwards, an old event behind a young
        one stays: a stream only ever loses a prefix, and nothing within retention is lost.
        """
        cutoff_us = (now - max_age - _UNIX_EPOCH) // _MICROSECOND
        trimmed: dict[tuple[str, int], int] = {}
        with self._write_transaction() as conn:
            workspaces = conn.execute(
                "SELECT id, name, epoch, last_offset FROM workspaces"
            ).fetchall()
            for workspace_id, name, epoch, last_offset in workspaces:
                upto = self._trim_upto(conn, workspace_id, last_offset, max_events, cutoff_us)
                deleted = conn.execute(
                    'DELETE FROM events WHERE workspace_id = ? AND "offset" <= ?',
                    (workspace_id, upto),
                ).rowcount
                if deleted > 0:
                    trimmed[name, epoch] = _first_offset(conn, workspace_id, last_offset)
        return trimmed

    @staticmethod
    def _trim_upto(
        conn: sqlite3.Connection, workspace_id: int, last_offset: int, keep: int, cutoff_us: int
    ) -> int:
        """The highest offset retention removes from one workspace (maybe below its first)."""
        young = conn.execute(
            'SELECT "offset" FROM events WHERE workspace_id = ? AND received_us >= ?'
            ' ORDER BY "offset" LIMIT 1',
            (workspace_id, cutoff_us),
        ).fetchone()
        by_age = last_offset if young is None else young[0] - 1
        return max(last_offset - keep, by_age)

    # -- reading -----------------------------------------------------------------------------

    def load(self) -> list[StoredWorkspace]:
        """Every stored workspace epoch with its state, first offset and run positions."""
        with self._read_transaction() as conn:
            rows = conn.execute(
                'SELECT w.id, w.state, (SELECT min("offset") FROM events WHERE workspace_id = w.id)'
                " FROM workspaces AS w ORDER BY w.name, w.epoch"
            ).fetchall()
            run_seqs: dict[int, dict[str, int]] = {}
            for workspace_id, run_id, seq in conn.execute(
                "SELECT workspace_id, run_id, seq FROM runs"
            ):
                run_seqs.setdefault(workspace_id, {})[run_id] = seq
        loaded = []
        for workspace_id, body, first_offset in rows:
            state = self._state_decoder.decode(body)
            loaded.append(
                StoredWorkspace(
                    state=state,
                    first_offset=state.last_offset + 1 if first_offset is None else first_offset,
                    run_seqs=run_seqs.get(workspace_id, {}),
                )
            )
        return loaded

    def read(self, workspace: str, epoch: int, after: int, limit: int) -> list[EventMsg]:
        """Up to ``limit`` events with offset > ``after``, oldest first."""
        with self._reader() as conn:
            rows = conn.execute(_READ, (workspace, epoch, after, limit)).fetchall()
        decode = self._event_decoder.decode
        return [decode(body) for (body,) in rows]

    def history(self, query: HistoryFilter) -> tuple[list[EventMsg], bool]:
        """A page as ``schema.HistoryQuery`` describes it, and whether more match beyond it."""
        if query.kinds is not None and not query.kinds:
            return [], False
        sql, params = _history_sql(query)
        with self._reader() as conn:
            rows = conn.execute(sql, params).fetchall()
        decode = self._event_decoder.decode
        events = [decode(body) for (body,) in rows[: query.limit]]
        return events, len(rows) > query.limit

    def close(self) -> None:
        """Close every connection; the store cannot be used afterwards."""
        if self._closed:
            return
        self._closed = True
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for conn in readers:
            conn.close()
        self._writer.close()


def _first_offset(conn: sqlite3.Connection, workspace_id: int, last_offset: int) -> int:
    (first,) = conn.execute(
        'SELECT min("offset") FROM events WHERE workspace_id = ?', (workspace_id,)
    ).fetchone()
    return last_offset + 1 if first is None else int(first)


def _history_index(query: HistoryFilter) -> str:
    """The index a history page walks, chosen by its most selective filter.

    Without statistics SQLite prefers the primary key for every filter (it already gives the
    order), which turns a search for a rare run or series into a scan of the whole stream.
    Walking a filter's own index costs at most one lookup per match, in offset order.
    """
    if query.run_id is not None:
        return "INDEXED BY events_by_run"
    if query.series is not None:
        return "INDEXED BY events_by_series"
    if query.kinds is not None and len(query.kinds) == 1:
        return "INDEXED BY events_by_kind"
    # Several kinds would need a sort of every match; the stream order with a filter stops
    # after the page instead.
    return "NOT INDEXED"


def _history_sql(query: HistoryFilter) -> tuple[str, list[object]]:
    """The SELECT for one history page: fixed SQL fragments, every value a parameter."""
    where = ["workspace_id = (SELECT id FROM workspaces WHERE name = ? AND epoch = ?)"]
    params: list[object] = [query.workspace, query.epoch]
    if query.after is not None:
        where.append('"offset" > ?')
        params.append(query.after)
    if query.before is not None:
        where.append('"offset" < ?')
        params.append(query.before)
    if query.kinds is not None:
        where.append(f"kind IN ({', '.join('?' * len(query.kinds))})")
        params.extend(query.kinds)
    if query.series is not None:
        where.append("series = ?")
        params.append(query.series)
    if query.run_id is not None:
        where.append("run_id = ?")
        params.append(query.run_id)
    order = "ASC" if query.after is not None else "DESC"
    # One more row than asked for tells whether more match beyond the page.
    params.append(query.limit + 1)
    sql = (
        f"SELECT body FROM events {_history_index(query)}"
        f' WHERE {" AND ".join(where)} ORDER BY "offset" {order} LIMIT ?'
    )
    return sql, params
