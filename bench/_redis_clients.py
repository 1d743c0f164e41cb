"""Redis pub/sub clients for the side-by-side benchmarks: ``python -m bench._redis_clients ROLE
PARAMS``.

What a user would write by hand with redis-py (``redis.asyncio``): each event is one ``PUBLISH``
to a channel, its body the event as pierhead's JSON codec encodes it inside a ``publish`` frame.
Commands and messages are those of :mod:`bench._peers`; ``PARAMS`` also has the server's
``port`` and the ``channel``.

``publish``
    :class:`bench._peers.Publisher`'s loops (``flood`` and ``paced``, the same events), where
    the worker's frame of ``batch`` events becomes a pipeline of ``batch`` ``PUBLISH`` commands
    whose replies are awaited before the next: Redis acknowledges a command, never a delivery.
    Each reply counts the subscribers reached, which must be ``watchers``. With ``frames``, the
    whole frame is one ``PUBLISH`` instead: the bytes of pierhead's ``publish`` frame, as the
    relay forwards them.
``watch``
    ``connections`` subscriber connections to the channel, each with its own client, counting
    the events of ``payload_kind`` (in each message, or with ``frames`` in each frame) and, with
    ``latency``, every event's delay from its stamp.

redis-py is imported when a role starts, so this module type-checks and imports without it.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import Any, Final, cast

import msgspec
from websockets.asyncio.client import ClientConnection

import schema

from . import _peer_roles
from ._peers import _LIGHT_DECODERS, OPEN_TIMEOUT_S, Commands, Params, Publisher, _Event

_encode_event = msgspec.json.Encoder().encode
_decode_event = msgspec.json.Decoder(_Event).decode
_decode_frame = _LIGHT_DECODERS["json"]

HOST: Final = "127.0.0.1"


def _client(params: Params) -> Any:
    """A redis-py asyncio client of the benchmark's server (one connection pool of its own)."""
    redis_asyncio = importlib.import_module("redis.asyncio")
    return redis_asyncio.Redis(host=HOST, port=params["port"], socket_connect_timeout=5.0)


class RedisPublisher(Publisher):
    """:class:`bench._peers.Publisher`'s loops, publishing through redis-py; it has no socket
    of its own, so the websocket it would send on is never set."""

    def __init__(self, client: Any, params: Params) -> None:
        super().__init__(cast(ClientConnection, None), params, None)
        self.client = client
        self.channel: str = params["channel"]
        self.receivers: int = params["watchers"]
        self.frames: bool = params["frames"]

    async def _send(self, events: list[schema.Event]) -> None:
        pipeline = self.client.pipeline(transaction=False)
        if self.frames:
            frame = schema.Publish(seq=self.seq, events=events)
            pipeline.publish(self.channel, schema.JSON_CODEC.encode(frame))
        else:
            for event in events:
                pipeline.publish(self.channel, _encode_event(event))
        reached: list[int] = await pipeline.execute()
        if min(reached) != self.receivers:
            raise RuntimeError(f"a PUBLISH reached {min(reached)} of {self.receivers} subscribers")
        self.seq += len(events)


async def publish(params: Params, commands: Commands) -> None:
    async with AsyncExitStack() as stack:
        client = _client(params)
        stack.push_async_callback(client.aclose)
        await client.ping()
        publisher = RedisPublisher(client, params)
        run = publisher.flood if params["mode"] == "flood" else publisher.paced
        await _peer_roles.publish_steps(params, commands, run)


class _Feed:
    def __init__(self, pubsub: Any, kind: str, *, frames: bool) -> None:
        self._pubsub = pubsub
        self._kind = kind
        self._frames = frames

    async def next_events(self) -> tuple[int, Sequence[int | None]]:
        message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
        now = time.time_ns()
        if message is None or message["type"] != "message":
            return now, ()
        data = message["data"]
        events = _decode_frame(data).events if self._frames else (_decode_event(data),)
        return now, [event.payload.step for event in events if event.payload.kind == self._kind]


async def watch(params: Params, commands: Commands) -> None:
    async def open_feed(stack: AsyncExitStack) -> _Feed:
        client = _client(params)
        stack.push_async_callback(client.aclose)
        pubsub = client.pubsub()
        stack.push_async_callback(pubsub.aclose)
        await pubsub.subscribe(params["channel"])
        # Subscribed once the server confirms: a PUBLISH before that would not reach it.
        confirmation = await pubsub.get_message(timeout=OPEN_TIMEOUT_S)
        if confirmation is None or confirmation["type"] != "subscribe":
            raise RuntimeError(f"no confirmation of the subscription: {confirmation!r}")
        return _Feed(pubsub, params["payload_kind"], frames=params["frames"])

    await _peer_roles.watch(params, open_feed)


ROLES: Final = {"publish": publish, "watch": watch}


if __name__ == "__main__":
    sys.exit(_peer_roles.main(ROLES))
