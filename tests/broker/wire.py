"""A raw protocol client for broker tests: real websockets, frames from ``schema``, no SDK."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

import schema

F = TypeVar("F")
RECEIVE_TIMEOUT = 10.0


class WireClient:
    def __init__(self, connection: ClientConnection, codec: schema.Codec) -> None:
        self.connection = connection
        self.codec = codec
        self.welcome: schema.Welcome | None = None
        self._ids = itertools.count(1)

    def next_id(self) -> int:
        return next(self._ids)

    async def send(self, frame: schema.ClientFrame) -> None:
        await self.connection.send(self.codec.encode(frame), text=self.codec.text)

    async def send_raw(self, data: bytes | str) -> None:
        await self.connection.send(data)

    async def receive(self) -> schema.BrokerFrame:
        data = await asyncio.wait_for(self.connection.recv(decode=False), RECEIVE_TIMEOUT)
        return self.codec.decode_broker_frame(data)

    async def frames_until_closed(self) -> AsyncIterator[schema.BrokerFrame]:
        """Every frame until the socket closes (see ``connection.close_code``), no timeout."""
        try:
            while True:
                data = await self.connection.recv(decode=False)
                yield self.codec.decode_broker_frame(data)
        except ConnectionClosed:
            return

    async def expect(self, frame_type: type[F]) -> F:
        """The next frame of that type; frames of other types in between are skipped."""
        while True:
            frame = await self.receive()
            if isinstance(frame, frame_type):
                return frame

    async def expect_all(self, *frame_types: type[Any]) -> dict[type[Any], Any]:
        """The first frame of each type, in whatever order they come; others are skipped."""
        found: dict[type[Any], Any] = {}
        while len(found) < len(frame_types):
            frame = await self.receive()
            if type(frame) in frame_types:
                found.setdefault(type(frame), frame)
        return found

    async def request(self, frame: Any) -> schema.BrokerFrame:
        """Send a request and return the frame answering its id."""
        await self.send(frame)
        while True:
            reply = await self.receive()
            if getattr(reply, "id", None) == frame.id:
                return reply

    async def publish(self, seq: int, payloads: Sequence[schema.WorkerPayload]) -> None:
        now = datetime.now(UTC)
        events = [schema.Event(payload=payload, create_time=now) for payload in payloads]
        await self.send(schema.Publish(seq=seq, events=events))


async def closed_with(client: WireClient) -> int | None:
    """Read until the broker closes the socket; the close code it used."""
    try:
        while True:
            await client.receive()
    except ConnectionClosed:
        return client.connection.close_code


@asynccontextmanager
async def wire_client(
    url: str,
    hello: schema.Hello | None = None,
    *,
    codec: schema.Codec = schema.JSON_CODEC,
    max_size: int | None = 16 * 1024 * 1024,
    max_queue: int = 16,
) -> AsyncIterator[WireClient]:
    """Connect, send ``hello`` (if given) and wait for ``welcome``."""
    async with connect(
        url,
        subprotocols=[Subprotocol(codec.subprotocol)],
        max_size=max_size,
        max_queue=max_queue,
        compression=None,
    ) as connection:
        client = WireClient(connection, codec)
        if hello is not None:
            await client.send(hello)
            client.welcome = await client.expect(schema.Welcome)
        yield client


def worker_hello(workspace: str, run_id: str, **fields: Any) -> schema.Hello:
    return schema.Hello(protocol=1, role="worker", workspace=workspace, run_id=run_id, **fields)


def watcher_hello(**fields: Any) -> schema.Hello:
    return schema.Hello(protocol=1, role="watcher", **fields)


def scalars(start: int, count: int) -> list[schema.WorkerPayload]:
    return [schema.Scalar(name="n", value=float(i)) for i in range(start, start + count)]
