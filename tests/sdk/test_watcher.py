"""The SDK watcher against a real broker: subscriptions that survive reconnects exactly."""

from __future__ import annotations

import asyncio

import pytest

import schema
import sdk
from broker.testing import running_broker
from tests.support import free_port

pytestmark = pytest.mark.asyncio


async def take(subscription: sdk.Subscription, count: int) -> list[sdk.Delivery]:
    items: list[sdk.Delivery] = []
    async for item in subscription:
        items.append(item)
        if len(items) == count:
            break
    return items


async def test_subscribe_follows_events_and_the_live_state() -> None:
    async with running_broker() as broker:
        async with (
            sdk.Watcher(broker.url) as watcher,
            sdk.Worker(broker.url, "train-1", run_id="r") as worker,
        ):
            await worker.connected()
            subscription = await watcher.subscribe("train-*", kinds=None)
            assert "train-1" in watcher.state
            await worker.status("phase", "warmup")
            await worker.progress("epochs", 1, total=10)
            kinds: list[str] = []
            async for item in subscription:
                assert isinstance(item, schema.EventMsg)
                kinds.append(item.payload.__struct_config__.tag)  # type: ignore[arg-type]
                if kinds[-1] == "progress":
                    break
            # The worker's own presence may land on either side of the snapshot.
            assert [kind for kind in kinds if kind != "presence"] == ["status", "progress"]
            state = watcher.state["train-1"]
            assert state.status == {"phase": "warmup"}
            assert state.progress["epochs"].total == 10
            assert [w.run_id for w in state.workers] == ["r"]


async def test_a_workspace_created_later_joins_and_its_events_arrive() -> None:
    async with running_broker() as broker:
        async with sdk.Watcher(broker.url) as watcher:
            subscription = await watcher.subscribe("job-*", kinds=["event"])
            async with sdk.Worker(broker.url, "job-9") as worker:
                await worker.event("started")
                (item,) = await take(subscription, 1)
            assert isinstance(item, schema.EventMsg)
            assert item.workspace == "job-9"
            assert "job-9" in watcher.state


async def test_the_subscription_resumes_across_a_broker_restart_without_gaps_or_duplicates(
    tmp_path: object,
) -> None:
    from pathlib import Path

    data = Path(str(tmp_path)) / "data"
    port = free_port()
    async with running_broker(data, port=port) as broker:
        url = broker.url
        watcher = sdk.Watcher(url, reconnect_max_s=0.2)
        await watcher.start()
        subscription = await watcher.subscribe("w", since="earliest", kinds=["scalar"])
        async with sdk.Worker(url, "w", run_id="r") as worker:
            for i in range(100):
                await worker.scalar("x", i)
            await worker.flush(timeout=10)
        first = await take(subscription, 100)
    # The broker is gone; the watcher reconnects to a new one on the same store and port.
    async with running_broker(data, port=port):
        async with sdk.Worker(url, "w", run_id="r2") as worker:
            for i in range(100, 150):
                await worker.scalar("x", i)
            await worker.flush(timeout=10)
        rest = await asyncio.wait_for(take(subscription, 50), 20)
        assert subscription.recovered
        await watcher.close()
    values = [item.payload.value for item in first + rest if isinstance(item, schema.EventMsg)]  # type: ignore[union-attr]
    assert values == [float(i) for i in range(150)]


async def test_history_pages_and_operator_requests() -> None:
    async with running_broker() as broker:
        async with sdk.Worker(broker.url, "w", run_id="r") as worker:
            for i in range(30):
                await worker.log(f"line {i}")
            await worker.flush(timeout=10)
        async with sdk.Watcher(broker.url) as watcher:
            newest = [e async for e in watcher.history("w", page_size=7, kinds=["log"])]
            assert [e.seq for e in newest] == list(range(30, 0, -1))
            oldest = [e async for e in watcher.history("w", after=0, page_size=7, kinds=["log"])]
            assert [e.seq for e in oldest] == list(range(1, 31))
            names = [state.name for state in await watcher.workspaces()]
            assert names == ["w"]
            stats = await watcher.stats()
            assert stats.counters["workspaces"] == 1
            with pytest.raises(sdk.BrokerRefusedError) as missing:
                await watcher.catch("nowhere")
            assert missing.value.code is schema.ErrorCode.NOT_FOUND
            await watcher.delete_workspace("w")
            assert await watcher.workspaces() == []
