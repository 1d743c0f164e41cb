"""The optional on-disk spool: queued and unacknowledged events that outlive the process.

A worker started with ``spool=path`` writes every event here before it is queued and deletes
it once acknowledged. A process that dies (even by SIGKILL) and is started again with the same
run id and spool sends what was left, under the seqs it had, so the broker keeps each event
once. SQLite in WAL mode with ``synchronous=NORMAL``: a committed row survives the process,
which is the failure the spool is for.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

import msgspec

from schema import Event

from ._errors import InvalidArgumentError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    seq INTEGER,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS events_seq ON events (seq) WHERE seq IS NOT NULL;
"""


class SpoolMismatchError(InvalidArgumentError):
    """The spool file belongs to another workspace or run."""


class Spool:
    def __init__(self, path: str | os.PathLike[str], *, workspace: str, run_id: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(Event)
        owner = f"{workspace}/{run_id}"
        row = self._db.execute("SELECT value FROM meta WHERE key = 'owner'").fetchone()
        if row is None:
            self._db.execute("INSERT INTO meta VALUES ('owner', ?)", (owner,))
        elif row[0] != owner:
            self._db.close()
            raise SpoolMismatchError(
                f"spool {self.path} holds events of {row[0]}, not of {owner}: "
                "use the run id it was written with, or another file"
            )

    def load(self) -> list[tuple[int, int | None, Event]]:
        """Every spooled event, oldest first: (row id, seq or None, event)."""
        rows = self._db.execute("SELECT id, seq, body FROM events ORDER BY id").fetchall()
        return [(row_id, seq, self._decoder.decode(body)) for row_id, seq, body in rows]

    def append(self, event: Event) -> int:
        """Write an event before it is queued; its row id."""
        cursor = self._db.execute(
            "INSERT INTO events (body) VALUES (?)", (self._encoder.encode(event),)
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def numbered(self, rows: Iterable[tuple[int, int]]) -> None:
        """Record the seqs given to rows (row id, seq), before they are sent."""
        with self._transaction():
            self._db.executemany(
                "UPDATE events SET seq = ? WHERE id = ?", [(seq, row) for row, seq in rows]
            )

    def acked(self, seq: int) -> None:
        self._db.execute("DELETE FROM events WHERE seq IS NOT NULL AND seq <= ?", (seq,))

    def dropped(self, rows: Iterable[int]) -> None:
        with self._transaction():
            self._db.executemany("DELETE FROM events WHERE id = ?", [(row,) for row in rows])

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        # Autocommit mode would commit each row of an executemany on its own.
        self._db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()
