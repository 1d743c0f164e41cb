"""Connection states, fatal closes and reconnects, seen through the SDK clients."""

from __future__ import annotations

import asyncio

import pytest

import schema
import sdk
from broker.testing import FaultProxy, running_broker
from tests.support import free_port

pytestmark = pytest.mark.asyncio


async def states_until(
    changes: asyncio.Queue[sdk.ConnectionState], wanted: sdk.ConnectionState
) -> list[sdk.ConnectionState]:
    seen: list[sdk.ConnectionState] = []
    while not seen or seen[-1] is not wanted:
        seen.append(await asyncio.wait_for(changes.get(), 20))
    return seen


async def test_states_through_a_drain_and_a_restart() -> None:
    port = free_port()
    async with running_broker(port=port) as broker:
        worker = sdk.Worker(broker.url, "w", reconnect_max_s=0.2)
        changes: asyncio.Queue[sdk.ConnectionState] = asyncio.Queue()

        async def record() -> None:
            async for state in worker.state_changes():
                changes.put_nowait(state)

        recorder = asyncio.create_task(record())
        await asyncio.sleep(0)
        await worker.start()
        assert await states_until(changes, sdk.ConnectionState.CONNECTED) == [
            sdk.ConnectionState.CONNECTING,
            sdk.ConnectionState.CONNECTED,
        ]
    # The broker drained (draining, then 1001): the worker waits to reconnect.
    assert await states_until(changes, sdk.ConnectionState.RECONNECTING) == [
        sdk.ConnectionState.RECONNECTING
    ]
    async with running_broker(port=port):
        assert (await states_until(changes, sdk.ConnectionState.CONNECTED))[-1] is (
            sdk.ConnectionState.CONNECTED
        )
        await worker.post_event("back")
        await worker.close()
    assert (await states_until(changes, sdk.ConnectionState.CLOSED))[-1] is (
        sdk.ConnectionState.CLOSED
    )
    await recorder


async def test_a_deleted_workspace_stops_its_worker_for_good() -> None:
    async with running_broker() as broker:
        async with sdk.Worker(broker.url, "doomed") as worker, sdk.Watcher(broker.url) as admin:
            await worker.connected()
            await admin.delete_workspace("doomed", force=True)
            with pytest.raises(sdk.ClosedError) as closed:
                await asyncio.wait_for(worker.checkpoint(), 10)
            assert isinstance(closed.value.__cause__, sdk.ForbiddenError)
            assert worker.state is sdk.ConnectionState.CLOSED


async def test_a_second_process_with_the_same_run_replaces_the_first() -> None:
    async with running_broker() as broker:
        async with sdk.Worker(broker.url, "w", run_id="same") as first:
            await first.connected()
            async with sdk.Worker(broker.url, "w", run_id="same") as second:
                await second.connected()
                # The first hears of its replacement on its own socket, in no set order with
                # the second's welcome.
                async with asyncio.timeout(10):
                    async for state in first.state_changes():
                        if state is sdk.ConnectionState.CLOSED:
                            break
                with pytest.raises(sdk.ClosedError) as closed:
                    await first.checkpoint()
                assert isinstance(closed.value.__cause__, sdk.ReplacedError)
                await second.post_event("still here")


async def test_an_action_that_takes_too_long_times_out() -> None:
    async with running_broker() as broker:
        worker = sdk.Worker(broker.url, "w", run_id="r")
        release = asyncio.Event()

        @worker.action()
        async def slow() -> str:
            await release.wait()
            return "late"

        async with worker, sdk.Watcher(broker.url) as ops:
            await worker.connected()
            with pytest.raises(sdk.BrokerRefusedError) as refused:
                await ops.call("w", "r", "slow", timeout=0.2)
            assert refused.value.code is schema.ErrorCode.TIMEOUT
            release.set()


async def test_a_connection_closed_during_its_handshake_stops_without_being_cancelled() -> None:
    # A client's close() cancels the connection's task as well, but a cancellation can be lost
    # (Python 3.11's wait_for dropped one that came with the welcome): the connection then
    # served on for ever, and the close() waiting for it hung. So close() alone must stop it.
    async with running_broker() as broker, FaultProxy(broker.port) as proxy:
        worker = sdk.Worker(proxy.url, "ws", run_id="closing")
        connection = worker._connection
        proxy.stall()
        running = asyncio.create_task(connection.run())
        async with asyncio.timeout(10):
            while proxy.bytes_held == 0:  # the upgrade request, held
                await asyncio.sleep(0.01)
        await connection.close()
        proxy.stall(False)
        await asyncio.wait_for(running, 10)
        assert connection.state is sdk.ConnectionState.CLOSED
        assert connection.welcome is None
        assert broker.broker is not None
        assert broker.broker.workers == {}
