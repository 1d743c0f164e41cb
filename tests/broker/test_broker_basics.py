"""A real broker on a real socket: handshake, publish and ack, subscribe and deliver."""

from __future__ import annotations

import pytest

import schema
from broker.testing import running_broker
from tests.broker.wire import scalars, watcher_hello, wire_client, worker_hello
from tests.support import BrokerStore

pytestmark = pytest.mark.asyncio


async def test_publish_is_acked_and_delivered_to_a_watcher(broker_store: BrokerStore) -> None:
    async with (
        broker_store.running_broker() as broker,
        wire_client(broker.url, watcher_hello(client="t")) as watcher,
        wire_client(broker.url, worker_hello("w1", "run-1")) as worker,
    ):
        assert worker.welcome is not None
        assert worker.welcome.acked_seq == 0
        subscribed = await watcher.request(
            schema.Subscribe(id=watcher.next_id(), pattern="w*", from_="earliest")
        )
        assert isinstance(subscribed, schema.Subscribed)
        await worker.publish(1, scalars(0, 10))
        ack = await worker.expect(schema.Ack)
        assert ack.seq == 10
        seen: list[schema.EventMsg] = []
        while len([e for e in seen if e.seq is not None]) < 10:
            frame = await watcher.expect(schema.Events)
            seen.extend(frame.events)
        offsets = [event.offset for event in seen]
        assert offsets == list(range(1, len(seen) + 1))
        published = [event for event in seen if isinstance(event.payload, schema.Scalar)]
        assert [event.seq for event in published] == list(range(1, 11))


async def test_healthz_answers_plain_http(broker_store: BrokerStore) -> None:
    import urllib.request

    import anyio.to_thread

    async with broker_store.running_broker() as broker:
        url = f"http://127.0.0.1:{broker.port}/healthz"
        body = await anyio.to_thread.run_sync(lambda: urllib.request.urlopen(url).read())
        assert body == b"ok\n"


async def test_a_client_that_asks_for_no_subprotocol_speaks_json() -> None:
    from websockets.asyncio.client import connect

    async with running_broker() as broker, connect(broker.url) as connection:
        assert connection.subprotocol is None
        await connection.send(schema.JSON_CODEC.encode(watcher_hello()).decode())
        welcome = schema.JSON_CODEC.decode_broker_frame(await connection.recv())
        assert isinstance(welcome, schema.Welcome)
