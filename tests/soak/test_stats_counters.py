"""The queue depths the soak samples: ``stats`` shows a watcher that stopped reading as lag and
queued bytes, and shows both back at zero once it has read everything."""

from __future__ import annotations

import pytest

import schema
from broker.testing import running_broker
from tests.broker.wire import WireClient, watcher_hello, wire_client, worker_hello
from tests.support import FLOOD_EVENTS, flood

pytestmark = pytest.mark.asyncio

BUFFER = 64 * 1024
TAIL = 1024


async def counters(admin: WireClient) -> dict[str, int | float]:
    report = await admin.request(schema.StatsRequest(id=admin.next_id()))
    assert isinstance(report, schema.StatsReport)
    return report.counters


async def test_a_paused_watcher_shows_as_lag_and_queued_bytes_until_it_reads() -> None:
    # A flood of kilobyte lines: far more than the socket buffers in between hold.
    async with running_broker(session_buffer_bytes=BUFFER, tail_events=TAIL) as broker:
        async with (
            wire_client(broker.url, watcher_hello(client="paused"), max_queue=1) as paused,
            wire_client(broker.url, watcher_hello(client="admin")) as admin,
            wire_client(broker.url, worker_hello("firehose", "run")) as worker,
        ):
            idle = await counters(admin)
            assert (idle["outbox_bytes"], idle["watcher_lag_events"]) == (0, 0)
            subscribed = await paused.request(
                schema.Subscribe(id=paused.next_id(), pattern="firehose", kinds=["log"])
            )
            assert isinstance(subscribed, schema.Subscribed)
            await flood(worker)

            # Everything is committed; the paused watcher holds a full outbox and is far behind.
            behind = await counters(admin)
            assert behind["writer_backlog"] == 0
            assert behind["events_committed"] >= FLOOD_EVENTS + 1
            assert behind["outbox_bytes"] >= BUFFER
            assert FLOOD_EVENTS // 2 < behind["watcher_lag_events"] <= FLOOD_EVENTS + 1
            # Over the bound, the oldest events leave until an eighth of it is free.
            assert TAIL - TAIL // 8 <= behind["tail_events"] <= TAIL

            received = 0
            while received < FLOOD_EVENTS:
                received += len((await paused.expect(schema.Events)).events)
            assert received == FLOOD_EVENTS
            # The last page left the outbox before the watcher could read it.
            caught_up = await counters(admin)
            assert (caught_up["outbox_bytes"], caught_up["watcher_lag_events"]) == (0, 0)
            assert (caught_up["writer_backlog"], caught_up["request_tasks"]) == (0, 0)
