"""One websocket to the broker that comes back by itself.

The connection owns the socket, the handshake, request/reply matching and reconnects with
backoff. Its owner (a Worker or a Watcher) supplies the ``hello`` and reacts to ``welcome`` and
to the frames nobody asked for (acks, pushes, events); what to resend after a reconnect is the
owner's business, decided in ``on_welcome``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any, Protocol, TypeAlias, TypeVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from schema import (
    ActionCall,
    BrokerFrame,
    ClientFrame,
    CloseCode,
    Codec,
    Draining,
    ErrorCode,
    ErrorReply,
    Hello,
    MutexAcquire,
    SchemaError,
    Welcome,
)

from ._backoff import Backoff
from ._errors import (
    AuthenticationError,
    BrokerRefusedError,
    ClosedError,
    ConnectionLostError,
    ForbiddenError,
    InvalidArgumentError,
    PierheadTimeoutError,
    ReplacedError,
)

log = logging.getLogger("pierhead.sdk")


_Request = TypeVar("_Request", bound=ClientFrame)

BrokerUrls: TypeAlias = str | Sequence[str]
"""One broker address (``ws://`` or ``wss://``), or several to fail over between, in order."""


def broker_urls(url: BrokerUrls) -> tuple[str, ...]:
    """``url`` as a non-empty tuple of well-formed addresses, else InvalidArgumentError naming
    the one at fault.

    A string is one address, never split on commas: a comma is legal in a URL's path or query.
    A string that is plainly several ``ws://`` addresses joined by commas is refused with a hint,
    rather than failing later as an address with a strange host name.
    """
    urls = (url,) if isinstance(url, str) else tuple(url)
    if not urls:
        raise InvalidArgumentError("no broker url: give one url or a non-empty list of them")
    for candidate in urls:
        if not isinstance(candidate, str):
            raise InvalidArgumentError(f"a broker url must be a string, not {candidate!r}")
        parts = candidate.split(",")
        if len(parts) > 1 and all(_is_websocket_url(part.strip()) for part in parts):
            raise InvalidArgumentError(
                f"invalid broker url {candidate!r}: several addresses joined by commas; "
                "pass them as a list"
            )
        try:
            parse_uri(candidate)
        except (InvalidURI, ValueError) as exc:
            raise InvalidArgumentError(f"invalid broker url {candidate!r}: {exc}") from None
    return urls


def _is_websocket_url(text: str) -> bool:
    return text.startswith(("ws://", "wss://"))


class ConnectionState(enum.StrEnum):
    CONNECTING = "connecting"
    """The first attempt is under way."""
    CONNECTED = "connected"
    """``welcome`` received; frames flow."""
    RECONNECTING = "reconnecting"
    """The connection dropped (or never came up); waiting to try again."""
    CLOSED = "closed"
    """Closed by the owner, or stopped for good (see ``Connection.failure``)."""


class ConnectionOwner(Protocol):
    def hello(self) -> Hello: ...

    def on_welcome(self, welcome: Welcome) -> None: ...

    def on_frame(self, frame: BrokerFrame) -> Awaitable[None] | None:
        """Handle a frame nobody asked for; an awaitable result pauses reading until done."""

    def on_disconnect(self) -> None: ...


REQUEST_TIMEOUT_S = 30.0
"""How long a reply may take beyond what the request itself asks the broker to wait."""

_TRY_AGAIN_LATER = 1013
"""The close of a hello the broker cannot take now (a node on Redis that cannot check the
token): retried like a lost connection, not given up on."""

_FATAL_CLOSE: dict[int, type[ClosedError]] = {
    CloseCode.UNAUTHORIZED: AuthenticationError,
    CloseCode.FORBIDDEN: ForbiddenError,
    CloseCode.REPLACED: ReplacedError,
}


class Connection:
    """One logical connection over one or several broker addresses.

    Attempts go to the addresses in turn, starting with the first: every attempt that fails,
    and every session that ends with a reconnect, moves on to the next one (round robin), with
    the backoff's delay before each attempt as with a single address. Resends and resumes do not
    care which broker takes them: the brokers dedupe by (workspace, run, seq).
    """

    def __init__(
        self,
        url: BrokerUrls,
        owner: ConnectionOwner,
        *,
        codec: Codec,
        backoff: Backoff,
        reconnect: bool = True,
        open_timeout_s: float = 10.0,
        ping_interval_s: float = 5.0,
        ping_timeout_s: float = 10.0,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self.urls = broker_urls(url)
        """Every address, in the order they are tried."""
        self._url_index = 0
        self.codec = codec
        self.welcome: Welcome | None = None
        self.failure: BaseException | None = None
        """Why the connection stopped for good, if it did."""
        self._owner = owner
        self._backoff = backoff
        self._reconnect = reconnect
        self._open_timeout_s = open_timeout_s
        self._ping_interval_s = ping_interval_s
        self._ping_timeout_s = ping_timeout_s
        self.request_timeout_s = request_timeout_s
        """The bound on every reply (see ``reply_bound``)."""
        self._socket: ClientConnection | None = None
        self._state = ConnectionState.CONNECTING
        self._listeners: list[asyncio.Queue[ConnectionState]] = []
        self._settled = asyncio.Event()
        """Set while CONNECTED or CLOSED: what ``wait_connected`` waits for."""
        self._pending: dict[int, asyncio.Future[BrokerFrame]] = {}
        self._ids = itertools.count(1)
        self._closing = False
        self._wakeup = asyncio.Event()
        self.generation = 0
        """How many welcomes so far: a retry waits for a newer one than the attempt used."""
        self._next_welcome = asyncio.Event()
        self._retry_after: float | None = None
        self._welcomed_at: float | None = None
        """``time.monotonic()`` of this attempt's welcome; None until it came."""
        self._close_code: int | None = None
        """The code of the broker's close that ended the last session, if it sent one."""

    # State --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The address of the current session, or of the next attempt while there is none."""
        return self.urls[self._url_index]

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def connected(self) -> bool:
        return self._state is ConnectionState.CONNECTED

    async def changes(self) -> AsyncIterator[ConnectionState]:
        """Every state from now on, starting with the current one, until closed."""
        queue: asyncio.Queue[ConnectionState] = asyncio.Queue()
        self._listeners.append(queue)
        try:
            state = self._state
            yield state
            while state is not ConnectionState.CLOSED:
                state = await queue.get()
                yield state
        finally:
            self._listeners.remove(queue)

    async def wait_connected(self, *, newer_than: int | None = None) -> None:
        """Wait for a welcome (one after generation ``newer_than``, if given); raises
        ClosedError if the connection stopped for good.

        A request that failed with ConnectionLostError retries after a *newer* welcome: the
        connection it used may still look connected until its loss is noticed.
        """
        while newer_than is not None and self.generation <= newer_than:
            if self._state is ConnectionState.CLOSED:
                break
            await self._next_welcome.wait()
        await self._settled.wait()
        if self._state is ConnectionState.CLOSED:
            raise ClosedError("the connection is closed") from self.failure

    def _set_state(self, state: ConnectionState) -> None:
        if state is self._state:
            return
        self._state = state
        if state in (ConnectionState.CONNECTED, ConnectionState.CLOSED):
            self._settled.set()
        else:
            self._settled.clear()
        for queue in self._listeners:
            queue.put_nowait(state)

    # Frames -------------------------------------------------------------------------------

    def next_id(self) -> int:
        return next(self._ids)

    async def send(self, frame: ClientFrame) -> None:
        """Send now; raises ConnectionLostError when there is no connection."""
        socket = self._socket
        if socket is None or not self.connected:
            raise ConnectionLostError("not connected to the broker")
        try:
            await socket.send(self.codec.encode(frame), text=self.codec.text)
        except ConnectionClosed as exc:
            raise ConnectionLostError("the connection dropped while sending") from exc

    async def request(self, frame: Any) -> BrokerFrame:
        """Send a request (a frame with ``id``) and return the broker's answer to it.

        Raises InvalidArgumentError, before sending, for a frame the broker would refuse;
        BrokerRefusedError for an ``error`` answer; ConnectionLostError if the connection
        drops first (the request may or may not have taken effect); PierheadTimeoutError when
        no answer came within ``reply_bound(frame)`` (the same: it may have taken effect).
        """
        self.check(frame)
        bound = self.reply_bound(frame)
        future: asyncio.Future[BrokerFrame] = asyncio.get_running_loop().create_future()
        self._pending[frame.id] = future
        try:
            await self.send(frame)
            async with asyncio.timeout(bound):
                reply = await future
        except TimeoutError:
            raise PierheadTimeoutError(
                f"the broker did not answer {_kind(frame)} request {frame.id} within {bound:g} s"
            ) from None
        finally:
            # The receive loop may have failed the future while the send was waiting for
            # room, and the send's own error is the one raised.
            self._pending.pop(frame.id, None)
            abandon(future)
        if isinstance(reply, ErrorReply):
            raise BrokerRefusedError(reply.code, reply.message, reply.detail)
        return reply

    def check(self, frame: _Request) -> _Request:
        """``frame`` as the broker will decode it, or InvalidArgumentError if the broker would
        refuse it as malformed.

        The broker answers a frame it cannot read with an error that may carry no request id,
        which no waiting request could be matched to: such a frame is refused here instead,
        where the caller can be told why.
        """
        try:
            decoded = self.codec.decode_client_frame(self.codec.encode(frame))
        except SchemaError as exc:
            raise InvalidArgumentError.from_schema(exc, f"invalid {_kind(frame)} request") from None
        except (TypeError, ValueError, OverflowError) as exc:
            # Values with no form on the wire (an arbitrary object, a too-large integer).
            raise InvalidArgumentError(f"invalid {_kind(frame)} request: {exc}") from None
        assert type(decoded) is type(frame)
        return decoded

    def reply_bound(self, frame: Any) -> float | None:
        """Seconds to wait for the answer to ``frame``: ``request_timeout_s``, plus what the
        request asks the broker to wait for. Only a ``mutex_acquire`` that waits without a
        timeout has no bound: the mutex may be held for hours, and a broker that stops
        answering is still found out, by the heartbeat, which drops the connection."""
        if isinstance(frame, MutexAcquire) and frame.wait:
            if frame.timeout_s is None:
                return None
            return frame.timeout_s + self.request_timeout_s
        if isinstance(frame, ActionCall):
            return frame.timeout_s + self.request_timeout_s
        return self.request_timeout_s

    # Running ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, and reconnect after every loss, until closed or refused for good."""
        try:
            while not self._closing:
                lost: Exception = ConnectionLostError("the connection dropped")
                try:
                    await self._session()
                except _FatalError as fatal:
                    self.failure = fatal.error
                    log.error("pierhead connection to %s stopped: %s", self.url, fatal.error)
                    return
                except _RefusedForNowError as refused:
                    log.info("pierhead connection to %s refused for now: %s", self.url, refused)
                    lost = refused.error
                except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed) as exc:
                    log.info("pierhead connection to %s lost: %r", self.url, exc)
                if self._closing_now():
                    return  # closed by the owner during the session: no reconnect to plan
                if not self._reconnect:
                    self.failure = lost
                    return
                self._set_state(ConnectionState.RECONNECTING)
                self._url_index = (self._url_index + 1) % len(self.urls)
                await self._pause(self._next_delay())
        finally:
            self._set_state(ConnectionState.CLOSED)
            self._next_welcome.set()

    async def close(self) -> None:
        """Close the socket and stop reconnecting."""
        self._closing = True
        self._wakeup.set()
        socket = self._socket
        if socket is not None:
            await socket.close()

    def _closing_now(self) -> bool:
        # A method, not the attribute: read after an await, where ``close()`` may have run.
        return self._closing

    def _next_delay(self) -> float:
        """The wait before the next attempt, from how the last one went."""
        welcomed_at, self._welcomed_at = self._welcomed_at, None
        close_code, self._close_code = self._close_code, None
        if welcomed_at is None:
            delay = self._backoff.next_delay()
        else:
            lasted_s = time.monotonic() - welcomed_at
            delay = self._backoff.after_session(lasted_s=lasted_s, close_code=close_code)
        if self._retry_after is not None:
            # A draining broker said when to come back; that beats a guess.
            delay, self._retry_after = self._retry_after, None
        log.info(
            "pierhead reconnect_scheduled attempt=%d delay_s=%.3f close_code=%s url=%s",
            self._backoff.attempts,
            delay,
            close_code,
            self.url,
            extra={
                "attempt": self._backoff.attempts,
                "delay_s": delay,
                "close_code": close_code,
                "url": self.url,
            },
        )
        return delay

    async def _pause(self, delay: float) -> None:
        if self._closing:
            return
        self._wakeup.clear()
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for drops a cancellation that
        # arrives as the wakeup is set, and the connection's loop would outlive close().
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._wakeup.wait()

    async def _session(self) -> None:
        try:
            socket = await connect(
                self.url,
                subprotocols=[Subprotocol(self.codec.subprotocol)],
                compression=None,
                max_size=None,
                open_timeout=self._open_timeout_s,
                ping_interval=self._ping_interval_s,
                ping_timeout=self._ping_timeout_s,
            )
        except InvalidURI as exc:
            raise _FatalError(ClosedError(f"invalid broker url {self.url!r}: {exc}")) from exc
        try:
            # close() may have run during the handshake, with no socket yet to close. Its owner
            # cancels this task as well, but not every await keeps a cancellation (3.11's
            # wait_for dropped one that came with the welcome, and the connection served on).
            if self._closing_now():
                return
            await socket.send(self.codec.encode(self._owner.hello()), text=self.codec.text)
            async with asyncio.timeout(self._open_timeout_s):
                welcome = await self._first_frame(socket)
            if self._closing_now():
                return
            self._socket = socket
            self.welcome = welcome
            self.generation += 1
            welcomed, self._next_welcome = self._next_welcome, asyncio.Event()
            welcomed.set()
            # The backoff is reset (or not) when this session ends: see Backoff.after_session.
            self._welcomed_at = time.monotonic()
            log.info(
                "pierhead connected url=%s generation=%d",
                self.url,
                self.generation,
                extra={"url": self.url, "generation": self.generation},
            )
            self._set_state(ConnectionState.CONNECTED)
            self._owner.on_welcome(welcome)
            async for data in socket:
                pending = self._dispatch(data)
                if pending is not None:
                    # The owner is full (a subscriber not keeping up): stop reading, so the
                    # broker holds the rest instead of this process.
                    await pending
            # A normal close (1000, 1001) ends the loop without an exception.
            self._close_code = socket.close_code
        except ConnectionClosed as exc:
            close = exc.rcvd
            self._close_code = close.code if close is not None else None
            error_type = _FATAL_CLOSE.get(close.code) if close else None
            if close is not None and error_type is not None:
                reason = close.reason or "refused"
                message = f"closed by the broker ({close.code}): {reason}"
                raise _FatalError(error_type(message)) from exc
            raise
        finally:
            self._socket = None
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionLostError("the connection dropped"))
            if self.welcome is not None and self._state is ConnectionState.CONNECTED:
                self._owner.on_disconnect()
            await socket.close()

    async def _first_frame(self, socket: ClientConnection) -> Welcome:
        frame = self.codec.decode_broker_frame(await socket.recv())
        if isinstance(frame, Welcome):
            return frame
        if isinstance(frame, ErrorReply):
            refusal = BrokerRefusedError(frame.code, frame.message, frame.detail)
            await socket.wait_closed()  # the broker closes right after it refuses
            if socket.close_code == _TRY_AGAIN_LATER:
                raise _RefusedForNowError(refusal)
            error: Exception = refusal
            if frame.code is ErrorCode.UNAUTHORIZED:
                error = AuthenticationError(frame.message)
            elif frame.code is ErrorCode.FORBIDDEN:
                error = ForbiddenError(frame.message)
            raise _FatalError(error)
        raise _FatalError(ClosedError(f"the broker answered hello with {frame!r}"))

    def _dispatch(self, data: bytes | str) -> Awaitable[None] | None:
        try:
            frame = self.codec.decode_broker_frame(data)
        except SchemaError as exc:
            # A newer broker may send what this client does not know: skip it, say so.
            log.warning("pierhead: skipped a frame this client cannot decode: %s", exc)
            return None
        if isinstance(frame, Draining):
            self._retry_after = frame.reconnect_after_s
        request_id = getattr(frame, "id", None)
        future = self._pending.get(request_id) if request_id is not None else None
        if future is not None and not future.done():
            future.set_result(frame)
            return None
        return self._owner.on_frame(frame)


def abandon(future: asyncio.Future[Any]) -> None:
    """Let go of a future nobody will await any more: cancel it if still pending, else look
    at its exception, so that asyncio does not log "Future exception was never retrieved"
    into the application's logs when it is collected.

    Every future the SDK creates and may leave unawaited (a reply or a confirmation that a
    lost connection failed while the request was still being sent) ends here.
    """
    if not future.done():
        future.cancel()
    elif not future.cancelled():
        future.exception()


class _RefusedForNowError(Exception):
    """The broker refused the hello for now (1013): tried again with the backoff."""

    def __init__(self, error: BrokerRefusedError) -> None:
        super().__init__(str(error))
        self.error = error


class _FatalError(Exception):
    """Wraps the error that ends the connection for good."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _kind(frame: Any) -> str:
    """The frame's ``type`` on the wire, for messages."""
    return str(frame.__struct_config__.tag)
