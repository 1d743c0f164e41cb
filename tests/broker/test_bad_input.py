"""Bad input gets its documented error or close code, and everyone else keeps being served."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

import schema
from broker._server import BrokerServer
from broker.testing import running_broker
from tests.broker.wire import (
    WireClient,
    closed_with,
    scalars,
    watcher_hello,
    wire_client,
    worker_hello,
)

pytestmark = pytest.mark.asyncio


class Bystanders:
    """A worker and a watcher that keep publishing and receiving while others misbehave."""

    def __init__(self, worker: WireClient, watcher: WireClient, sub: int) -> None:
        self.worker, self.watcher, self.sub = worker, watcher, sub
        self.seq = 1

    async def still_served(self) -> None:
        await self.worker.publish(self.seq, scalars(self.seq, 5))
        self.seq += 5
        assert (await self.worker.expect(schema.Ack)).seq == self.seq - 1
        while True:
            frame = await self.watcher.expect(schema.Events)
            if frame.events[-1].seq == self.seq - 1:
                return


@asynccontextmanager
async def bystanders(broker: BrokerServer) -> AsyncIterator[Bystanders]:
    async with (
        wire_client(broker.url, worker_hello("calm", "steady")) as worker,
        wire_client(broker.url, watcher_hello()) as watcher,
    ):
        reply = await watcher.request(
            schema.Subscribe(id=watcher.next_id(), pattern="calm", kinds=["scalar"])
        )
        assert isinstance(reply, schema.Subscribed)
        yield Bystanders(worker, watcher, reply.sub)


async def test_garbage_and_unknown_frames_get_errors_and_the_session_lives_on() -> None:
    async with running_broker() as broker, bystanders(broker) as calm:
        async with wire_client(broker.url, watcher_hello()) as sloppy:
            garbage: list[bytes | str] = [b"\xff\xfe\x00", "not json", '{"type":"teleport"}', "[]"]
            for data in garbage:
                await sloppy.send_raw(data)
                error = await sloppy.expect(schema.ErrorReply)
                assert error.code is schema.ErrorCode.BAD_FRAME
                assert error.message
                await calm.still_served()
            # Still alive: a good request is answered.
            stats = await sloppy.request(schema.StatsRequest(id=sloppy.next_id()))
            assert isinstance(stats, schema.StatsReport)


async def test_a_session_that_keeps_sending_bad_frames_is_closed() -> None:
    async with running_broker(max_bad_frames=5) as broker, bystanders(broker) as calm:
        async with wire_client(broker.url, watcher_hello()) as hostile:
            for _ in range(5):
                await hostile.send_raw("{")
            assert await closed_with(hostile) == schema.CloseCode.PROTOCOL_ERROR
        await calm.still_served()


async def test_frames_of_the_wrong_role_are_forbidden() -> None:
    async with running_broker() as broker, bystanders(broker) as calm:
        async with (
            wire_client(broker.url, watcher_hello()) as watcher,
            wire_client(broker.url, worker_hello("calm", "intruder")) as worker,
        ):
            await watcher.publish(1, scalars(0, 1))
            refused = await watcher.expect(schema.ErrorReply)
            assert refused.code is schema.ErrorCode.FORBIDDEN
            assert "publish" in refused.message
            reply = await worker.request(schema.Subscribe(id=worker.next_id(), pattern="*"))
            assert isinstance(reply, schema.ErrorReply)
            assert reply.code is schema.ErrorCode.FORBIDDEN
            await calm.still_served()


@pytest.mark.parametrize(
    ("first", "code"),
    [
        (schema.JSON_CODEC.encode(schema.StatsRequest(id=1)), schema.ErrorCode.BAD_FRAME),
        (b'{"type":"hello","protocol":1,"role":"worker","workspace":"bad name","run_id":"r"}',
         schema.ErrorCode.BAD_FRAME),
        (b'{"type":"hello","protocol":7,"role":"watcher"}', schema.ErrorCode.UNSUPPORTED_VERSION),
        (b"\x00\x01", schema.ErrorCode.BAD_FRAME),
        # The error quotes the value: far over a close frame's 123 bytes of reason in UTF-8,
        # though under 123 characters.
        (b'{"type":"hello","protocol":1,"role":"' + "\U0001f6a2".encode() * 60 + b'"}',
         schema.ErrorCode.BAD_FRAME),
    ],
)  # fmt: skip
async def test_a_broken_handshake_gets_an_error_and_close_4000(
    first: bytes, code: schema.ErrorCode
) -> None:
    async with running_broker() as broker, bystanders(broker) as calm:
        async with wire_client(broker.url) as client:
            await client.send_raw(first.decode(errors="replace"))
            error = await client.expect(schema.ErrorReply)
            assert error.code is code
            assert await closed_with(client) == schema.CloseCode.PROTOCOL_ERROR
        await calm.still_served()


async def test_no_hello_in_time_closes_with_4000() -> None:
    async with running_broker(hello_timeout_s=0.2) as broker, bystanders(broker) as calm:
        async with wire_client(broker.url) as silent:
            assert await closed_with(silent) == schema.CloseCode.PROTOCOL_ERROR
        await calm.still_served()


async def test_oversize_frames_close_with_1009() -> None:
    async with running_broker(max_frame_bytes=64 * 1024) as broker, bystanders(broker) as calm:
        async with wire_client(broker.url, worker_hello("calm", "big")) as big:
            await big.send_raw("x" * (65 * 1024))
            assert await closed_with(big) == schema.CloseCode.MESSAGE_TOO_BIG
        await calm.still_served()


async def test_batches_over_the_broker_limit_are_too_large() -> None:
    async with running_broker(max_batch=10, commit_max_events=100) as broker:
        async with wire_client(broker.url, worker_hello("w", "r")) as worker:
            assert worker.welcome is not None
            assert worker.welcome.limits.max_batch == 10
            await worker.publish(1, scalars(0, 11))
            error = await worker.expect(schema.ErrorReply)
            assert error.code is schema.ErrorCode.TOO_LARGE
            assert error.detail == {"seq": 1}


async def test_msgpack_text_and_unknown_subprotocols() -> None:
    async with running_broker() as broker:
        async with wire_client(broker.url, codec=schema.MSGPACK_CODEC) as client:
            await client.send_raw(msgspec.json.encode(watcher_hello()).decode())
            error = await client.expect(schema.ErrorReply)
            assert "binary" in error.message
        with pytest.raises(InvalidStatus):
            async with connect(broker.url, subprotocols=["pierhead.v9.xml"]):  # type: ignore[list-item]
                pass
