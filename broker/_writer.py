"""Group commit: one writer turns everything submitted meanwhile into one durable transaction.

The writer is one long-lived worker thread. Submissions queue up while it commits, and as soon
as a commit is durable the thread takes everything queued (up to ``max_events``) as the next
one, without waiting for the event loop: batches grow with load by themselves, and nothing
waits for a timer when the broker is idle. Acks and fan-out happen in ``on_commit``, on the
event loop, after the transaction is durable, never before.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import structlog

from schema import EventMsg, WorkspaceState

from ._notify import Notification
from ._store import Commit, Store
from ._threads import StoreThreads

log = structlog.get_logger("pierhead.writer")

T = TypeVar("T")


@dataclass(slots=True)
class _Submission:
    events: Sequence[EventMsg]
    states: Mapping[tuple[str, int], WorkspaceState]
    run_seqs: Mapping[tuple[str, int, str], int]
    deleted: Sequence[tuple[str, int]]
    notifications: Sequence[Notification]
    notify_marks: Mapping[tuple[str, int], int]
    notify_unmarked: Sequence[tuple[str, int]]
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@dataclass(slots=True)
class _Failure:
    """A commit the store refused: the thread stops, and the event loop fails every waiter."""

    batch: list[_Submission]
    events: int
    error: Exception


class StoreFailedError(RuntimeError):
    """The store could not write; the broker stops rather than acknowledge what it lost."""


class GroupCommitWriter:
    def __init__(
        self,
        store: Store,
        on_commit: Callable[[Commit], None],
        *,
        max_events: int,
        threads: StoreThreads,
    ) -> None:
        self._store = store
        self._threads = threads
        self._last: asyncio.Future[None] | None = None
        self._on_commit = on_commit
        self._max_events = max_events
        # Shared with the writer thread, under ``_work``: the event loop appends, the thread
        # takes. The thread holds the lock only to take, never while it writes.
        self._work = threading.Condition()
        self._pending: deque[_Submission] = deque()
        self._jobs: deque[tuple[Callable[[], Any], asyncio.Future[Any]]] = deque()
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failure: BaseException | None = None
        self._after_commit_failure: Exception | None = None
        self.commits = 0
        self.committed_events = 0

    @property
    def backlog(self) -> int:
        """Events submitted and not yet committed."""
        with self._work:
            return sum(len(submission.events) for submission in self._pending)

    def submit(
        self,
        *,
        events: Sequence[EventMsg] = (),
        states: Mapping[tuple[str, int], WorkspaceState] | None = None,
        run_seqs: Mapping[tuple[str, int, str], int] | None = None,
        deleted: Sequence[tuple[str, int]] = (),
        notifications: Sequence[Notification] = (),
        notify_marks: Mapping[tuple[str, int], int] | None = None,
        notify_unmarked: Sequence[tuple[str, int]] = (),
    ) -> asyncio.Future[None]:
        """Queue writes for the next commit; the future resolves once they are durable.
        ``notifications`` are queued in the commit of these events, after those of earlier
        submissions; the marks are applied in submission order (see :class:`Commit`)."""
        if self._failure is not None:
            raise StoreFailedError("the store failed earlier; nothing more is accepted")
        if self._stopping:
            raise StoreFailedError("the writer is stopping; nothing more is accepted")
        submission = _Submission(
            events,
            states or {},
            run_seqs or {},
            deleted,
            notifications,
            notify_marks or {},
            notify_unmarked,
        )
        with self._work:
            self._pending.append(submission)
            self._work.notify()
        self._last = submission.done
        return submission.done

    def in_writer(self, job: Callable[[], T]) -> asyncio.Future[T]:
        """Queue ``job`` for the writer's thread, to run between two commits (retention, for
        one); the future gets its result."""
        if self._stopping or self._failure is not None:
            raise StoreFailedError("the writer has stopped; it runs nothing more")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        with self._work:
            self._jobs.append((job, future))
            self._work.notify()
        return future

    async def flush(self) -> None:
        """Wait until everything submitted so far is durable (or has failed)."""
        if self._last is not None and not self._last.done():
            await asyncio.wait([self._last])

    def stop(self) -> None:
        """Refuse new submissions; ``run`` returns once everything before is committed."""
        with self._work:
            self._stopping = True
            self._work.notify()

    async def run(self) -> None:
        """Commit until stopped; a store failure fails every waiter and raises StoreFailedError.

        Cancelling ``run`` stops the writer too: the thread still commits what was submitted
        before, and a failure meanwhile still fails the waiters, so that none is left hanging
        on a thread that no one will stop. A writer runs once.
        """
        if self._loop is not None:
            raise RuntimeError("a writer runs once")
        self._loop = asyncio.get_running_loop()
        try:
            await self._threads.run(self._write, limiter=anyio.CapacityLimiter(1))
        except asyncio.CancelledError:
            self.stop()
            raise
        if self._failure is not None:
            raise StoreFailedError(f"the store failed: {self._failure!r}") from self._failure
        if self._after_commit_failure is not None:
            raise self._after_commit_failure

    # The writer thread ----------------------------------------------------------------------

    def _write(self) -> None:
        while True:
            with self._work:
                while not (self._pending or self._jobs or self._stopping):
                    self._work.wait()
                jobs = list(self._jobs)
                self._jobs.clear()
                batch = self._take_batch()
            for job, future in jobs:
                self._run_job(job, future)
            if not batch:
                if not jobs:
                    return  # stopping, and nothing is left
                continue
            commit = _merge(batch)
            try:
                self._store.commit(commit)
            except Exception as exc:
                # Handled on the event loop whether or not ``run`` still waits for this thread.
                self._to_loop(self._fail, _Failure(batch, len(commit.events), exc))
                return
            self._to_loop(self._committed, batch, commit)

    def _take_batch(self) -> list[_Submission]:
        batch: list[_Submission] = []
        size = 0
        while self._pending and (
            not batch or size + len(self._pending[0].events) <= self._max_events
        ):
            submission = self._pending.popleft()
            size += len(submission.events)
            batch.append(submission)
        return batch

    def _run_job(self, job: Callable[[], Any], future: asyncio.Future[Any]) -> None:
        try:
            result = job()
        except Exception as exc:  # handed to the waiter
            self._to_loop(_settle, future, None, exc)
        else:
            self._to_loop(_settle, future, result, None)

    def _to_loop(self, callback: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        # A closed loop raises RuntimeError: nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(callback, *args)

    # Back on the event loop -----------------------------------------------------------------

    def _committed(self, batch: list[_Submission], commit: Commit) -> None:
        self.commits += 1
        self.committed_events += len(commit.events)
        try:
            if self._after_commit_failure is None:
                self._on_commit(commit)
        except Exception as exc:
            # A fault in what follows a commit, not in the store: the writer stops, and ``run``
            # raises it (the first one; later commits are stored but not fanned out).
            self._after_commit_failure = exc
            self.stop()
        finally:
            for submission in batch:
                if not submission.done.done():
                    submission.done.set_result(None)  # durable, whatever failed after

    def _fail(self, failure: _Failure) -> None:
        """The store refused a commit: every waiter, on writes and on jobs, fails."""
        self._failure = failure.error
        log.critical("store_commit_failed", error=repr(failure.error), events=failure.events)
        error = StoreFailedError(f"commit of {failure.events} events failed: {failure.error!r}")
        with self._work:
            self._stopping = True
            waiting = [submission.done for submission in (*failure.batch, *self._pending)]
            waiting += [future for _, future in self._jobs]
            self._pending.clear()
            self._jobs.clear()
        for future in waiting:
            if not future.done():
                future.set_exception(error)
                future.exception()  # marks it retrieved: ``run`` reports the failure


def _settle(future: asyncio.Future[Any], result: Any, error: Exception | None) -> None:
    if future.done():
        return  # its waiter was cancelled
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _merge(batch: Sequence[_Submission]) -> Commit:
    if len(batch) == 1:
        only = batch[0]
        return Commit(
            events=only.events,
            states=only.states,
            run_seqs=only.run_seqs,
            deleted=only.deleted,
            notifications=only.notifications,
            notify_marks=only.notify_marks,
            notify_unmarked=only.notify_unmarked,
        )
    events: list[EventMsg] = []
    states: dict[tuple[str, int], WorkspaceState] = {}
    run_seqs: dict[tuple[str, int, str], int] = {}
    deleted: list[tuple[str, int]] = []
    notifications: list[Notification] = []
    marks: dict[tuple[str, int], int] = {}
    unmarked: list[tuple[str, int]] = []
    for submission in batch:
        events.extend(submission.events)
        # Later submissions carry later states of the same workspace.
        states.update(submission.states)
        for key, seq in submission.run_seqs.items():
            run_seqs[key] = max(seq, run_seqs.get(key, 0))
        deleted.extend(submission.deleted)
        notifications.extend(submission.notifications)
        # A mark removed after one made earlier in the batch takes it away; one made after
        # a removal stands (the store removes before it adds).
        for workspace in submission.notify_unmarked:
            marks.pop(workspace, None)
            unmarked.append(workspace)
        for workspace, offset in submission.notify_marks.items():
            marks.setdefault(workspace, offset)
    return Commit(
        events=events,
        states=states,
        run_seqs=run_seqs,
        deleted=deleted,
        notifications=notifications,
        notify_marks=marks,
        notify_unmarked=unmarked,
    )
