"""What every session has: a codec, a bounded outbox, a receive loop and a clean ending.

Frame handlers live in the worker and watcher session modules; this module only moves frames
between the socket and them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final

import structlog
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from schema import (
    BrokerFrame,
    ClientFrame,
    CloseCode,
    Codec,
    ErrorCode,
    ErrorReply,
    Ok,
    Role,
    SchemaError,
)

from ._access import OPEN, Grant, refusal
from ._outbox import OutboxClosedError, SessionOutbox

if TYPE_CHECKING:
    from ._broker import Broker

Handler = Callable[[Any, Any], Any]

_DISCARD_AFTER_CLOSE_S: Final = 1.0
"""How long a closing session keeps reading (and dropping) frames, waiting for the peer's close."""


@dataclass(frozen=True, slots=True)
class SessionContext:
    """What every session is opened with, whatever its role."""

    broker: Broker
    connection: ServerConnection
    codec: Codec
    session_id: str
    client: str
    log: structlog.typing.FilteringBoundLogger
    grant: Grant = OPEN


class Session:
    """One websocket after a valid ``hello``."""

    role: ClassVar[str]
    catch_role: ClassVar[Role]
    """The role a ``catch`` needs in this kind of session."""
    handlers: ClassVar[dict[type[Any], Handler]]
    """Frame type -> handler; a frame without one is refused with ``forbidden``."""

    def __init__(self, context: SessionContext) -> None:
        self.broker = context.broker
        self.connection = context.connection
        self.codec = context.codec
        self.session_id = context.session_id
        self.client = context.client
        self.log = context.log
        self.grant = context.grant
        self.outbox = SessionOutbox(self.broker.config.session_buffer_bytes)
        self._bad_frames = 0
        self._close: tuple[int, str] | None = None

    @property
    def label(self) -> str:
        """Who this is, as other parties see it (``by`` of a catch, ``caller`` of an action).

        With authentication on, the token's name: a program chooses its own ``client`` (and run
        id), so only the token says who is accountable. Without it, the name it gave itself.
        """
        if self.grant.token_name is not None:
            return self.grant.token_name
        return self.self_named

    @property
    def self_named(self) -> str:
        """The name this session gave itself in ``hello``."""
        return self.client or self.session_id

    @property
    def queued_bytes(self) -> int:
        return self.outbox.queued_bytes

    # Sending ------------------------------------------------------------------------------

    def send(self, frame: BrokerFrame) -> None:
        """Queue a frame; a session that lets its outbox overflow is closed as a slow consumer."""
        self.send_encoded(self.codec.encode(frame))

    def send_encoded(self, data: bytes) -> None:
        if not self.outbox.put_nowait(data):
            self.log.warning("slow_consumer", queued_bytes=self.outbox.queued_bytes)
            self.abort(CloseCode.SLOW_CONSUMER, "outbound buffer full; resume from your offset")

    def ok(self, request_id: int) -> None:
        self.send(Ok(id=request_id))

    def error(
        self,
        code: ErrorCode,
        message: str,
        *,
        request_id: int | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        self.send(ErrorReply(code=code, message=message, id=request_id, detail=detail))

    # Ending -------------------------------------------------------------------------------

    def close_after_flush(self, code: int, reason: str) -> None:
        """Send what is queued, then close with ``code``."""
        if self._close is None:
            self._close = (code, reason)
            self.outbox.close()

    def closing(self) -> bool:
        """Whether a close has been decided: no further frame is handled."""
        return self._close is not None

    def abort(self, code: int, reason: str) -> None:
        """Close now, dropping what is queued (the peer is not reading it anyway)."""
        if self._close is None:
            self._close = (code, reason)
            self.outbox.close()
        # Kept by the broker: the loop holds only a weak reference to a task.
        self.broker.spawn(self.connection.close(code, reason))

    # Running ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the session until the socket closes; then let the broker forget it."""
        try:
            async with asyncio.TaskGroup() as tasks:
                writer = tasks.create_task(self._write())
                extra = [tasks.create_task(job) for job in self.background()]
                await self._receive()
                self.outbox.close()
                for task in extra:
                    task.cancel()
                # Let queued replies go out, but never wait on a peer that stopped reading.
                try:
                    await asyncio.wait_for(asyncio.shield(writer), timeout=1.0)
                except TimeoutError:
                    writer.cancel()
        finally:
            self.ended()

    def background(self) -> list[Any]:
        """Coroutines that run beside the receive loop (the watcher's delivery)."""
        return []

    def ended(self) -> None:
        """The socket is gone; unregister (overridden by the session kinds)."""

    async def _write(self) -> None:
        text = self.codec.text
        try:
            while True:
                await self.connection.send(await self.outbox.get(), text=text)
        except OutboxClosedError:
            if self._close is not None:
                await self.connection.close(*self._close)
        except ConnectionClosed:
            pass

    async def _receive(self) -> None:
        try:
            while not self.closing():
                # Text frames arrive as str, binary as bytes: the codec refuses the wrong kind.
                data = await self.connection.recv()
                if self.closing():
                    # Closed while this frame was on its way (its workspace deleted, say):
                    # nothing it asks for may act on what the close has already let go of.
                    break
                self._handle(data)
            await self._discard_incoming()
        except ConnectionClosed:
            pass

    async def _discard_incoming(self) -> None:
        """Read and drop what the peer still sends after a close was decided, for a while.

        A peer that keeps sending (a flood being closed with 4029) would otherwise find the
        broker's reading paused behind frames nobody reads, the close handshake stuck, and the
        socket closed with unread bytes: a reset, which can destroy the error and close frames
        still on their way to it.
        """
        try:
            async with asyncio.timeout(_DISCARD_AFTER_CLOSE_S):
                while True:
                    await self.connection.recv()
        except TimeoutError:
            pass

    def _handle(self, data: bytes | str) -> None:
        try:
            frame: ClientFrame = self.codec.decode_client_frame(data)
        except SchemaError as exc:
            self._bad_frame(exc)
            return
        handler = self.handlers.get(type(frame))
        if handler is None:
            self.error(
                ErrorCode.FORBIDDEN,
                f"{frame.__struct_config__.tag} frames are not for {self.role} sessions",
                request_id=getattr(frame, "id", None),
            )
            return
        self._bad_frames = 0
        why = refusal(self.grant, frame, catch_role=self.catch_role)
        if why is not None:
            self.error(ErrorCode.FORBIDDEN, why, request_id=getattr(frame, "id", None))
            return
        result = handler(self, frame)
        if asyncio.iscoroutine(result):
            # Handlers that wait on the store run beside the receive loop, not inside it.
            self.broker.answer_later(self, getattr(frame, "id", None), result)

    def _bad_frame(self, exc: SchemaError) -> None:
        self._bad_frames += 1
        # The field, not the message: messages quote the value, which may be a secret
        # sent in the wrong place. The client gets the whole message; it is its own data.
        self.log.info("bad_frame", code=exc.code.value, field=exc.field, count=self._bad_frames)
        self.error(exc.code, str(exc), request_id=exc.request_id)
        if self._bad_frames >= self.broker.config.max_bad_frames:
            self.close_after_flush(CloseCode.PROTOCOL_ERROR, "too many bad frames")
