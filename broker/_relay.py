"""A worker connected to a node that does not write its workspace, relayed to the node that does.

Every worker connection of a workspace lives on the node that writes it (its routing core
numbers the events, keeps the mutex lease, replaces an older connection of a run with 4009).
A worker may still connect to any node: that node opens a websocket of its own to the writer,
sends the worker's ``hello`` as it came, and from then on copies frames both ways, unchanged.
The writer authenticates the ``hello`` itself.

When one side closes, the other is closed with the same code, so a client sees the writer's
4009, 4003 or 1001 as if it were connected there. A writer that goes away without a close
frame (its process killed, its socket cut) is a 1012: the client reconnects, and its next
connection goes to whichever node writes the workspace then. The relay pings the writer like a
session pings its peer, so a writer that stops answering (paused) is given up in
``heartbeat_timeout_s`` too.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final, TypeAlias

import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.protocol import State
from websockets.typing import Data, Subprotocol

__all__ = ["relay"]

log = structlog.get_logger("pierhead.relay")

WRITER_GONE: Final = 1012
"""The writer's connection ended without a close frame: reconnect (to any node)."""
WRITER_UNREACHABLE: Final = 1013
"""The writer could not be reached at all: try again later."""
_Connection: TypeAlias = ServerConnection | ClientConnection
_RESERVED: Final = frozenset({1004, 1005, 1006, 1015})
"""Close codes that may not be sent in a close frame."""


async def relay(
    client: ServerConnection,
    hello: Data,
    url: str,
    *,
    authorization: str | None,
    max_size: int,
    heartbeat_s: float,
    heartbeat_timeout_s: float,
    open_timeout_s: float,
) -> None:
    """Relay ``client`` (whose ``hello`` was read already, and whose ``Authorization`` header
    is ``authorization``) to the writer at ``url``."""
    subprotocol = client.subprotocol
    try:
        writer = await connect(
            url,
            subprotocols=[Subprotocol(subprotocol)] if subprotocol else None,
            max_size=max_size,
            compression=None,
            ping_interval=heartbeat_s,
            ping_timeout=heartbeat_timeout_s,
            open_timeout=open_timeout_s,
            # A token may come in the header rather than in the hello: it goes on with it.
            additional_headers={"Authorization": authorization} if authorization else None,
        )
    except (OSError, InvalidHandshake, TimeoutError) as exc:
        log.warning("relay_refused", writer=url, error=str(exc) or type(exc).__name__)
        await client.close(WRITER_UNREACHABLE, "the workspace's node cannot be reached")
        return
    try:
        if client.state is not State.OPEN:
            # The client gave up while the writer was being reached: its hello must not take
            # the run from a newer connection of it (4009 ends a run's worker for good).
            return
        await writer.send(hello)
        upward = asyncio.ensure_future(_copy(client, writer))
        downward = asyncio.ensure_future(_copy(writer, client))
        done, _ = await asyncio.wait({upward, downward}, return_when=asyncio.FIRST_COMPLETED)
        if downward in done:
            code, reason = _close_of(writer)
            await client.close(code, reason)
        else:
            await writer.close()
        for task in (upward, downward):
            task.cancel()
        await asyncio.gather(upward, downward, return_exceptions=True)
    finally:
        with contextlib.suppress(Exception):
            await writer.close()


async def _copy(
    source: ServerConnection | ClientConnection, sink: ServerConnection | ClientConnection
) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for message in source:
            await sink.send(message)


def _close_of(writer: ClientConnection) -> tuple[int, str]:
    code = writer.close_code
    if code is None or code in _RESERVED:
        return WRITER_GONE, "the workspace's node went away"
    return code, writer.close_reason or ""
