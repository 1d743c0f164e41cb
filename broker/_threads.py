"""Store calls run in worker threads that outlive nothing.

A cancelled asyncio task stops waiting for its thread, but the thread keeps running: closing
the store under it would pull a connection from a running query. Every store call goes through
here, so shutdown can wait for the last one to return before the store is closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")


class StoreThreads:
    def __init__(self) -> None:
        self._running: set[asyncio.Future[object]] = set()

    async def run(self, job: Callable[[], T], *, limiter: anyio.CapacityLimiter | None = None) -> T:
        """Run ``job`` in a worker thread; a cancelled caller leaves it running, but counted."""
        future: asyncio.Future[T] = asyncio.ensure_future(
            anyio.to_thread.run_sync(job, limiter=limiter)
        )
        self._running.add(future)  # type: ignore[arg-type]
        future.add_done_callback(self._running.discard)
        future.add_done_callback(_retrieved)
        return await asyncio.shield(future)

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
