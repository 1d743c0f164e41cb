"""A watcher that stops reading never holds up the publisher, and still gets everything."""

from __future__ import annotations

import pytest

import schema
from broker._watcher_session import WatcherSession
from tests.broker.wire import watcher_hello, wire_client, worker_hello
from tests.support import FLOOD_EVENTS, BrokerStore, flood

pytestmark = pytest.mark.asyncio


async def test_a_paused_watcher_lags_in_the_store_not_in_the_publisher(
    broker_store: BrokerStore,
) -> None:
    async with broker_store.running_broker(
        session_buffer_bytes=64 * 1024, tail_events=1024
    ) as broker:
        assert broker.broker is not None
        async with (
            # One message of read-ahead in the client: what it does not read stays in the broker.
            wire_client(broker.url, watcher_hello(client="paused"), max_queue=1) as paused,
            wire_client(broker.url, worker_hello("firehose", "run")) as worker,
        ):
            subscribed = await paused.request(
                schema.Subscribe(id=paused.next_id(), pattern="firehose", kinds=["log"])
            )
            assert isinstance(subscribed, schema.Subscribed)
            # From here on the watcher reads nothing until the worker is done.
            await flood(worker)
            (session,) = broker.broker.watchers
            assert isinstance(session, WatcherSession)
            cursor = session.subscriptions[subscribed.sub].cursors["firehose"]
            workspace = broker.broker.workspaces["firehose"]
            # Every event is acknowledged while the paused watcher is far behind (the socket
            # buffers in between hold a few MB of the 40): the publisher did not wait for it.
            assert workspace.state.last_offset > FLOOD_EVENTS
            assert cursor.offset < FLOOD_EVENTS // 2
            received: list[schema.EventMsg] = []
            while len(received) < FLOOD_EVENTS:
                received.extend((await paused.expect(schema.Events)).events)
            assert [event.seq for event in received] == list(range(1, FLOOD_EVENTS + 1))
            assert len({event.offset for event in received}) == FLOOD_EVENTS
