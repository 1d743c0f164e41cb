"""The blocking clients, driven from plain threads with no event loop of their own."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import schema
from broker.testing import running_broker
from sdk import sync


@contextmanager
def threaded_broker() -> Iterator[str]:
    """A real broker on its own loop in a thread: the test's own thread has no loop."""
    ready: list[str] = []
    started = threading.Event()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def serve() -> None:
        async with running_broker() as broker:
            ready.append(broker.url)
            started.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert started.wait(20)
    try:
        yield ready[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(20)
        loop.close()


def test_publish_and_flush_from_several_threads() -> None:
    with threaded_broker() as url, sync.Worker(url, "sync", run_id="r") as worker:

        def publish(offset: int) -> None:
            for i in range(200):
                worker.scalar("x", offset + i)

        threads = [threading.Thread(target=publish, args=(n * 1000,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        worker.flush(timeout=10)
        assert worker.counters["acked"] == 800
        with sync.Watcher(url) as watcher:
            stored = list(watcher.history("sync", after=0, kinds=["scalar"]))
        assert sorted(e.payload.value for e in stored) == sorted(  # type: ignore[union-attr]
            float(n * 1000 + i) for n in range(4) for i in range(200)
        )
        assert [e.seq for e in stored] == list(range(1, 801))


def test_checkpoint_waits_for_release_from_a_plain_thread() -> None:
    with (
        threaded_broker() as url,
        sync.Worker(url, "deploy") as worker,
        sync.Watcher(url, client="ops") as operator,
    ):
        worker.connected(timeout=10)
        worker.checkpoint()
        operator.catch("deploy")
        worker.wait_caught(timeout=10)
        assert worker.caught
        released = threading.Event()

        def wait() -> None:
            worker.checkpoint()
            released.set()

        waiter = threading.Thread(target=wait)
        waiter.start()
        assert not released.wait(0.1)
        operator.release("deploy")
        assert released.wait(10)
        waiter.join()


def test_sync_subscribe_and_mutex() -> None:
    with (
        threaded_broker() as url,
        sync.Worker(url, "ws", run_id="r") as worker,
        sync.Watcher(url) as watcher,
    ):
        deliveries = watcher.subscribe("ws", since="earliest", kinds=["event"], timeout=10)
        worker.event("hello")
        first = next(deliveries)
        assert isinstance(first, schema.EventMsg)
        assert first.payload == schema.WorkspaceEvent(message="hello")
        with worker.mutex() as lease:
            assert lease.fence >= 1
            lease.check()
