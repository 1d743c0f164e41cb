"""The group-commit writer against a real SQLite store."""

from __future__ import annotations

import asyncio
import datetime
import sqlite3
from pathlib import Path

import pytest

import schema
from broker._sqlite_store import SQLiteStore
from broker._store import Commit
from broker._threads import StoreThreads
from broker._writer import GroupCommitWriter, StoreFailedError

pytestmark = pytest.mark.asyncio
T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def event(offset: int) -> schema.EventMsg:
    return schema.EventMsg(
        workspace="w",
        offset=offset,
        create_time=T0,
        received_time=T0,
        payload=schema.Scalar(name="x", value=float(offset)),
        run_id="r",
        seq=offset,
    )


def state(last_offset: int) -> schema.WorkspaceState:
    return schema.WorkspaceState(name="w", epoch=1, created=T0, last_offset=last_offset)


async def test_submissions_made_during_a_commit_share_the_next_one(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path)
    commits: list[Commit] = []
    writer = GroupCommitWriter(store, commits.append, max_events=1000, threads=StoreThreads())
    runner = asyncio.create_task(writer.run())
    done = [
        writer.submit(events=[event(i)], states={("w", 1): state(i)}, run_seqs={("w", 1, "r"): i})
        for i in range(1, 201)
    ]
    await writer.flush()
    assert all(future.done() for future in done)
    assert sum(len(commit.events) for commit in commits) == 200
    assert len(commits) < 200
    writer.stop()
    await runner
    (loaded,) = store.load()
    assert loaded.state.last_offset == 200
    assert loaded.run_seqs == {"r": 200}
    assert [e.offset for e in store.read("w", 1, 0, 500)] == list(range(1, 201))
    store.close()


async def test_a_failing_store_fails_every_waiter_and_the_writer(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path)
    writer = GroupCommitWriter(store, lambda _: None, max_events=10, threads=StoreThreads())
    runner = asyncio.create_task(writer.run())
    ok = writer.submit(events=[event(1)], states={("w", 1): state(1)})
    await ok
    duplicate = writer.submit(events=[event(1)], states={("w", 1): state(1)})
    with pytest.raises(StoreFailedError):
        await duplicate
    with pytest.raises(StoreFailedError) as failed:
        await runner
    assert isinstance(failed.value.__cause__, sqlite3.IntegrityError)
    with pytest.raises(StoreFailedError):
        writer.submit(events=[event(2)])
    store.close()


async def test_jobs_run_between_commits_and_stop_finishes_the_queue(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path)
    writer = GroupCommitWriter(store, lambda _: None, max_events=10, threads=StoreThreads())
    runner = asyncio.create_task(writer.run())
    writer.submit(events=[event(1)], states={("w", 1): state(1)})
    loaded = await writer.in_writer(store.load)
    assert isinstance(loaded, list)
    last = writer.submit(events=[event(2)], states={("w", 1): state(2)})
    writer.stop()
    await runner
    assert last.done()
    assert store.load()[0].state.last_offset == 2
    store.close()
