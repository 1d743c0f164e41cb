"""Dedupe positions of runs are forgotten once a run has been gone long enough with no event left.

The store against a real SQLite file with the time passed in (a run's sighting is the receive
time of its events, or a pass that finds it connected); then a real broker that forgets a run
and welcomes it back at seq 0, also after a restart.
"""

from __future__ import annotations

import asyncio
import datetime
import pathlib
import sqlite3
from collections.abc import Sequence
from typing import Final

import pytest

import schema
from broker._sqlite_store import DATABASE_NAME, SQLiteStore
from broker._store import Commit
from broker.testing import running_broker
from schema import EventMsg
from tests.broker.wire import scalars, wire_client, worker_hello

NAME: Final = "ws"
EPOCH: Final = 1
T0: Final = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
DAY: Final = datetime.timedelta(days=1)
IDLE: Final = 30 * DAY
WAIT_S: Final = 20.0


def _events(first: int, run_id: str, seqs: Sequence[int], at: datetime.datetime) -> list[EventMsg]:
    return [
        EventMsg(
            workspace=NAME,
            offset=first + i,
            create_time=at,
            received_time=at,
            payload=schema.Scalar(name="n", value=float(seq)),
            run_id=run_id,
            seq=seq,
        )
        for i, seq in enumerate(seqs)
    ]


def _commit(events: list[EventMsg], run_id: str, before: Sequence[EventMsg] = ()) -> Commit:
    state = schema.fold_events(
        schema.new_workspace_state(NAME, epoch=EPOCH, created=T0), [*before, *events]
    )
    return Commit(
        events=events,
        states={(NAME, EPOCH): state},
        run_seqs={(NAME, EPOCH, run_id): events[-1].seq or 0},
    )


def _positions(store: SQLiteStore) -> dict[str, int]:
    (workspace,) = store.load()
    return dict(workspace.run_seqs)


def test_a_run_is_forgotten_only_when_idle_long_enough_with_no_event_left(
    tmp_path: pathlib.Path,
) -> None:
    store = SQLiteStore(tmp_path)
    try:
        old = _events(1, "old", [1, 2, 3], T0)
        kept = _events(4, "kept", [1, 2], T0)
        live = _events(6, "live", [1], T0)
        fresh = _events(7, "fresh", [1], T0 + 20 * DAY)
        history: list[EventMsg] = []
        for events in (old, kept, live, fresh):
            store.commit(_commit(events, events[0].run_id or "", history))
            history += events
        # Retention removes the events of "old" (offsets 1-3) only.
        store.trim(max_events=4, max_age=10 * 365 * DAY, now=T0)
        idle_for, alive = IDLE, [(NAME, EPOCH, "live")]

        # 29 days after the last events: nobody is idle long enough yet.
        assert store.forget_runs(idle_for=idle_for, live=alive, now=T0 + 29 * DAY) == []

        # 31 days: "old" has no event left and was last seen 31 days ago: forgotten. "kept"
        # still has its events; "live" is connected (and was just seen again); "fresh" is young.
        forgotten = store.forget_runs(idle_for=idle_for, live=alive, now=T0 + 31 * DAY)
        assert forgotten == [(NAME, EPOCH, "old")]
        assert _positions(store) == {"kept": 2, "live": 1, "fresh": 1}

        # Every event gone; "live" disconnected after the pass at day 31.
        store.trim(max_events=0, max_age=10 * 365 * DAY, now=T0)
        assert store.forget_runs(idle_for=idle_for, live=[], now=T0 + 50 * DAY) == [
            (NAME, EPOCH, "kept")
        ]
        assert _positions(store) == {"live": 1, "fresh": 1}
        # More than 30 days after the last pass that saw "live" connected (day 31).
        assert sorted(store.forget_runs(idle_for=idle_for, live=[], now=T0 + 62 * DAY)) == [
            (NAME, EPOCH, "fresh"),
            (NAME, EPOCH, "live"),
        ]
        assert _positions(store) == {}
    finally:
        store.close()


def test_runs_of_a_version_2_database_are_seen_at_the_first_pass(tmp_path: pathlib.Path) -> None:
    store = SQLiteStore(tmp_path)
    store.commit(_commit(_events(1, "r", [1], T0), "r"))
    store.trim(max_events=0, max_age=10 * 365 * DAY, now=T0)
    store.close()
    # What a version 2 database holds: no last sighting.
    with sqlite3.connect(tmp_path / DATABASE_NAME) as conn:
        conn.execute("ALTER TABLE runs DROP COLUMN last_seen_us")
        conn.execute("UPDATE meta SET value = 2 WHERE key = 'schema_version'")
    conn.close()
    store = SQLiteStore(tmp_path)
    try:
        assert _positions(store) == {"r": 1}
        # Not known: seen at the first pass, forgotten only a full idle time after it.
        assert store.forget_runs(idle_for=IDLE, live=[], now=T0 + 100 * DAY) == []
        assert store.forget_runs(idle_for=IDLE, live=[], now=T0 + 129 * DAY) == []
        assert store.forget_runs(idle_for=IDLE, live=[], now=T0 + 131 * DAY) == [(NAME, EPOCH, "r")]
    finally:
        store.close()


@pytest.mark.asyncio
async def test_a_forgotten_run_is_welcomed_back_from_seq_0(tmp_path: pathlib.Path) -> None:
    settings = {
        "retention_events": 1,
        "retention_interval_s": 0.05,
        "forget_runs_after": datetime.timedelta(microseconds=1),
    }
    async with running_broker(tmp_path, **settings) as server:
        assert server.broker is not None
        broker = server.broker
        async with wire_client(server.url, worker_hello(NAME, "gone")) as worker:
            await worker.publish(1, scalars(0, 5))
            assert (await worker.expect(schema.Ack)).seq == 5
        async with wire_client(server.url, worker_hello(NAME, "stays")) as other:
            await other.publish(1, scalars(0, 3))
            assert (await other.expect(schema.Ack)).seq == 3
            # While connected, "stays" keeps its position whatever the passes find.
            async with asyncio.timeout(WAIT_S):
                while "gone" in broker.workspaces[NAME].acked_seqs:
                    await asyncio.sleep(0.01)
            assert broker.workspaces[NAME].acked_seqs.get("stays") == 3
        async with wire_client(server.url, worker_hello(NAME, "gone")) as back:
            assert back.welcome is not None
            welcomed_at = back.welcome.acked_seq
    async with running_broker(tmp_path) as server:
        async with wire_client(server.url, worker_hello(NAME, "gone")) as again:
            assert again.welcome is not None
            after_restart = again.welcome.acked_seq
    assert welcomed_at == 0
    assert after_restart == 0
