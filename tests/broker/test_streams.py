"""Ordered, gap-free, duplicate-free delivery of a large stream to several watchers."""

from __future__ import annotations

import asyncio

import pytest

import schema
from broker.testing import running_broker
from tests.broker.wire import WireClient, scalars, watcher_hello, wire_client, worker_hello

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


async def test_three_watchers_each_get_exactly_the_stored_stream() -> None:
    async with running_broker() as broker:
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
