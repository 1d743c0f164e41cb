"""The embedded :class:`~broker._store.Store`: one SQLite database in WAL mode.

The database is ``pierhead.db`` inside the data directory. Tables (schema version 4):

``meta(key TEXT PRIMARY KEY, value)``
    ``schema_version`` lives here. A database written by a newer version is refused, so an old
    broker never misreads (or "repairs") a layout it does not know; an older one is migrated.

``workspaces(id INTEGER PRIMARY KEY, name, epoch, last_offset, state)``
    One row per live workspace epoch, ``UNIQUE (name, epoch)``. ``state`` is the MessagePack of
    the latest folded :class:`schema.WorkspaceState` and ``last_offset`` its offset, kept as a
    column so retention need not decode states. The surrogate id keeps the other keys short.

``chunks(workspace_id, last_offset, first_offset, received_us, body)``
    Events are stored in chunks: a run of consecutive events of one workspace from one commit,
    at most :data:`CHUNK_EVENTS` of them and about :data:`CHUNK_BYTES` of MessagePack. ``body``
    is the MessagePack array of the whole :class:`schema.EventMsg` s. ``PRIMARY KEY
    (workspace_id, last_offset)``: ``read`` and ``history`` walk it in stream order, starting at
    the chunk that holds the first offset they want. ``received_us`` is the latest broker
    receive time in the chunk, in integer microseconds since the Unix epoch.

    One row per chunk instead of one per event is what makes ingest cheap: a batch of a hundred
    events costs one row and a few key rows, not a hundred rows and three index entries each.
    Reading one event costs decoding its chunk, which is bounded by the chunk limits.

``chunk_keys(workspace_id, facet, value, last_offset)``
    ``PRIMARY KEY`` over all four, ``WITHOUT ROWID``: for each chunk, one row per distinct kind
    (``facet = 'kind'``), series and run id among its events. ``history`` with a filter walks
    these rows for its most selective filter (merging one walk per kind when it asks for
    several) and reads only the chunks that hold a match; the events themselves are filtered
    after decoding. An index on ``(workspace_id, last_offset)`` lets retention delete the key
    rows of whole chunks without a scan.

    Retention by age needs no index on ``received_us``: it walks the chunks from the oldest and
    stops at the first one young enough to keep, so it reads only what it deletes (plus one).
    Retention is exact to the event: the chunk that straddles the cut is rewritten without the
    events before it (its key rows may then name a value it no longer holds, which only costs
    a history query a chunk decoded in vain).

``runs(workspace_id, run_id, seq, last_seen_us)``
    ``PRIMARY KEY (workspace_id, run_id)`` ``WITHOUT ROWID``: the highest durable publish seq per
    run, which only ever increases, and when the run was last seen: the receive time of its
    latest stored events, or a retention pass that found it connected (0: not known yet, taken
    as the next pass). ``forget_runs`` deletes the rows of runs idle for long enough whose
    events are all gone.

``notify_sinks(name TEXT PRIMARY KEY, last_id, dropped, head, number)``
    One row per sink that has had a notification: the last id given in its queue as of the
    last drop or removal (ids are never reused, so a sender's ids stay unambiguous; a commit
    that drops nothing leaves the row alone, and the newest batch's last id is then the later
    one), how many of its notifications were
    dropped because its queue was full, which survives restarts, its head: the lowest id that
    may still be queued (the bound drops the oldest by moving it), and its number, ``UNIQUE``,
    given when the sink first queues.

``notifications(position INTEGER PRIMARY KEY, sink, first_id, count, body)``
    Each sink's queue, in batches: one row per sink and commit, holding that commit's
    notifications for the sink, ids ``first_id`` to ``first_id + count - 1``; ``body`` is the
    MessagePack array of the :class:`~broker._notify.Notification` s. ``position``, the rowid,
    is the sink's number shifted left by 48 bits plus ``first_id``: a sink's batches are one
    range of rowids in id order, so the table has no index to keep. A commit writes one row
    per sink it queues for, not one per notification, which is what keeps a storm of
    notifications cheap: appended at one end, removed at the other. Past the sink's bound the
    oldest go until an eighth of it is free (``dropped_past_bound``), so a full queue's old end
    is written once per many commits: whole rows, and the head moves past the ids dropped from
    the next one; ``dropped`` counts them. A commit past the bound by itself writes only the ids it
    keeps. Deleting a workspace leaves its queued notifications.

``notify_marks(workspace, epoch, from_offset)``
    ``PRIMARY KEY (workspace, epoch)`` ``WITHOUT ROWID``: a workspace epoch whose events from
    ``from_offset`` on made notifications not queued yet (``Commit.notify_marks``): the broker
    queues them a moment later, in a commit that removes the row, so most commits write no
    queue at all. At boot the broker makes the notifications of a marked workspace's events
    again (their keys depend only on the event) and queues them; retention keeps the
    events of a mark until then.

``notify_removed(sink, id)``
    ``PRIMARY KEY`` over both, ``WITHOUT ROWID``: the ids at or past the head removed from a
    batch that still holds others (a sender removes one coalesced group at a time, which may
    skip other workspaces' notifications). A batch's row and its removed ids go together once
    all its ids are removed or below the head, so every removed id lies in a batch still
    queued, and the queue's length is the batches' ids from the head on less the removed.

Version 1 stored one row per event (``events``, with three indices). A version 1 database is
migrated to chunks when it is opened, in one transaction. Version 2 had no ``last_seen_us``;
it is added (as 0) when a version 2 database is opened. Version 3 had no notification tables;
they are created when a version 3 database (or older) is opened. Version 4 had no
``notify_marks``; it is created when a version 4 database (or older) is opened.

Threading: ``commit``, ``trim``, ``forget_runs`` and ``notify_done`` use one writer connection
(any thread, one at a time); ``read``, ``history``, ``load``, ``notify_queue`` and
``notify_stats`` use pooled reader connections. Each read is a single
statement or an explicit read transaction, so WAL gives it a snapshot of whole commits.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import datetime
import fcntl
import heapq
import os
import pathlib
import queue
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from operator import attrgetter, itemgetter
from typing import Final, Literal

import msgspec

from schema import EventMsg, Payload, WorkspaceState

from ._notify import Notification, QueuedNotification, SinkQueueStats
from ._notify_queue import DEFAULT_BOUND, by_sink, dropped_past_bound
from ._store import Commit, HistoryFilter, StoredWorkspace

__all__ = [
    "CHUNK_BYTES",
    "CHUNK_EVENTS",
    "DATABASE_NAME",
    "LOCK_NAME",
    "DataDirectoryInUseError",
    "SCHEMA_VERSION",
    "SQLiteStore",
    "StoreVersionError",
    "lock_directory",
]

DATABASE_NAME: Final = "pierhead.db"
LOCK_NAME: Final = "pierhead.lock"
"""Held (``flock``, exclusive) by the store that has the directory open, for as long as it is
open; it holds the pid of that process. Two brokers on one directory would each number events
on their own and lose what the other acknowledged."""
SCHEMA_VERSION: Final = 5

CHUNK_EVENTS: Final = 512
"""Most events in one chunk: a read of one event decodes at most this many."""
CHUNK_BYTES: Final = 1 << 20
"""A chunk larger than this is split in two (unless it holds a single event)."""

# How long a connection waits for a lock before giving up with "database is locked". Only a
# checkpoint or another process holding the database can make it wait at all.
_BUSY_TIMEOUT_S: Final = 10.0

_SYNCHRONOUS_PRAGMAS: Final = {
    "full": "PRAGMA synchronous = FULL",
    "normal": "PRAGMA synchronous = NORMAL",
}

_UNIX_EPOCH: Final = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_MICROSECOND: Final = datetime.timedelta(microseconds=1)

_CREATE_WORKSPACES: Final = """
    CREATE TABLE workspaces (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        last_offset INTEGER NOT NULL,
        state BLOB NOT NULL,
        UNIQUE (name, epoch)
    )
"""
_CREATE_RUNS: Final = """
    CREATE TABLE runs (
        workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
        run_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        last_seen_us INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (workspace_id, run_id)
    ) WITHOUT ROWID
"""
_ADD_RUN_LAST_SEEN: Final = "ALTER TABLE runs ADD COLUMN last_seen_us INTEGER NOT NULL DEFAULT 0"
_CREATE_CHUNKS: Final = (
    # received_us before body: a scan that tests it never reads the body's overflow pages.
    """
    CREATE TABLE chunks (
        workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
        last_offset INTEGER NOT NULL,
        first_offset INTEGER NOT NULL,
        received_us INTEGER NOT NULL,
        body BLOB NOT NULL,
        PRIMARY KEY (workspace_id, last_offset)
    )
    """,
    """
    CREATE TABLE chunk_keys (
        workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
        facet TEXT NOT NULL,
        value TEXT NOT NULL,
        last_offset INTEGER NOT NULL,
        PRIMARY KEY (workspace_id, facet, value, last_offset)
    ) WITHOUT ROWID
    """,
    # Retention deletes the key rows of whole chunks: by chunk, not by every key of the stream.
    "CREATE INDEX chunk_keys_by_chunk ON chunk_keys (workspace_id, last_offset)",
)
# IF NOT EXISTS: a migration may find them in a database whose version mark is older than
# its tables (written by this version, then marked back), and must not fail on it.
_CREATE_NOTIFY: Final = (
    """
    CREATE TABLE IF NOT EXISTS notify_sinks (
        name TEXT PRIMARY KEY,
        last_id INTEGER NOT NULL,
        dropped INTEGER NOT NULL,
        head INTEGER NOT NULL,
        number INTEGER NOT NULL UNIQUE
    ) WITHOUT ROWID
    """,
    # The rowid is the key: no index to keep besides the table (see _BATCH_ID_BITS).
    """
    CREATE TABLE IF NOT EXISTS notifications (
        position INTEGER PRIMARY KEY,
        sink TEXT NOT NULL,
        first_id INTEGER NOT NULL,
        count INTEGER NOT NULL,
        body BLOB NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS notify_removed (
        sink TEXT NOT NULL,
        id INTEGER NOT NULL,
        PRIMARY KEY (sink, id)
    ) WITHOUT ROWID
    """,
)
_CREATE_NOTIFY_MARKS: Final = """
    CREATE TABLE IF NOT EXISTS notify_marks (
        workspace TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        from_offset INTEGER NOT NULL,
        PRIMARY KEY (workspace, epoch)
    ) WITHOUT ROWID
"""
_CREATE_SCHEMA: Final = (
    _CREATE_WORKSPACES,
    *_CREATE_CHUNKS,
    _CREATE_RUNS,
    *_CREATE_NOTIFY,
    _CREATE_NOTIFY_MARKS,
)

_INSERT_CHUNK: Final = """
    INSERT INTO chunks (workspace_id, last_offset, first_offset, received_us, body)
    VALUES (?, ?, ?, ?, ?)
"""
_INSERT_KEY: Final = """
    INSERT INTO chunk_keys (workspace_id, facet, value, last_offset) VALUES (?, ?, ?, ?)
"""
_UPSERT_STATE: Final = """
    INSERT INTO workspaces (name, epoch, last_offset, state) VALUES (?, ?, ?, ?)
    ON CONFLICT (name, epoch) DO UPDATE
    SET last_offset = excluded.last_offset, state = excluded.state
"""
_UPSERT_RUN: Final = """
    INSERT INTO runs (workspace_id, run_id, seq, last_seen_us) VALUES (?, ?, ?, ?)
    ON CONFLICT (workspace_id, run_id) DO UPDATE
    SET seq = max(seq, excluded.seq), last_seen_us = max(last_seen_us, excluded.last_seen_us)
"""
_IDLE_RUNS: Final = """
    SELECT w.name, w.epoch, r.workspace_id, r.run_id FROM runs AS r
    JOIN workspaces AS w ON w.id = r.workspace_id
    WHERE r.last_seen_us < ?
      AND NOT EXISTS (
        SELECT 1 FROM chunk_keys AS k
        WHERE k.workspace_id = r.workspace_id AND k.facet = 'run' AND k.value = r.run_id
      )
"""
_READ: Final = """
    SELECT c.body FROM chunks AS c JOIN workspaces AS w ON w.id = c.workspace_id
    WHERE w.name = ? AND w.epoch = ? AND c.last_offset > ?
    ORDER BY c.last_offset
"""
_OLDEST_CHUNK: Final = """
    SELECT first_offset FROM chunks WHERE workspace_id = ? ORDER BY last_offset LIMIT 1
"""

_BATCH_ID_BITS: Final = 48
"""A batch's rowid is its sink's number shifted by this many bits, plus its first id: a sink's
batches are one range of rowids in id order, so the table needs no index of its own. Ids fit
for 89 years at 100,000 notifications a second; numbers, for 32,767 sinks."""
_INSERT_MARK: Final = (
    "INSERT OR IGNORE INTO notify_marks (workspace, epoch, from_offset) VALUES (?, ?, ?)"
)
_DELETE_MARK: Final = "DELETE FROM notify_marks WHERE workspace = ? AND epoch = ?"
_INSERT_BATCH: Final = """
    INSERT INTO notifications (position, sink, first_id, count, body) VALUES (?, ?, ?, ?, ?)
"""
_REMOVED_BETWEEN: Final = """
    SELECT id FROM notify_removed WHERE sink = ? AND id BETWEEN ? AND ? ORDER BY id
"""
_FORGET_REMOVED: Final = "DELETE FROM notify_removed WHERE sink = ? AND id BETWEEN ? AND ?"
_DELETE_BATCH: Final = "DELETE FROM notifications WHERE position = ?"
_INSERT_REMOVED: Final = "INSERT INTO notify_removed (sink, id) VALUES (?, ?)"
_REMOVED_OF_SINK: Final = "SELECT id FROM notify_removed WHERE sink = ? ORDER BY id"
_DELETE_BATCHES_BELOW: Final = """
    DELETE FROM notifications WHERE position BETWEEN ? AND ? AND first_id + count <= ?
"""
_FORGET_REMOVED_BELOW: Final = "DELETE FROM notify_removed WHERE sink = ? AND id < ?"
_COUNT_QUEUED: Final = """
    SELECT coalesce(sum(count), 0), min(first_id),
        (SELECT count(*) FROM notify_removed WHERE sink = ?)
    FROM notifications WHERE position BETWEEN ? AND ?
"""
_BATCH_AT: Final = """
    SELECT first_id FROM notifications WHERE position BETWEEN ? AND ?
    ORDER BY position DESC LIMIT 1
"""
_BATCHES_BETWEEN: Final = """
    SELECT first_id, count FROM notifications WHERE position BETWEEN ? AND ?
    ORDER BY position
"""
_NEWEST_BATCH_LAST_ID: Final = """
    SELECT first_id + count - 1 FROM notifications WHERE position BETWEEN ? AND ?
    ORDER BY position DESC LIMIT 1
"""
_SAVE_LAST_ID: Final = "UPDATE notify_sinks SET last_id = ? WHERE name = ? AND last_id < ?"
_UPSERT_SINK: Final = """
    INSERT INTO notify_sinks (name, last_id, dropped, head, number) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (name) DO UPDATE
    SET last_id = excluded.last_id, dropped = dropped + excluded.dropped, head = excluded.head
"""

_payload_of = attrgetter("payload")
_series_of = attrgetter("series")
_run_id_of = attrgetter("run_id")
_received_of = attrgetter("received_time")


@dataclass(frozen=True, slots=True)
class _QueuePosition:
    """A sink's queue as committed, kept by the writer's thread between its writes."""

    length: int
    """Notifications queued."""
    last_id: int
    """The last id given (ids are never given again)."""
    head: int
    """The lowest id that may still be queued: the bound drops the oldest by moving it."""
    number: int
    """The sink's number, which places its batches' rowids (:data:`_BATCH_ID_BITS`)."""
    saved: bool
    """Whether the sink has its row in ``notify_sinks``."""

    @property
    def base(self) -> int:
        """The rowid of the sink's batch with first id 0."""
        return self.number << _BATCH_ID_BITS


class StoreVersionError(RuntimeError):
    """The database was written by a newer pierhead whose layout this one does not know."""


class DataDirectoryInUseError(RuntimeError):
    """Another store (another broker) has the data directory open."""


def lock_directory(path: pathlib.Path) -> int:
    """An open descriptor of ``path/LOCK_NAME``, locked for this store alone."""
    descriptor = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip()
        os.close(descriptor)
        by = f" (pid {holder})" if holder.isdigit() else ""
        raise DataDirectoryInUseError(
            f"data directory {path} is in use by another broker{by}"
        ) from None
    except BaseException:
        os.close(descriptor)
        raise
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
    return descriptor


def _microseconds(moment: datetime.datetime) -> int:
    return (moment - _UNIX_EPOCH) // _MICROSECOND


def _chunk_keys(events: Sequence[EventMsg]) -> list[tuple[str, str]]:
    """The (facet, value) pairs a chunk of ``events`` is found by in ``history``."""
    # map/attrgetter/set run in C: a few tens of nanoseconds per event, not a Python loop.
    payload_types: set[type[Payload]] = set(map(type, map(_payload_of, events)))
    keys = [("kind", str(payload_type.__struct_config__.tag)) for payload_type in payload_types]
    keys += [("series", series) for series in set(map(_series_of, events)) if series is not None]
    keys += [("run", run_id) for run_id in set(map(_run_id_of, events)) if run_id is not None]
    return keys


class SQLiteStore:
    """Workspace streams, states and run positions in ``<path>/pierhead.db``."""

    def __init__(
        self,
        path: pathlib.Path,
        *,
        synchronous: Literal["full", "normal"] = "full",
        chunk_events: int = CHUNK_EVENTS,
    ) -> None:
        if synchronous not in _SYNCHRONOUS_PRAGMAS:
            raise ValueError(f"synchronous must be 'full' or 'normal', not {synchronous!r}")
        if chunk_events < 1:
            raise ValueError("a chunk holds at least one event")
        path.mkdir(parents=True, exist_ok=True)
        # First of all, before SQLite touches anything: nothing may change under another store.
        self._lock = lock_directory(path)
        self._database = path / DATABASE_NAME
        self._synchronous_pragma = _SYNCHRONOUS_PRAGMAS[synchronous]
        self._chunk_events = chunk_events
        self._encoder = msgspec.msgpack.Encoder()
        self._event_decoder = msgspec.msgpack.Decoder(EventMsg)
        self._chunk_decoder = msgspec.msgpack.Decoder(list[EventMsg])
        self._state_decoder = msgspec.msgpack.Decoder(WorkspaceState)
        self._notification_decoder = msgspec.msgpack.Decoder(Notification)
        self._batch_decoder = msgspec.msgpack.Decoder(list[msgspec.Raw])
        self._notify_bounds: Mapping[str, int] = {}
        self._queues: dict[str, _QueuePosition] = {}
        """Each sink's queue as committed (kept by the writer's thread, which alone changes
        the queues)."""
        self._idle_readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False
        try:
            self._writer = self._connect()
        except BaseException:
            os.close(self._lock)
            raise
        try:
            self._configure_writer()
            self._prepare_schema()
        except BaseException:
            self._writer.close()
            os.close(self._lock)
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
            if version == 1:
                self._migrate_events_to_chunks(conn)
            if version <= 2:
                conn.execute(_ADD_RUN_LAST_SEEN)
            if version <= 3:
                for statement in _CREATE_NOTIFY:
                    conn.execute(statement)
            if version <= 4:
                conn.execute(_CREATE_NOTIFY_MARKS)
            if version < SCHEMA_VERSION:
                conn.execute(
                    "UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION,)
                )

    def _migrate_events_to_chunks(self, conn: sqlite3.Connection) -> None:
        """Version 1 -> 2: one row per event becomes chunks (in the caller's transaction)."""
        for statement in _CREATE_CHUNKS:
            conn.execute(statement)
        decode = self._event_decoder.decode
        for (workspace_id,) in conn.execute("SELECT id FROM workspaces").fetchall():
            rows = conn.execute(
                'SELECT body FROM events WHERE workspace_id = ? ORDER BY "offset"',
                (workspace_id,),
            )
            while page := rows.fetchmany(self._chunk_events):
                self._insert_chunks(conn, workspace_id, [decode(body) for (body,) in page])
        conn.execute("DROP TABLE events")

    # -- writing -----------------------------------------------------------------------------

    def commit(self, commit: Commit) -> None:
        """Write ``commit`` in one transaction; durable on return, or rolled back and raised."""
        with self._write_transaction() as conn:
            for name, epoch in commit.deleted:
                self._delete_workspace(conn, name, epoch)
            ids = self._upsert_states(conn, commit.states)
            # An event names its workspace but not the epoch; the commit's states say which.
            by_name: dict[str, int | None] = {}
            for name, epoch in ids:
                by_name[name] = None if name in by_name else ids[name, epoch]
            for name, events in commit.by_workspace.items():
                self._insert_chunks(conn, self._event_workspace_id(conn, name, by_name), events)
            self._upsert_runs(conn, commit, ids)
            queues = self._queue_notifications(conn, commit.notifications)
            if commit.notify_unmarked:
                conn.executemany(_DELETE_MARK, commit.notify_unmarked)
            if commit.notify_marks:
                conn.executemany(
                    _INSERT_MARK,
                    [
                        (name, epoch, offset)
                        for (name, epoch), offset in commit.notify_marks.items()
                    ],
                )
        self._queues.update(queues)

    def _queue_notifications(
        self, conn: sqlite3.Connection, notifications: Sequence[Notification]
    ) -> dict[str, _QueuePosition]:
        """Append each sink's notifications to its queue as one batch, dropping the oldest past
        the sink's bound and counting them; each touched sink's queue after it, to keep once
        the transaction is committed."""
        after: dict[str, _QueuePosition] = {}
        for sink, queued in by_sink(notifications).items():
            queue = self._queue_position(conn, sink)
            length, last_id, head, base = queue.length, queue.last_id, queue.head, queue.base
            bound = self._notify_bounds.get(sink, DEFAULT_BOUND)
            excess = dropped_past_bound(length, len(queued), bound)
            # The oldest go first: from the queue, then (a commit past the bound by itself)
            # this commit's own first ones, which are given their ids but never written.
            from_queue = min(excess, length)
            skipped = excess - from_queue
            if from_queue and from_queue == length:
                conn.execute(
                    "DELETE FROM notifications WHERE position BETWEEN ? AND ?", _positions(base)
                )
                conn.execute("DELETE FROM notify_removed WHERE sink = ?", (sink,))
                head = last_id + 1 + skipped
            elif from_queue:
                head = _drop_oldest(conn, sink, base, from_queue, head)
            elif skipped:
                head = last_id + 1 + skipped
            kept = queued[skipped:]
            if kept:
                body = self._encoder.encode(kept)
                first_id = last_id + 1 + skipped
                conn.execute(_INSERT_BATCH, (base + first_id, sink, first_id, len(kept), body))
            last_id += len(queued)
            if excess or not queue.saved:
                # Otherwise the sink's row stays as it is: the newest batch holds its last id
                # (see _queue_position), which saves a commit a statement and a page.
                conn.execute(_UPSERT_SINK, (sink, last_id, excess, head, queue.number))
            after[sink] = _QueuePosition(
                length - from_queue + len(kept), last_id, head, queue.number, saved=True
            )
        return after

    def _queue_position(self, conn: sqlite3.Connection, sink: str) -> _QueuePosition:
        """The sink's queue as committed: read once, then kept by the commits and removals
        (which the writer's thread alone makes)."""
        known = self._queues.get(sink)
        if known is not None:
            return known
        row = conn.execute(
            "SELECT last_id, head, number FROM notify_sinks WHERE name = ?", (sink,)
        ).fetchone()
        if row is None:
            (number,) = conn.execute(
                "SELECT coalesce(max(number), 0) + 1 FROM notify_sinks"
            ).fetchone()
            return _QueuePosition(0, 0, 1, number, saved=False)
        saved_last_id, head, number = row
        newest = conn.execute(
            _NEWEST_BATCH_LAST_ID, _positions(number << _BATCH_ID_BITS)
        ).fetchone()
        last_id = saved_last_id if newest is None else max(saved_last_id, newest[0])
        queued = _queued_count(conn, sink, number, head)
        return _QueuePosition(queued, last_id, head, number, saved=True)

    def _delete_workspace(self, conn: sqlite3.Connection, name: str, epoch: int) -> None:
        row = conn.execute(
            "SELECT id FROM workspaces WHERE name = ? AND epoch = ?", (name, epoch)
        ).fetchone()
        if row is None:
            return
        conn.execute("DELETE FROM chunk_keys WHERE workspace_id = ?", row)
        conn.execute("DELETE FROM chunks WHERE workspace_id = ?", row)
        conn.execute("DELETE FROM runs WHERE workspace_id = ?", row)
        conn.execute("DELETE FROM workspaces WHERE id = ?", row)
        conn.execute(_DELETE_MARK, (name, epoch))

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

    def _insert_chunks(
        self, conn: sqlite3.Connection, workspace_id: int, events: Sequence[EventMsg]
    ) -> None:
        """Store ``events`` (one workspace, offset order) as chunks within the chunk limits."""
        for start in range(0, len(events), self._chunk_events):
            self._insert_chunk(conn, workspace_id, events[start : start + self._chunk_events])

    def _insert_chunk(
        self, conn: sqlite3.Connection, workspace_id: int, events: Sequence[EventMsg]
    ) -> None:
        body = self._encoder.encode(events)
        if len(body) > CHUNK_BYTES and len(events) > 1:
            half = len(events) // 2
            self._insert_chunk(conn, workspace_id, events[:half])
            self._insert_chunk(conn, workspace_id, events[half:])
            return
        last_offset = events[-1].offset
        received_us = _microseconds(max(map(_received_of, events)))
        conn.execute(
            _INSERT_CHUNK, (workspace_id, last_offset, events[0].offset, received_us, body)
        )
        conn.executemany(
            _INSERT_KEY,
            [(workspace_id, facet, value, last_offset) for facet, value in _chunk_keys(events)],
        )

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
        self, conn: sqlite3.Connection, commit: Commit, ids: Mapping[tuple[str, int], int]
    ) -> None:
        rows = []
        by_workspace = commit.by_workspace
        for (name, epoch, run_id), seq in commit.run_seqs.items():
            workspace_id = ids.get((name, epoch))
            if workspace_id is None:
                workspace_id = self._workspace_id(conn, name, epoch)
            # The run's events are in this commit: the workspace's latest receive time in it is
            # theirs, to the commit (one lookup, not a walk over the events).
            events = by_workspace.get(name)
            seen_us = _microseconds(events[-1].received_time) if events else 0
            rows.append((workspace_id, run_id, seq, seen_us))
        conn.executemany(_UPSERT_RUN, rows)

    def forget_runs(
        self,
        *,
        idle_for: datetime.timedelta,
        live: Iterable[tuple[str, int, str]],
        now: datetime.datetime,
    ) -> list[tuple[str, int, str]]:
        """Delete the positions of runs unseen for ``idle_for`` that have no stored event left;
        the (workspace, epoch, run id) of each one deleted.

        ``live`` are the runs connected now: they are seen at ``now``, and so are runs whose
        last sighting is not known (0, from an older database).
        """
        now_us = _microseconds(now)
        with self._write_transaction() as conn:
            conn.execute("UPDATE runs SET last_seen_us = ? WHERE last_seen_us = 0", (now_us,))
            conn.executemany(
                "UPDATE runs SET last_seen_us = max(last_seen_us, ?) WHERE run_id = ?"
                " AND workspace_id = (SELECT id FROM workspaces WHERE name = ? AND epoch = ?)",
                [(now_us, run_id, name, epoch) for name, epoch, run_id in live],
            )
            idle = conn.execute(_IDLE_RUNS, (_microseconds(now - idle_for),)).fetchall()
            conn.executemany(
                "DELETE FROM runs WHERE workspace_id = ? AND run_id = ?",
                [(workspace_id, run_id) for _, _, workspace_id, run_id in idle],
            )
        return [(name, epoch, run_id) for name, epoch, _, run_id in idle]

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
        cutoff_us = _microseconds(now - max_age)
        trimmed: dict[tuple[str, int], int] = {}
        with self._write_transaction() as conn:
            workspaces = conn.execute(
                "SELECT w.id, w.name, w.epoch, w.last_offset, m.from_offset FROM workspaces AS w"
                " LEFT JOIN notify_marks AS m ON m.workspace = w.name AND m.epoch = w.epoch"
            ).fetchall()
            for workspace_id, name, epoch, last_offset, marked_from in workspaces:
                upto = max(
                    last_offset - max_events,
                    self._young_after(conn, workspace_id, last_offset, cutoff_us),
                )
                if marked_from is not None:
                    # Events whose notifications are not queued yet stay until they are.
                    upto = min(upto, marked_from - 1)
                if self._remove_upto(conn, workspace_id, upto):
                    trimmed[name, epoch] = _first_offset(conn, workspace_id, last_offset)
        return trimmed

    def _young_after(
        self, conn: sqlite3.Connection, workspace_id: int, last_offset: int, cutoff_us: int
    ) -> int:
        """The offset before the first event received at or after the cut-off (or the last)."""
        chunks = conn.execute(
            "SELECT body FROM chunks WHERE workspace_id = ? AND received_us >= ?"
            " ORDER BY last_offset",
            (workspace_id, cutoff_us),
        )
        # A chunk's received_us is the latest of its events (an upper bound once rewritten by
        # an earlier trim), so the first young event is in the first such chunk, or a later one.
        for (body,) in chunks:
            for event in self._chunk_decoder.decode(body):
                if _microseconds(event.received_time) >= cutoff_us:
                    chunks.close()
                    return event.offset - 1
        return last_offset

    def _remove_upto(self, conn: sqlite3.Connection, workspace_id: int, upto: int) -> bool:
        """Delete the events at offsets <= ``upto``; whether there were any."""
        removed = conn.execute(
            "DELETE FROM chunks WHERE workspace_id = ? AND last_offset <= ?", (workspace_id, upto)
        ).rowcount
        if removed:
            conn.execute(
                "DELETE FROM chunk_keys WHERE workspace_id = ? AND last_offset <= ?",
                (workspace_id, upto),
            )
        # The oldest chunk left, found on the key; its body is read only if the cut is in it.
        oldest = conn.execute(
            "SELECT last_offset, first_offset FROM chunks"
            " WHERE workspace_id = ? AND last_offset > ? ORDER BY last_offset LIMIT 1",
            (workspace_id, upto),
        ).fetchone()
        if oldest is None or oldest[1] > upto:
            return removed > 0
        last_offset = oldest[0]
        (body,) = conn.execute(
            "SELECT body FROM chunks WHERE workspace_id = ? AND last_offset = ?",
            (workspace_id, last_offset),
        ).fetchone()
        kept = [event for event in self._chunk_decoder.decode(body) if event.offset > upto]
        conn.execute(
            "UPDATE chunks SET first_offset = ?, body = ?"
            " WHERE workspace_id = ? AND last_offset = ?",
            (kept[0].offset, self._encoder.encode(kept), workspace_id, last_offset),
        )
        return True

    # -- reading -----------------------------------------------------------------------------

    def load(self) -> list[StoredWorkspace]:
        """Every stored workspace epoch with its state, first offset and run positions."""
        with self._read_transaction() as conn:
            rows = conn.execute(
                "SELECT w.id, w.state, w.last_offset FROM workspaces AS w ORDER BY w.name, w.epoch"
            ).fetchall()
            first_offsets = {
                workspace_id: _first_offset(conn, workspace_id, last_offset)
                for workspace_id, _, last_offset in rows
            }
            run_seqs: dict[int, dict[str, int]] = {}
            for workspace_id, run_id, seq in conn.execute(
                "SELECT workspace_id, run_id, seq FROM runs"
            ):
                run_seqs.setdefault(workspace_id, {})[run_id] = seq
        return [
            StoredWorkspace(
                state=self._state_decoder.decode(body),
                first_offset=first_offsets[workspace_id],
                run_seqs=run_seqs.get(workspace_id, {}),
            )
            for workspace_id, body, _ in rows
        ]

    def read(self, workspace: str, epoch: int, after: int, limit: int) -> list[EventMsg]:
        """Up to ``limit`` events with offset > ``after``, oldest first."""
        events: list[EventMsg] = []
        with self._reader() as conn:
            chunks = conn.execute(_READ, (workspace, epoch, after))
            try:
                for (body,) in chunks:
                    chunk = self._chunk_decoder.decode(body)
                    if chunk[0].offset <= after:
                        chunk = [event for event in chunk if event.offset > after]
                    events += chunk[: limit - len(events)]
                    if len(events) >= limit:
                        break
            finally:
                chunks.close()
        return events

    def history(self, query: HistoryFilter) -> tuple[list[EventMsg], bool]:
        """A page as ``schema.HistoryQuery`` describes it, and whether more match beyond it."""
        if query.kinds is not None and not query.kinds:
            return [], False
        # One more match than asked for tells whether more match beyond the page.
        wanted = query.limit + 1
        events: list[EventMsg] = []
        with self._read_transaction() as conn:
            row = conn.execute(
                "SELECT id FROM workspaces WHERE name = ? AND epoch = ?",
                (query.workspace, query.epoch),
            ).fetchone()
            if row is None:
                return [], False
            cursors = _history_cursors(conn, row[0], query)
            try:
                for body in _merged_chunks(cursors, descending=query.after is None):
                    chunk = self._chunk_decoder.decode(body)
                    if query.after is None:
                        chunk.reverse()
                    events += [event for event in chunk if query.matches(event)][
                        : wanted - len(events)
                    ]
                    if len(events) >= wanted:
                        break
            finally:
                for cursor in cursors:
                    cursor.close()
        return events[: query.limit], len(events) > query.limit

    # -- notifications -----------------------------------------------------------------------

    @property
    def defers_notifications(self) -> bool:
        """Yes: a commit that writes the queue writes a statement and a page more."""
        return True

    def notify_marked(self) -> dict[tuple[str, int], int]:
        with self._reader() as conn:
            rows = conn.execute("SELECT workspace, epoch, from_offset FROM notify_marks")
            return {(name, epoch): offset for name, epoch, offset in rows}

    def notify_limits(self, limits: Mapping[str, int]) -> None:
        """The bound of each sink's queue, applied by the commits that queue from now on."""
        self._notify_bounds = dict(limits)

    def notify_queue(self, sink: str, limit: int) -> list[QueuedNotification]:
        """Up to ``limit`` of the sink's queued notifications, oldest first."""
        if limit < 1:
            return []
        items: list[QueuedNotification] = []
        decode = self._notification_decoder.decode
        with self._read_transaction() as conn:
            row = conn.execute(
                "SELECT head, number FROM notify_sinks WHERE name = ?", (sink,)
            ).fetchone()
            if row is None:
                return []
            head, number = row
            # Every removed id lies in a batch still queued: one walk in id order beside the
            # batches finds each batch's removed ids.
            removed = iter(
                conn.execute("SELECT id FROM notify_removed WHERE sink = ? ORDER BY id", (sink,))
            )
            next_removed = next(removed, None)
            batches = conn.execute(
                "SELECT first_id, count, body FROM notifications"
                " WHERE position BETWEEN ? AND ? ORDER BY position",
                _positions(number << _BATCH_ID_BITS),
            )
            for first_id, size, body in batches:
                gone: set[int] = set()
                while next_removed is not None and next_removed[0] < first_id + size:
                    gone.add(next_removed[0])
                    next_removed = next(removed, None)
                # Each notification is decoded only once it is known to be wanted.
                for id, raw in enumerate(self._batch_decoder.decode(body), first_id):
                    if id < head or id in gone:
                        continue
                    items.append(QueuedNotification(id, decode(raw)))
                    if len(items) == limit:
                        return items
        return items

    def notify_done(self, sink: str, ids: Sequence[int], lease: str) -> bool:
        """Remove the sink's notifications ``ids`` (an unknown id is skipped). Always allowed:
        one broker has the database, so its sender always holds the lease. Writes: the
        writer's thread only."""
        wanted = sorted(set(ids))
        if not wanted:
            return True
        with self._write_transaction() as conn:
            queue = self._queue_position(conn, sink)
            removed = _remove_ids(conn, sink, queue.base, wanted, queue.head)
            if removed:
                # The batch that held the last id given may be gone now: its row keeps it.
                conn.execute(_SAVE_LAST_ID, (queue.last_id, sink, queue.last_id))
        self._queues[sink] = dataclasses.replace(queue, length=queue.length - removed)
        return True

    def notify_lease(self, sink: str, lease: str, ttl_s: float) -> bool:
        """Always granted: no other broker can open the database (``pierhead.lock``)."""
        return True

    def notify_stats(self) -> dict[str, SinkQueueStats]:
        """Queued and dropped counts of every sink that has had a notification."""
        with self._reader() as conn:
            rows = conn.execute("SELECT name, dropped, head, number FROM notify_sinks").fetchall()
            stats: dict[str, SinkQueueStats] = {}
            for name, dropped, head, number in rows:
                # As committed, kept by the writer's thread; counted only before it knows.
                known = self._queues.get(name)
                queued = known.length if known else _queued_count(conn, name, number, head)
                stats[name] = SinkQueueStats(queued=queued, dropped=dropped)
        return stats

    @property
    def reachable(self) -> bool:
        return True

    def interrupt(self) -> None:
        """Nothing to interrupt: a commit waits only for the local disk."""

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
        # Closing the descriptor releases the lock; the file stays, so that no second store
        # could lock a new file while a third still holds the old one.
        with contextlib.suppress(OSError):
            os.close(self._lock)


def _positions(base: int) -> tuple[int, int]:
    """The rowids of a sink's batches, first and last (``base``: its number's)."""
    return base, base + (1 << _BATCH_ID_BITS) - 1


def _delete_batch(
    conn: sqlite3.Connection, sink: str, base: int, first_id: int, last_id: int, removed: int
) -> None:
    """Delete a batch of the sink's queue whose ids are all removed now (``removed`` of them
    were before)."""
    conn.execute(_DELETE_BATCH, (base + first_id,))
    if removed:
        conn.execute(_FORGET_REMOVED, (sink, first_id, last_id))


def _drop_oldest(conn: sqlite3.Connection, sink: str, base: int, count: int, head: int) -> int:
    """Drop the sink's ``count`` oldest queued notifications (fewer than it holds, ``head``
    its lowest id that may be queued); the head after them. One walk of the oldest batches
    finds the new head; the rows and removed ids below it go in one statement each."""
    removed = [id for (id,) in conn.execute(_REMOVED_OF_SINK, (sink,))]
    batches = conn.execute(_BATCHES_BETWEEN, _positions(base))
    for first_id, size in batches:
        start, end = max(first_id, head), first_id + size
        gone = removed[bisect.bisect_left(removed, start) : bisect.bisect_left(removed, end)]
        live = end - start - len(gone)
        if live <= count:
            count -= live
            head = end
            if count:
                continue
        elif gone:
            # Past ``count`` ids left, skipping those removed.
            skipped = set(gone)
            head = [id for id in range(start, end) if id not in skipped][count]
        else:
            head = start + count
        break
    batches.close()
    conn.execute(_DELETE_BATCHES_BELOW, (base, base + head - 1, head))
    conn.execute(_FORGET_REMOVED_BELOW, (sink, head))
    return head


def _remove_ids(
    conn: sqlite3.Connection, sink: str, base: int, ids: Sequence[int], head: int
) -> int:
    """Remove the sink's queued notifications ``ids`` (sorted, distinct; an id not queued is
    skipped, ``head`` the lowest that may be); how many were queued."""
    ids = ids[bisect.bisect_left(ids, head) :]
    if not ids:
        return 0
    at = conn.execute(_BATCH_AT, (base, base + ids[0])).fetchone()
    start = ids[0] if at is None else at[0]
    batches = conn.execute(_BATCHES_BETWEEN, (base + start, base + ids[-1])).fetchall()
    if not batches:
        return 0
    last_first, last_size = batches[-1]
    removed = [
        id
        for (id,) in conn.execute(
            _REMOVED_BETWEEN, (sink, batches[0][0], last_first + last_size - 1)
        )
    ]
    count = 0
    for first_id, size in batches:
        start, last_id = max(first_id, head), first_id + size - 1
        before = removed[bisect.bisect_left(removed, start) : bisect.bisect_right(removed, last_id)]
        gone = set(before)
        chosen = ids[bisect.bisect_left(ids, start) : bisect.bisect_right(ids, last_id)]
        new = [id for id in chosen if id not in gone]
        if not new:
            continue
        count += len(new)
        if len(before) + len(new) == last_id + 1 - start:
            _delete_batch(conn, sink, base, first_id, last_id, len(before))
        else:
            conn.executemany(_INSERT_REMOVED, [(sink, id) for id in new])
    return count


def _queued_count(conn: sqlite3.Connection, sink: str, number: int, head: int) -> int:
    """How many of the sink's notifications are queued, counted: the batches' ids from the
    head on, less those removed."""
    total, oldest, removed = conn.execute(
        _COUNT_QUEUED, (sink, *_positions(number << _BATCH_ID_BITS))
    ).fetchone()
    below_head = 0 if oldest is None else max(0, head - oldest)
    return int(total) - int(removed) - below_head


def _first_offset(conn: sqlite3.Connection, workspace_id: int, last_offset: int) -> int:
    row = conn.execute(_OLDEST_CHUNK, (workspace_id,)).fetchone()
    return last_offset + 1 if row is None else int(row[0])


def _history_key(query: HistoryFilter) -> tuple[str, Sequence[str]] | None:
    """The facet a history page finds its chunks by: its most selective filter, if any."""
    if query.run_id is not None:
        return "run", [query.run_id]
    if query.series is not None:
        return "series", [query.series]
    if query.kinds is not None:
        return "kind", list(query.kinds)
    return None


def _history_cursors(
    conn: sqlite3.Connection, workspace_id: int, query: HistoryFilter
) -> list[sqlite3.Cursor]:
    """Cursors over (last_offset, body) of the chunks a history page may read, each in the
    page's order: one per value of the page's most selective filter, or one over every chunk.
    Fixed SQL fragments, every value a parameter; events are filtered after decoding."""
    key = _history_key(query)
    # Bounds on the walked table's key: the key rows' when a filter drives the walk.
    column = "c.last_offset" if key is None else "k.last_offset"
    bounds = ""
    params: list[object] = []
    if query.after is not None:
        bounds += f" AND {column} > ?"
        params.append(query.after)
    if query.before is not None:
        # A bound on the key, not on first_offset, so the walk starts at the chunk that holds
        # the offset before ``before`` instead of filtering every newer chunk.
        bound = conn.execute(
            "SELECT last_offset FROM chunks WHERE workspace_id = ? AND last_offset >= ?"
            " ORDER BY last_offset LIMIT 1",
            (workspace_id, query.before - 1),
        ).fetchone()
        if bound is not None:
            bounds += f" AND {column} <= ?"
            params.append(bound[0])
    order = "ASC" if query.after is not None else "DESC"
    if key is None:
        sql = (
            f"SELECT c.last_offset, c.body FROM chunks AS c WHERE c.workspace_id = ?{bounds}"
            f" ORDER BY c.last_offset {order}"
        )
        return [conn.execute(sql, [workspace_id, *params])]
    facet, values = key
    # Driven by the key rows, so a rare value costs its own chunks, not a walk of the stream.
    sql = (
        "SELECT k.last_offset, c.body FROM chunk_keys AS k JOIN chunks AS c"
        " ON c.workspace_id = k.workspace_id AND c.last_offset = k.last_offset"
        f" WHERE k.workspace_id = ? AND k.facet = ? AND k.value = ?{bounds}"
        f" ORDER BY k.last_offset {order}"
    )
    return [conn.execute(sql, [workspace_id, facet, value, *params]) for value in values]


def _merged_chunks(
    cursors: Sequence[Iterable[tuple[int, bytes]]], *, descending: bool
) -> Iterator[bytes]:
    """The bodies of the cursors' chunks in one stream order, each chunk once."""
    previous = None
    for last_offset, body in heapq.merge(*cursors, key=itemgetter(0), reverse=descending):
        if last_offset != previous:
            previous = last_offset
            yield body
