"""Group commit: one writer turns everything submitted meanwhile into one durable transaction.

While a commit runs in its worker thread, new submissions pile up; the next commit takes them
all (up to ``max_events``). Batches therefore grow with load by themselves, and nothing waits
for a timer when the broker is idle. Acks and fan-out happen in ``on_commit``, after the
transaction is durable, never before.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import anyio
import structlog

from schema import EventMsg, WorkspaceState

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
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


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
        self._stopping = False
        self._on_commit = on_commit
        self._max_events = max_events
        self._pending: deque[_Submission] = deque()
        self._jobs: deque[tuple[Callable[[], object], asyncio.Future[object]]] = deque()
        self._wakeup = asyncio.Event()
        self._limiter = anyio.CapacityLimiter(1)
        self._failure: BaseException | None = None
        self.commits = 0
        self.committed_events = 0

    @property
    def backlog(self) -> int:
        """Events submitted and not yet committed."""
        return sum(len(submission.events) for submission in self._pending)

    def submit(
        self,
        *,
        events: Sequence[EventMsg] = (),
        states: Mapping[tuple[str, int], WorkspaceState] | None = None,
        run_seqs: Mapping[tuple[str, int, str], int] | None = None,
        deleted: Sequence[tuple[str, int]] = (),
    ) -> asyncio.Future[None]:
        """Queue writes for the next commit; the future resolves once they are durable."""
        if self._failure is not None:
            raise StoreFailedError("the store failed earlier; nothing more is accepted")
        if self._stopping:
            raise StoreFailedError("the writer is stopping; nothing more is accepted")
        submission = _Submission(events, states or {}, run_seqs or {}, deleted)
        self._pending.append(submission)
        self._last = submission.done
        self._wakeup.set()
        return submission.done

    async def in_writer(self, job: Callable[[], T]) -> T:
        """Run ``job`` in the writer's thread, between two commits (retention, for one)."""
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._jobs.append((job, future))
        self._wakeup.set()
        return await future  # type: ignore[return-value]

    async def flush(self) -> None:
        """Wait until everything submitted so far is durable (or has failed)."""
        if self._last is not None and not self._last.done():
            await asyncio.wait([self._last])

    def stop(self) -> None:
        """Refuse new submissions; ``run`` returns once everything before is committed."""
        self._stopping = True
        self._wakeup.set()

    async def run(self) -> None:
        """Commit until stopped; a store failure fails every waiter and raises StoreFailedError."""
        while not (self._stopping and not self._pending and not self._jobs):
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._jobs:
                job, future = self._jobs.popleft()
                try:
                    future.set_result(await self._in_thread(job))
                except Exception as exc:  # handed to the waiter
                    future.set_exception(exc)
            while self._pending:
                await self._commit_next()

    async def _commit_next(self) -> None:
        batch = self._take_batch()
        commit = _merge(batch)
        try:
            await self._in_thread(lambda: self._store.commit(commit))
        except Exception as exc:
            self._failure = exc
            log.critical("store_commit_failed", error=repr(exc), events=len(commit.events))
            failure = StoreFailedError(f"commit of {len(commit.events)} events failed: {exc!r}")
            for submission in (*batch, *self._pending):
                if not submission.done.done():
                    submission.done.set_exception(failure)
                    submission.done.exception()  # marks it retrieved; the raise below reports it
            self._pending.clear()
            raise failure from exc
        self.commits += 1
        self.committed_events += len(commit.events)
        self._on_commit(commit)
        for submission in batch:
            submission.done.set_result(None)

    def _take_batch(self) -> list[_Submission]:
        batch = [self._pending.popleft()]
        size = len(batch[0].events)
        while self._pending and size + len(self._pending[0].events) <= self._max_events:
            submission = self._pending.popleft()
            size += len(submission.events)
            batch.append(submission)
        return batch

    async def _in_thread(self, job: Callable[[], T]) -> T:
        return await self._threads.run(job, limiter=self._limiter)


def _merge(batch: Sequence[_Submission]) -> Commit:
    if len(batch) == 1:
        only = batch[0]
        return Commit(
            events=only.events, states=only.states, run_seqs=only.run_seqs, deleted=only.deleted
        )
    events: list[EventMsg] = []
    states: dict[tuple[str, int], WorkspaceState] = {}
    run_seqs: dict[tuple[str, int, str], int] = {}
    deleted: list[tuple[str, int]] = []
    for submission in batch:
        events.extend(submission.events)
        # Later submissions carry later states of the same workspace.
        states.update(submission.states)
        for key, seq in submission.run_seqs.items():
            run_seqs[key] = max(seq, run_seqs.get(key, 0))
        deleted.extend(submission.deleted)
    return Commit(events=events, states=states, run_seqs=run_seqs, deleted=deleted)
