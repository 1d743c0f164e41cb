"""neetbox's clients for the side-by-side benchmarks: ``python -m bench._neetbox_clients ROLE
PARAMS``.

Raw websocket clients speaking neetbox's own protocol (``/ws/project/``, one JSON ``EventMsg``
per frame), so that neither side pays for an SDK. Commands and messages are those of
:mod:`bench._peers`; ``PARAMS`` also has the ``url`` of the project channel and the ``project``
id.

``publish``
    A run's connection (handshake as ``cli``). It sends the same ``LogRecord`` events as the
    pierhead worker, each as a neetbox ``log`` event: series = level, payload = ``{whom,
    message}``, the event's create time as the timestamp. neetbox has no batches and no acks:
    every event is its own frame, written as fast as the socket takes them.
``watch``
    ``connections`` watcher connections (handshake as ``web``), each counting the ``log``
    events the server forwards. The publisher must have shaken hands first: neetbox answers a
    watcher of a project it does not know with 404.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import Any, Final

import msgspec
from websockets.asyncio.client import ClientConnection, connect

import schema

from . import _peer_roles
from ._peers import OPEN_TIMEOUT_S, Commands, Params, Publisher

LOG: Final = "log"
HANDSHAKE: Final = "handshake"
TIMESTAMP_FORMAT: Final = "%Y-%m-%dT%H:%M:%S.%f"
"""neetbox's timestamps: local time to the microsecond, no zone."""


class Message(msgspec.Struct):
    """neetbox's ``EventMsg`` as it goes over the wire."""

    project_id: str = msgspec.field(name="projectId")
    run_id: str | None = msgspec.field(name="runId")
    event_type: str = msgspec.field(name="eventType")
    identity_type: str = msgspec.field(name="identityType")
    series: str | None = None
    payload: Any = None
    event_id: int = msgspec.field(name="eventId", default=-1)
    timestamp: str | None = None
    history_len: int = msgspec.field(name="historyLen", default=-1)


class _Received(msgspec.Struct):
    """Just enough of a forwarded message to count it."""

    event_type: str = msgspec.field(name="eventType", default="")


_encode = msgspec.json.Encoder().encode
_decode_received = msgspec.json.Decoder(_Received).decode


def log_message(project_id: str, run_id: str, event: schema.Event) -> Message:
    """A pierhead ``LogRecord`` event as the ``log`` event neetbox's own logger would send."""
    record = event.payload
    if not isinstance(record, schema.LogRecord):
        raise TypeError(f"only LogRecord events map onto neetbox logs, not {type(record)}")
    return Message(
        project_id=project_id,
        run_id=run_id,
        event_type=LOG,
        identity_type="cli",
        series=record.level,
        payload={"whom": record.logger, "message": record.message},
        timestamp=event.create_time.strftime(TIMESTAMP_FORMAT),
    )


async def _handshake(
    stack: AsyncExitStack, params: Params, identity: str, run_id: str | None
) -> ClientConnection:
    ws = await stack.enter_async_context(
        connect(params["url"], compression=None, max_size=None, open_timeout=OPEN_TIMEOUT_S)
    )
    hello = Message(
        project_id=params["project"],
        run_id=run_id,
        event_type=HANDSHAKE,
        identity_type=identity,
        event_id=0,
    )
    await ws.send(_encode(hello), text=True)
    reply = msgspec.json.decode(await ws.recv(decode=False))
    result = reply.get("payload", {}).get("result") if isinstance(reply, dict) else None
    if result != 200:
        raise RuntimeError(f"neetbox refused the {identity} handshake: {reply!r}")
    return ws


class NeetboxPublisher(Publisher):
    """:class:`bench._peers.Publisher`'s flood, sending each event as its own neetbox frame."""

    def __init__(self, ws: ClientConnection, params: Params) -> None:
        super().__init__(ws, params, None)
        self.project_id: str = params["project"]
        self.run_id: str = params["run_id"]

    async def _send(self, events: list[schema.Event]) -> None:
        for event in events:
            message = log_message(self.project_id, self.run_id, event)
            await self.ws.send(_encode(message), text=True)
        self.seq += len(events)


async def publish(params: Params, commands: Commands) -> None:
    if params["mode"] != "flood":
        raise RuntimeError("the neetbox publisher only floods")
    async with AsyncExitStack() as stack:
        ws = await _handshake(stack, params, "cli", params["run_id"])
        publisher = NeetboxPublisher(ws, params)
        await _peer_roles.publish_steps(params, commands, publisher.flood)


class _Feed:
    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws

    async def next_events(self) -> tuple[int, Sequence[int | None]]:
        data = await self._ws.recv(decode=False)
        now = time.time_ns()
        return now, ((None,) if _decode_received(data).event_type == LOG else ())


async def watch(params: Params, commands: Commands) -> None:
    async def open_feed(stack: AsyncExitStack) -> _Feed:
        return _Feed(await _handshake(stack, params, "web", None))

    await _peer_roles.watch(params, open_feed)


ROLES: Final = {"publish": publish, "watch": watch}


if __name__ == "__main__":
    sys.exit(_peer_roles.main(ROLES))
