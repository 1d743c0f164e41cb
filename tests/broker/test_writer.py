"""The group-commit writer against a real SQLite store."""

from __future__ import annotations

import asyncio
import datetime
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

import schema
from broker._sqlite_store import SQLiteStore
from broker._store import Commit, Store
from broker._threads import StoreThreads
from broker._writer import GroupCommitWriter, StoreFailedError, _merge, _Submission

pytestmark = pytest.mark.asyncio
T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
BOUND_S = 10.0
"""How long a test waits on another thread before it calls the wait failed."""


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


def started(
    store: Store,
    on_commit: Callable[[Commit], None] = lambda _: None,
    *,
    max_events: int = 10,
    threads: StoreThreads | None = None,
) -> tuple[GroupCommitWriter, asyncio.Task[None]]:
    """A writer on ``store`` and the task that runs it."""
    writer = GroupCommitWriter(
        store, on_commit, max_events=max_events, threads=threads or StoreThreads()
    )
    return writer, asyncio.create_task(writer.run())


async def test_submissions_made_during_a_commit_share_the_next_one(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path)
    commits: list[Commit] = []
    writer, runner = started(store, commits.append, max_events=1000)
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


async def test_marks_merged_into_one_commit_apply_in_submission_order(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path)
    commits: list[Commit] = []
    writer, runner = started(store, commits.append, max_events=1000)
    # While the first commit is written, the rest queue up and share the next one.
    first = writer.submit(notify_marks={("a", 1): 1, ("b", 1): 1})
    writer.submit(notify_marks={("a", 1): 3})  # marked already: the earlier offset stands
    writer.submit(notify_unmarked=[("a", 1), ("b", 1)])  # what they stood for is queued
    writer.submit(notify_marks={("a", 1): 7})  # marked again after that
    await writer.flush()
    writer.stop()
    await runner
    assert first.done()
    assert store.notify_marked() == {("a", 1): 7}
    store.close()


async def test_a_merge_keeps_the_marks_made_after_the_last_removal() -> None:
    def marking(marks: dict[tuple[str, int], int], unmarked: list[tuple[str, int]]) -> _Submission:
        return _Submission((), {}, {}, (), (), marks, unmarked)

    merged = _merge(
        [
            marking({("a", 1): 1, ("b", 1): 1}, []),
            marking({("a", 1): 3}, []),
            marking({}, [("a", 1), ("b", 1)]),
            marking({("a", 1): 7}, []),
        ]
    )
    assert (merged.notify_marks, merged.notify_unmarked) == ({("a", 1): 7}, [("a", 1), ("b", 1)])
    merged = _merge([marking({("a", 1): 1}, []), marking({}, [("a", 1)])])
    assert (merged.notify_marks, merged.notify_unmarked) == ({}, [("a", 1)])


async def test_a_failing_store_fails_every_waiter_and_the_writer(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path)
    writer, runner = started(store)
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
    writer, runner = started(store)
    writer.submit(events=[event(1)], states={("w", 1): state(1)})
    loaded = await writer.in_writer(store.load)
    assert isinstance(loaded, list)
    last = writer.submit(events=[event(2)], states={("w", 1): state(2)})
    writer.stop()
    await runner
    assert last.done()
    assert store.load()[0].state.last_offset == 2
    store.close()


class GatedStore(SQLiteStore):
    """Holds its first commit until released, and says when offset 2 is durable."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.first_started = threading.Event()
        self.release_first = threading.Event()
        self.second_durable = threading.Event()

    def commit(self, commit: Commit) -> None:
        if not self.first_started.is_set():
            self.first_started.set()
            assert self.release_first.wait(BOUND_S)
        super().commit(commit)
        if any(event.offset == 2 for event in commit.events):
            self.second_durable.set()


async def test_the_thread_takes_the_next_commit_without_the_event_loop(tmp_path: Path) -> None:
    store = GatedStore(tmp_path)
    writer, runner = started(store)
    first = writer.submit(events=[event(1)], states={("w", 1): state(1)})
    assert await asyncio.to_thread(store.first_started.wait, BOUND_S)
    second = writer.submit(events=[event(2)], states={("w", 1): state(2)})
    store.release_first.set()
    # The event loop is blocked here: a writer that needed it to start the next commit would
    # never make offset 2 durable.
    assert store.second_durable.wait(BOUND_S)
    await asyncio.gather(first, second)
    assert writer.commits == 2
    writer.stop()
    await runner
    store.close()


async def test_a_cancelled_writer_commits_what_was_submitted_and_its_thread_ends(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path)
    threads = StoreThreads()
    writer, runner = started(store, threads=threads)
    await writer.submit(events=[event(1)], states={("w", 1): state(1)})
    done = writer.submit(events=[event(2)], states={("w", 1): state(2)})
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    async with asyncio.timeout(BOUND_S):
        await threads.wait_idle()
        await done
    with pytest.raises(StoreFailedError):
        writer.submit(events=[event(3)])
    assert store.load()[0].state.last_offset == 2
    store.close()


async def test_a_failing_job_fails_its_waiter_only(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path)
    writer, runner = started(store)
    with pytest.raises(ZeroDivisionError):
        await writer.in_writer(lambda: 1 // 0)
    await writer.submit(events=[event(1)], states={("w", 1): state(1)})
    writer.stop()
    await runner
    with pytest.raises(StoreFailedError):
        await writer.in_writer(store.load)
    store.close()


async def test_a_failure_after_a_commit_stops_the_writer_and_the_first_is_raised(
    tmp_path: Path,
) -> None:
    store = GatedStore(tmp_path)
    fanned_out: list[Commit] = []

    def broken_fan_out(commit: Commit) -> None:
        fanned_out.append(commit)
        raise LookupError(f"fan-out bug {len(fanned_out)}")

    writer, runner = started(store, broken_fan_out, max_events=1)
    first = writer.submit(events=[event(1)], states={("w", 1): state(1)})
    assert await asyncio.to_thread(store.first_started.wait, BOUND_S)
    later = [writer.submit(events=[event(n)], states={("w", 1): state(n)}) for n in (2, 3)]
    store.release_first.set()
    async with asyncio.timeout(BOUND_S):
        await asyncio.gather(first, *later)  # durable all the same
        with pytest.raises(LookupError, match="fan-out bug 1"):
            await runner
    assert len(fanned_out) == 1
    with pytest.raises(StoreFailedError):
        writer.submit(events=[event(4)])
    assert store.load()[0].state.last_offset == 3
    store.close()


class FailingStore(SQLiteStore):
    """Fails its first commit, once released."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.failing = threading.Event()
        self.release = threading.Event()

    def commit(self, commit: Commit) -> None:
        self.failing.set()
        assert self.release.wait(BOUND_S)
        raise OSError("disk gone")


async def test_a_job_queued_while_a_commit_fails_fails_too(tmp_path: Path) -> None:
    store = FailingStore(tmp_path)
    writer, runner = started(store)
    done = writer.submit(events=[event(1)], states={("w", 1): state(1)})
    assert await asyncio.to_thread(store.failing.wait, BOUND_S)
    job = writer.in_writer(store.load)
    store.release.set()
    async with asyncio.timeout(BOUND_S):
        for waiter in (done, job, runner):
            with pytest.raises(StoreFailedError):
                await waiter
    store.close()


async def test_a_cancelled_writer_still_fails_its_waiters_when_the_store_fails(
    tmp_path: Path,
) -> None:
    store = FailingStore(tmp_path)
    threads = StoreThreads()
    writer, runner = started(store, threads=threads)
    done = writer.submit(events=[event(1)], states={("w", 1): state(1)})
    assert await asyncio.to_thread(store.failing.wait, BOUND_S)
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    store.release.set()
    async with asyncio.timeout(BOUND_S):
        with pytest.raises(StoreFailedError):
            await done
        await threads.wait_idle()
    store.close()


async def test_a_writer_runs_once(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path)
    writer, runner = started(store)
    await writer.submit(events=[event(1)], states={("w", 1): state(1)})
    with pytest.raises(RuntimeError, match="runs once"):
        await writer.run()
    writer.stop()
    await runner
    store.close()
