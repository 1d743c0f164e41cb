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


async def test_callers_asking_for_the_same_key_at_once_share_one_call() -> None:
    threads = StoreThreads()
    started, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def store_call(key: str) -> list[str]:
        calls.append(key)
        started.set()
        release.wait(timeout=10)
        return [key]

    first = asyncio.create_task(threads.run_shared("a", lambda: store_call("a")))
    await asyncio.to_thread(started.wait, 10)
    assert threads.sharing("a")
    assert not threads.sharing("b")
    second = asyncio.create_task(threads.run_shared("a", lambda: store_call("a")))
    other = asyncio.create_task(threads.run_shared("b", lambda: store_call("b")))
    await asyncio.sleep(0)  # both have asked before the call returns
    release.set()
    results = await asyncio.gather(first, second, other)
    assert results[0] is results[1]
    assert list(results) == [["a"], ["a"], ["b"]]
    assert sorted(calls) == ["a", "b"]
    # Once it has returned, the next caller makes a call of its own.
    assert not threads.sharing("a")
    assert await threads.run_shared("a", lambda: store_call("a")) == ["a"]
    assert sorted(calls) == ["a", "a", "b"]


async def test_a_shared_call_outlives_a_cancelled_caller_and_fails_for_all_that_wait() -> None:
    threads = StoreThreads()
    started, release = threading.Event(), threading.Event()

    def store_call() -> None:
        started.set()
        release.wait(timeout=10)
        raise ConnectionError("no reply")

    first = asyncio.create_task(threads.run_shared("k", store_call))
    await asyncio.to_thread(started.wait, 10)
    second = asyncio.create_task(threads.run_shared("k", store_call))
    third = asyncio.create_task(threads.run_shared("k", store_call))
    await asyncio.sleep(0)
    first.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await first
    assert threads.sharing("k")
    release.set()
    for waiting in (second, third):
        with pytest.raises(ConnectionError, match="no reply"):
            await waiting
    await threads.wait_idle()
    assert not threads.sharing("k")
