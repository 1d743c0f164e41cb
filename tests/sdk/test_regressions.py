"""Failure paths that once went wrong: each test names what it guards."""

from __future__ import annotations

import asyncio

import pytest

import sdk
from broker.testing import FaultProxy, running_broker

pytestmark = pytest.mark.asyncio


async def test_a_lease_lost_while_disconnected_is_marked_lost_on_reconnect() -> None:
    async with running_broker(mutex_grace_s=0.3) as broker, FaultProxy(broker.port) as link:
        async with (
            sdk.Worker(
                link.url, "ws", run_id="a", reconnect_initial_s=0.05, reconnect_max_s=0.1
            ) as a,
            sdk.Worker(broker.url, "ws", run_id="b") as b,
        ):
            async with a.mutex() as lease:
                link.refuse(True)
                link.cut()  # a is away longer than the grace period; b takes the mutex
                async with b.mutex() as taken:
                    assert taken.fence == lease.fence + 1
                    link.refuse(False)
                    await a.connected()
                    assert await asyncio.wait_for(lease.wait_lost(), 10) == "broken"
                    with pytest.raises(sdk.LeaseLostError):
                        lease.check()


async def test_an_event_larger_than_a_frame_is_refused_at_the_call() -> None:
    async with running_broker(max_frame_bytes=64 * 1024) as broker:
        async with sdk.Worker(broker.url, "ws") as worker:
            await worker.connected()
            with pytest.raises(sdk.EventTooLargeError):
                await worker.custom("blob", "x" * 70_000)
            await worker.post_event("later events still flow")


async def test_a_subscription_ends_when_its_connection_stops_for_good() -> None:
    async with running_broker() as broker:
        watcher = sdk.Watcher(broker.url, reconnect=False)
        await watcher.start()
        subscription = await watcher.subscribe("*")
    with pytest.raises(sdk.ClosedError):
        await asyncio.wait_for(anext(aiter(subscription)), 10)
    await watcher.close()


async def test_checkpoint_raises_when_the_connection_stops_while_caught() -> None:
    async with running_broker() as broker:
        async with sdk.Worker(broker.url, "doomed") as worker, sdk.Watcher(broker.url) as admin:
            await worker.connected()
            await admin.catch("doomed")
            await asyncio.wait_for(worker.wait_caught(), 10)
            waiting = asyncio.create_task(worker.checkpoint())
            await admin.delete_workspace("doomed", force=True)
            with pytest.raises(sdk.ClosedError):
                await asyncio.wait_for(waiting, 10)


async def test_a_release_whose_answer_was_lost_is_not_an_error() -> None:
    async with running_broker() as broker, FaultProxy(broker.port) as link:
        async with sdk.Worker(
            link.url, "ws", run_id="a", reconnect_initial_s=0.05, reconnect_max_s=0.1
        ) as worker:
            async with worker.mutex():
                # The release reaches the broker after 0.2 s; its answer is cut on the way back.
                link.delay(0.2)
                asyncio.get_running_loop().call_later(0.3, link.cut)
            semaphores = await worker.get_semaphores()
            assert not semaphores.has_mutex
