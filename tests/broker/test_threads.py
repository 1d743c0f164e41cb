"""Store calls in worker threads: a caller that stops waiting leaves the call running, counted,
and its late failure is not printed as an unhandled one."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
from typing import Any

import pytest

from broker._threads import StoreThreads

pytestmark = pytest.mark.asyncio


async def test_a_call_whose_caller_gave_up_fails_late_without_a_word() -> None:
    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    threads = StoreThreads()
    started, release = threading.Event(), threading.Event()

    def store_call() -> None:
        started.set()
        release.wait()
        raise ConnectionError("the store went away after its caller left")

    caller = asyncio.create_task(threads.run(store_call))
    await asyncio.to_thread(started.wait)
    caller.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await caller
    release.set()
    await threads.wait_idle()  # the call was still counted as running
    gc.collect()
    await asyncio.sleep(0)
    assert unhandled == []


async def test_a_waiting_caller_still_gets_the_failure() -> None:
    threads = StoreThreads()

    def store_call() -> None:
        raise ConnectionError("no reply")

    with pytest.raises(ConnectionError, match="no reply"):
        await threads.run(store_call)
