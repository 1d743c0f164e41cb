"""Store calls run in worker threads that outlive nothing.

A cancelled asyncio task stops waiting for its thread, but the thread keeps running: closing
the store under it would pull a connection from a running query. Every store call goes through
here, so shutdown can wait for the last one to return before the store is closed.

Callers that want the same read at the same time can share one call
(:meth:`StoreThreads.run_shared`): a crowd of watchers resuming from one cursor reads the store
once, not once each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")


class StoreThreads:
    def __init__(self) -> None:
        self._running: set[asyncio.Future[object]] = set()
        self._shared: dict[Hashable, asyncio.Future[Any]] = {}

    async def run(self, job: Callable[[], T], *, limiter: anyio.CapacityLimiter | None = None) -> T:
        """Run ``job`` in a worker thread; a cancelled caller leaves it running, but counted."""
        return await asyncio.shield(self._start(job, limiter))

    async def run_shared(self, key: Hashable, job: Callable[[], T]) -> T:
        """As :meth:`run`, for a call whose result depends on ``key`` alone: a caller that
        asks while the call for ``key`` runs waits for that call instead of making another,
        and gets the same object. A caller cancelled meanwhile leaves the call running for
        the others."""
        future: asyncio.Future[T] | None = self._shared.get(key)
        if future is None:
            future = self._shared[key] = self._start(job, None)
            future.add_done_callback(lambda done: self._forget_shared(key, done))
        return await asyncio.shield(future)

    def sharing(self, key: Hashable) -> bool:
        """Whether a call for ``key`` runs now, so that :meth:`run_shared` would join it."""
        return key in self._shared

    def _start(
        self, job: Callable[[], T], limiter: anyio.CapacityLimiter | None
    ) -> asyncio.Future[T]:
        future: asyncio.Future[T] = asyncio.ensure_future(
            anyio.to_thread.run_sync(job, limiter=limiter)
        )
        self._running.add(future)  # type: ignore[arg-type]
        future.add_done_callback(self._running.discard)
        future.add_done_callback(_retrieved)
        return future

    def _forget_shared(self, key: Hashable, done: asyncio.Future[Any]) -> None:
        if self._shared.get(key) is done:
            del self._shared[key]

    async def wait_idle(self) -> None:
        """Wait until no store call is running."""
        while self._running:
            await asyncio.wait(set(self._running))


def _retrieved(future: asyncio.Future[Any]) -> None:
    """Take a call's failure as seen: its caller, if still waiting, gets it through the shield;
    one cancelled meanwhile has stopped caring, and asyncio would otherwise print the failure
    with a traceback when the future is collected (a claim renewal cut off by a drain while
    Redis did not answer, say)."""
    if not future.cancelled():
        future.exception()
