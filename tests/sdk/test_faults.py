"""Nothing lost, nothing doubled: SDK clients through cut connections and broker crashes."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

import schema
import sdk
from broker.testing import FaultProxy, broker_process, running_broker

pytestmark = pytest.mark.asyncio

TOTAL = 50_000


async def publish_all(worker: sdk.Worker, total: int) -> None:
    for i in range(total):
        await worker.scalar("x", i)
    await worker.flush(timeout=120)


async def collect(subscription: sdk.Subscription, total: int) -> list[schema.EventMsg]:
    events: list[schema.EventMsg] = []
    async for item in subscription:
        assert isinstance(item, schema.EventMsg), f"unexpected {item!r}"
        events.append(item)
        if len(events) == total:
            return events
    raise AssertionError("the subscription ended")


async def stored(url: str) -> list[schema.EventMsg]:
    async with sdk.Watcher(url) as watcher:
        return [
            e async for e in watcher.history("chaos", after=0, page_size=1000, kinds=["scalar"])
        ]


def check_exact(events: list[schema.EventMsg], total: int) -> None:
    assert [event.seq for event in events] == list(range(1, total + 1))
    assert [event.payload.value for event in events] == [float(i) for i in range(total)]  # type: ignore[union-attr]
    offsets = [event.offset for event in events]
    assert offsets == sorted(set(offsets))


async def cut_repeatedly(proxies: list[FaultProxy], done: asyncio.Event, minimum: int) -> int:
    """Cut every connection at random moments until ``done`` and at least ``minimum`` times."""
    rng = random.Random(20261122)
    cuts = 0
    while proxies[0].cuts < minimum or not done.is_set():
        await asyncio.sleep(rng.uniform(0.02, 0.12))
        for proxy in proxies:
            if proxy.open_connections:
                proxy.cut()
        cuts += 1
    return cuts


async def test_50k_events_through_20_cuts_arrive_exactly_once() -> None:
    async with running_broker() as broker:
        async with (
            FaultProxy(broker.port) as worker_link,
            FaultProxy(broker.port) as watcher_link,
        ):
            async with (
                sdk.Worker(
                    worker_link.url,
                    "chaos",
                    run_id="w",
                    reconnect_initial_s=0.01,
                    reconnect_max_s=0.05,
                ) as worker,
                sdk.Watcher(
                    watcher_link.url, reconnect_initial_s=0.01, reconnect_max_s=0.05
                ) as watcher,
            ):
                subscription = await watcher.subscribe("chaos", since="earliest", kinds=["scalar"])
                done = asyncio.Event()
                cutter = asyncio.create_task(cut_repeatedly([worker_link, watcher_link], done, 20))
                watched = asyncio.create_task(collect(subscription, TOTAL))
                await publish_all(worker, TOTAL)
                received = await asyncio.wait_for(watched, 120)
                done.set()
                cuts = await cutter
            assert cuts >= 20
            assert worker_link.cuts >= 20
        events = await stored(broker.url)
    check_exact(events, TOTAL)
    assert received == events


async def test_a_broker_killed_three_times_loses_and_doubles_nothing(tmp_path: Path) -> None:
    total = TOTAL
    async with broker_process(tmp_path / "data", "--grace", "60") as broker:
        async with FaultProxy(broker.port) as link:
            async with (
                sdk.Worker(link.url, "chaos", run_id="w", reconnect_max_s=0.1) as worker,
                sdk.Watcher(link.url, reconnect_max_s=0.1) as watcher,
            ):
                subscription = await watcher.subscribe("chaos", since="earliest", kinds=["scalar"])
                watched = asyncio.create_task(collect(subscription, total))
                # All queued at once (the outbox holds them), so that every ticket exists to
                # wait on; the outbox sends them a window at a time.
                tickets = [
                    worker.publish_nowait(schema.Scalar(name="x", value=i)) for i in range(total)
                ]
                publishing = asyncio.create_task(worker.flush(timeout=120))
                for _ in range(3):
                    # Kill while events are on their way, then come back on the same store.
                    target = min(worker.counters["acked"] + 5000, total - 1000)
                    await worker.wait_acked(tickets[target - 1], timeout=60)
                    broker.kill()
                    await broker.wait()
                    await broker.start()
                    link.target_port = broker.port
                    link.cut()
                await asyncio.wait_for(publishing, 120)
                received = await asyncio.wait_for(watched, 120)
            events = await stored(broker.url)
    check_exact(events, total)
    assert received == events
    assert subscription.recovered
