"""The SDK worker against a real broker."""

from __future__ import annotations

import asyncio

import pytest

import schema
import sdk
from broker.testing import running_broker
from tests.support import free_port

pytestmark = pytest.mark.asyncio


async def stored(
    url: str, workspace: str, kinds: list[schema.PayloadKind]
) -> list[schema.EventMsg]:
    async with sdk.Watcher(url) as watcher:
        return [event async for event in watcher.history(workspace, after=0, kinds=kinds)]


async def test_publish_flush_and_counters() -> None:
    async with running_broker() as broker:
        async with sdk.Worker(broker.url, "train", run_id="run-1") as worker:
            for step in range(1000):
                await worker.scalar("loss", 1.0 / (step + 1), step=step)
            await worker.flush(timeout=10)
            assert worker.counters == {"queued": 0, "in_flight": 0, "acked": 1000, "dropped": 0}
            await worker.post_event("done", "success", timeout=10)
        events = await stored(broker.url, "train", ["scalar", "event"])
        assert [event.seq for event in events] == list(range(1, 1002))
        assert events[-1].payload == schema.WorkspaceEvent(message="done", severity="success")


async def test_a_hardware_sample_is_stored_as_sent() -> None:
    gpu = schema.GpuStats(index=0, name="A100", utilization_percent=87.5, temperature_c=61.0)
    async with running_broker() as broker:
        async with sdk.Worker(broker.url, "train", run_id="run-1") as worker:
            ticket = await worker.hardware(
                cpu_percent=42.0, memory_used_bytes=3 << 30, gpus=[gpu], extra={"disk": 0.5}
            )
            await worker.wait_acked(ticket, timeout=10)
        [event] = await stored(broker.url, "train", ["hardware"])
    assert event.payload == schema.Hardware(
        cpu_percent=42.0, memory_used_bytes=3 << 30, gpus=[gpu], extra={"disk": 0.5}
    )


async def test_events_queued_while_the_broker_is_down_arrive_later(tmp_path: object) -> None:
    port = free_port()
    # No broker yet: the worker queues, then delivers once one listens on the port.
    async with sdk.Worker(f"ws://127.0.0.1:{port}", "offline", reconnect_max_s=0.2) as worker:
        for i in range(50):
            worker.queue_event(f"queued {i}")
        assert worker.counters["queued"] == 50
        assert worker.state is not sdk.ConnectionState.CONNECTED
        async with running_broker(port=port) as again:
            await worker.flush(timeout=10)
            events = await stored(again.url, "offline", ["event"])
    assert [event.payload.message for event in events] == [f"queued {i}" for i in range(50)]  # type: ignore[union-attr]


async def test_invalid_events_are_refused_at_the_call() -> None:
    async with running_broker() as broker:
        async with sdk.Worker(broker.url, "w") as worker:
            with pytest.raises(schema.SchemaError):
                await worker.scalar("loss", float("nan"))
            with pytest.raises(schema.SchemaError):
                await worker.log("x" * 70_000)
            with pytest.raises(schema.SchemaError):
                sdk.Worker(broker.url, "not a name")


async def until_reconnecting(worker: sdk.Worker) -> None:
    """Wait until an attempt to reach the broker has failed (it is not there)."""
    async with asyncio.timeout(10):
        async for state in worker.state_changes():
            if state is sdk.ConnectionState.RECONNECTING:
                return


async def test_caught_is_pushed_and_checkpoint_waits_for_release() -> None:
    async with running_broker() as broker:
        async with (
            sdk.Worker(broker.url, "deploy") as worker,
            sdk.Watcher(broker.url, client="ops") as operator,
        ):
            await worker.connected()
            await worker.checkpoint()  # not caught: returns at once
            await operator.catch("deploy", reason="investigating")
            # The push reaches the worker before the operator's answer arrives.
            await asyncio.wait_for(worker.wait_caught(), 5)
            assert worker.semaphores.by == "ops"
            waiting = asyncio.create_task(worker.checkpoint())
            # A round trip through the broker: a release, had there been one, is pushed first.
            await operator.workspaces()
            assert not waiting.done()
            await operator.release("deploy")
            await asyncio.wait_for(waiting, 5)
            assert not worker.semaphores.caught
            await worker.post_catch("self-check failed")
            # The push precedes the answer to the catch, so the worker knows by now.
            semaphores = await worker.get_semaphores()
            assert semaphores.caught
            assert semaphores.reason == "self-check failed"


async def test_checkpoint_when_the_broker_is_unreachable() -> None:
    port = free_port()
    async with sdk.Worker(f"ws://127.0.0.1:{port}", "w", reconnect_max_s=0.2) as worker:
        await asyncio.wait_for(worker.checkpoint(unreachable="proceed"), 1)
        waiting = asyncio.create_task(worker.checkpoint(unreachable="wait"))
        await until_reconnecting(worker)
        assert not waiting.done()
        async with running_broker(port=port):
            await asyncio.wait_for(waiting, 10)


async def test_mutex_context_manager_and_a_lost_lease() -> None:
    async with running_broker() as broker:
        async with (
            sdk.Worker(broker.url, "ws", run_id="a") as a,
            sdk.Worker(broker.url, "ws", run_id="b") as b,
            sdk.Watcher(broker.url) as admin,
        ):
            async with a.mutex() as lease:
                assert lease.fence >= 1
                lease.check()
                with pytest.raises(sdk.BrokerRefusedError) as refused:
                    async with b.mutex(wait=False):
                        pass
                assert refused.value.code is schema.ErrorCode.CONFLICT
            async with b.mutex() as second:
                assert second.fence == lease.fence + 1
                await admin.break_mutex("ws")
                assert await asyncio.wait_for(second.wait_lost(), 5) == "broken"
                with pytest.raises(sdk.LeaseLostError):
                    second.check()


async def test_actions_sync_async_errors_and_unknown_names() -> None:
    async with running_broker() as broker:
        worker = sdk.Worker(broker.url, "train", run_id="r")
        rate = {"lr": 0.1}

        @worker.action("set_lr", description="change the learning rate")
        def set_lr(value: float) -> dict[str, float]:
            old, rate["lr"] = rate["lr"], value
            return {"old": old, "new": value}

        @worker.action()
        async def explode() -> None:
            raise RuntimeError("boom")

        async with worker, sdk.Watcher(broker.url) as ops:
            await worker.connected()
            answer = await ops.call("train", "r", "set_lr", {"value": 0.01})
            assert answer == {"old": 0.1, "new": 0.01}
            assert rate["lr"] == 0.01
            with pytest.raises(sdk.ActionFailedError, match="RuntimeError: boom"):
                await ops.call("train", "r", "explode")
            with pytest.raises(sdk.BadCallError, match="bad arguments for set_lr"):
                await ops.call("train", "r", "set_lr", {"rate": 3})
            with pytest.raises(sdk.BrokerRefusedError) as unknown:
                await ops.call("train", "r", "nope")
            assert unknown.value.code is schema.ErrorCode.NOT_FOUND


async def test_outbox_policies_at_their_bounds() -> None:
    port = free_port()
    offline = f"ws://127.0.0.1:{port}"
    # No broker: nothing is acknowledged, so the outbox fills up and each policy shows.
    async with sdk.Worker(
        offline, "w", outbox_policy="raise", outbox_max_events=3, close_timeout_s=0.1
    ) as raising:
        for i in range(3):
            await raising.event(f"{i}")
        with pytest.raises(sdk.OutboxFullError):
            await raising.event("one too many")
    async with sdk.Worker(
        offline, "w", outbox_policy="drop_oldest", outbox_max_events=3, close_timeout_s=0.1
    ) as drop:
        for i in range(5):
            await drop.event(f"{i}")
        assert drop.counters["dropped"] == 2
        assert drop.counters["queued"] == 3
    async with sdk.Worker(
        offline, "w", outbox_max_events=3, reconnect_max_s=0.2, close_timeout_s=0.1
    ) as blocking:
        for i in range(3):
            await blocking.event(f"{i}")
        with pytest.raises(sdk.OutboxFullError):
            blocking.queue_event("full")
        fourth = asyncio.create_task(blocking.event("fourth"))
        await until_reconnecting(blocking)
        assert not fourth.done()  # blocked: no room until something is acknowledged
        async with running_broker(port=port):
            await asyncio.wait_for(fourth, 10)
            await blocking.flush(timeout=10)
            assert blocking.counters["acked"] == 4
    with pytest.raises(sdk.EventTooLargeError):
        async with sdk.Worker(offline, "w", outbox_max_bytes=1000, close_timeout_s=0.1) as tiny:
            await tiny.log("x" * 2000)


async def test_closing_with_unacknowledged_events_says_how_many(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running_broker() as broker:
        port = broker.port
    worker = sdk.Worker(f"ws://127.0.0.1:{port}", "w", run_id="r", close_timeout_s=0.1)
    async with worker:
        for i in range(7):
            worker.queue_event(f"{i}")
    assert "closed with 7 events not acknowledged" in caplog.text
    with pytest.raises(sdk.ClosedError):
        worker.queue_event("after close")
