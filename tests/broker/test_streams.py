"""Ordered, gap-free, duplicate-free delivery of a large stream to several watchers."""

from __future__ import annotations

import asyncio
import threading
from contextlib import AsyncExitStack
from typing import Any

import pytest

import schema
from tests.broker.wire import WireClient, scalars, watcher_hello, wire_client, worker_hello
from tests.support import BrokerStore

pytestmark = pytest.mark.asyncio

TOTAL = 100_000
BATCH = 100
WINDOW = 20


async def publish_all(worker: WireClient) -> None:
    """Publish TOTAL events in batches, at most WINDOW batches unacknowledged."""
    acked = 0
    next_seq = 1
    while acked < TOTAL:
        while next_seq <= TOTAL and next_seq - acked <= WINDOW * BATCH:
            await worker.publish(next_seq, scalars(next_seq, BATCH))
            next_seq += BATCH
        acked = (await worker.expect(schema.Ack)).seq


async def collect(watcher: WireClient, sub: int, expected: int) -> list[schema.EventMsg]:
    events: list[schema.EventMsg] = []
    while len(events) < expected:
        frame = await watcher.expect(schema.Events)
        assert frame.sub == sub
        events.extend(frame.events)
    return events


async def test_three_watchers_each_get_exactly_the_stored_stream(broker_store: BrokerStore) -> None:
    async with broker_store.running_broker() as broker:
        async with (
            wire_client(broker.url, watcher_hello()) as w1,
            wire_client(broker.url, watcher_hello(), codec=schema.MSGPACK_CODEC) as w2,
            wire_client(broker.url, watcher_hello()) as w3,
            wire_client(broker.url, worker_hello("bulk", "run-1")) as worker,
        ):
            subs = []
            for watcher in (w1, w2, w3):
                reply = await watcher.request(
                    schema.Subscribe(
                        id=watcher.next_id(), pattern="bulk", from_="earliest", kinds=["scalar"]
                    )
                )
                assert isinstance(reply, schema.Subscribed)
                subs.append(reply.sub)
            watchers = zip((w1, w2, w3), subs, strict=True)
            collectors = [asyncio.create_task(collect(w, sub, TOTAL)) for w, sub in watchers]
            await publish_all(worker)
            results = [await collector for collector in collectors]
            history = await w1.request(
                schema.HistoryQuery(
                    id=w1.next_id(), workspace="bulk", after=0, limit=1000, kinds=["scalar"]
                )
            )
            assert isinstance(history, schema.HistoryPage)
        stored = history.events
        for events in results:
            assert len(events) == TOTAL
            assert [event.seq for event in events] == list(range(1, TOTAL + 1))
            assert [event.payload for event in events] == [
                schema.Scalar(name="n", value=float(i)) for i in range(1, TOTAL + 1)
            ]
            offsets = [event.offset for event in events]
            assert offsets == sorted(set(offsets))
            # The watchers saw what the store holds, offset for offset.
            assert events[: len(stored)] == stored


async def test_all_workspaces_share_one_bound_on_the_events_kept_in_memory(
    broker_store: BrokerStore,
) -> None:
    workspaces, per_workspace, bound = 4, 600, 1000
    async with broker_store.running_broker(tail_events=bound) as broker:
        assert broker.broker is not None
        async with wire_client(broker.url, watcher_hello()) as watcher:
            for index in range(workspaces):
                async with wire_client(broker.url, worker_hello(f"tails-{index}", "r")) as worker:
                    for seq in range(1, per_workspace + 1, BATCH):
                        await worker.publish(seq, scalars(seq, BATCH))
                    while (await worker.expect(schema.Ack)).seq < per_workspace:
                        pass
            # A worker's departure is committed after its socket closes: the stats and the
            # tails read below must both come after the last one, or they count different
            # streams.
            presence = await watcher.request(
                schema.Subscribe(
                    id=watcher.next_id(), pattern="tails-*", from_="earliest", kinds=["presence"]
                )
            )
            assert isinstance(presence, schema.Subscribed)
            await collect(watcher, presence.sub, 2 * workspaces)
            await watcher.request(schema.Unsubscribe(id=watcher.next_id(), sub=presence.sub))
            stats = await watcher.request(schema.StatsRequest(id=watcher.next_id()))
            assert isinstance(stats, schema.StatsReport)
            tails = [w.tail for w in broker.broker.workspaces.values()]
            held = stats.counters["tail_events"]
            assert held == sum(map(len, tails))
            # Over the bound, the oldest events leave until an eighth of it is free.
            assert bound - bound // 8 <= held <= bound
            # The oldest commits left first: the first workspace's events are all gone from
            # memory, the last one's are all there.
            first, last = broker.broker.workspaces["tails-0"], broker.broker.workspaces["tails-3"]
            assert first.tail.after(0, 1) is None
            assert last.tail.after(0, 1) is not None
            # A watcher from the start still gets every event: the store has what memory let go.
            subscribed = await watcher.request(
                schema.Subscribe(
                    id=watcher.next_id(), pattern="tails-*", from_="earliest", kinds=["scalar"]
                )
            )
            assert isinstance(subscribed, schema.Subscribed)
            received = await collect(watcher, subscribed.sub, workspaces * per_workspace)
    by_workspace: dict[str, list[int | None]] = {f"tails-{i}": [] for i in range(workspaces)}
    for event in received:
        by_workspace[event.workspace].append(event.seq)
    assert all(seqs == list(range(1, per_workspace + 1)) for seqs in by_workspace.values())


async def test_watchers_resuming_together_share_each_read_of_the_store(
    broker_store: BrokerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    published, watchers = 1000, 5
    async with broker_store.running_broker(tail_events=100) as broker:
        assert broker.broker is not None
        node = broker.broker
        async with wire_client(broker.url, worker_hello("crowd", "run-1")) as worker:
            for seq in range(1, published + 1, BATCH):
                await worker.publish(seq, scalars(seq, BATCH))
            while (await worker.expect(schema.Ack)).seq < published:
                pass
            # The store answers no read until every watcher has asked for its first page:
            # without sharing, each would make a read of its own.
            store, release = node.store, threading.Event()
            read = store.read
            reads: list[tuple[Any, ...]] = []

            def held_read(*args: Any) -> list[schema.EventMsg]:
                reads.append(args)
                release.wait(timeout=10)
                return read(*args)

            monkeypatch.setattr(store, "read", held_read)
            async with AsyncExitStack() as stack:
                clients = [
                    await stack.enter_async_context(wire_client(broker.url, watcher_hello()))
                    for _ in range(watchers)
                ]
                subs = []
                for client in clients:
                    reply = await client.request(
                        schema.Subscribe(
                            id=client.next_id(), pattern="crowd", from_="earliest", kinds=["scalar"]
                        )
                    )
                    assert isinstance(reply, schema.Subscribed)
                    subs.append(reply.sub)
                collectors = [
                    asyncio.create_task(collect(client, sub, published))
                    for client, sub in zip(clients, subs, strict=True)
                ]
                try:
                    async with asyncio.timeout(10):
                        while node.counters["store_reads_shared"] < watchers - 1:
                            await asyncio.sleep(0.01)
                except TimeoutError:
                    pytest.fail(f"{len(reads)} reads of the store for {watchers} watchers")
                finally:
                    release.set()
                results = await asyncio.gather(*collectors)
    first = reads[0]
    assert first[2] == 0  # the first page, from the start of the stream
    assert reads.count(first) == 1
    assert node.counters["store_reads"] == len(reads)
    for events in results:
        assert [event.seq for event in events] == list(range(1, published + 1))
