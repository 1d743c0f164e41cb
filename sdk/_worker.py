"""The worker client: publish events that are never lost or doubled, follow catch and mutex."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import math
import os
import re
import secrets
import socket
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Literal, TypeVar

import msgspec

import schema
from schema import (
    Ack,
    ActionRequest,
    BrokerFrame,
    Catch,
    ErrorCode,
    ErrorReply,
    Event,
    Hello,
    MutexAcquire,
    MutexGranted,
    MutexLost,
    MutexRelease,
    SemaphoresPush,
    SetDetails,
    Welcome,
    WorkerPayload,
    WorkspaceDetails,
    WorkspaceSemaphores,
    semaphores_of,
)

from ._actions import ActionRegistry
from ._backoff import Backoff
from ._connection import BrokerUrls, Connection, ConnectionState
from ._errors import (
    BrokerRefusedError,
    ClosedError,
    ConnectionLostError,
    InvalidArgumentError,
    PierheadTimeoutError,
    UsageError,
)
from ._lease import Lease
from ._lifecycle import AsyncClient
from ._outbox import EventTooLargeError, Outbox, OutboxPolicy, Ticket
from ._spool import Spool

log = logging.getLogger("pierhead.sdk")

F = TypeVar("F", bound=Callable[..., Any])
Unreachable = Literal["wait", "proceed"]

_SIZE_ENCODER = msgspec.json.Encoder()
_EVENT_DECODER = msgspec.json.Decoder(Event)
_CLIENT = "pierhead-sdk/0.1"
_FRAME_OVERHEAD = 256
"""Bytes of a publish frame around its events, with a margin."""


def default_run_id() -> str:
    """host-pid-random: stable for this process, distinct from every other."""
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:80] or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}".lstrip("-._")


class Worker(AsyncClient):
    """A worker's connection to one workspace.

    ``async with Worker(url, "deploy-prod") as worker:`` connects in the background and
    reconnects by itself; ``url`` may also be a list of brokers' addresses, tried in turn, from
    the first, on each reconnect. Events are queued in a bounded outbox and resent until the broker
    acknowledges them; the broker drops resent duplicates, so each event is stored once.
    """

    def __init__(
        self,
        url: BrokerUrls,
        workspace: str,
        *,
        token: str | None = None,
        details: WorkspaceDetails | None = None,
        run_id: str | None = None,
        client: str = _CLIENT,
        codec: Literal["json", "msgpack"] = "json",
        outbox_max_events: int = 100_000,
        outbox_max_bytes: int = 64 * 1024 * 1024,
        outbox_policy: OutboxPolicy = "block",
        max_in_flight: int = 16,
        reconnect_initial_s: float = 0.1,
        reconnect_max_s: float = 10.0,
        close_timeout_s: float = 10.0,
        spool: str | os.PathLike[str] | None = None,
    ) -> None:
        if spool is not None and run_id is None:
            raise InvalidArgumentError("a spool needs a run_id that stays the same across restarts")
        self.workspace = workspace
        self.run_id = run_id or default_run_id()
        # Validated by the schema now, not by the broker later.
        try:
            self._hello = schema.convert(
                {
                    "type": "hello",
                    "protocol": schema.PROTOCOL_VERSION,
                    "role": "worker",
                    "client": client,
                    "token": token or os.environ.get("PIERHEAD_TOKEN"),
                    "workspace": workspace,
                    "run_id": self.run_id,
                },
                Hello,
            )
        except schema.SchemaError as exc:
            raise InvalidArgumentError.from_schema(exc, "invalid worker settings") from None
        # A hello the broker refuses would be sent again and again: check the details now.
        self._details = details if details is None else _checked_details(details)
        self.close_timeout_s = close_timeout_s
        self._outbox = Outbox(
            max_events=outbox_max_events, max_bytes=outbox_max_bytes, policy=outbox_policy
        )
        self._policy = outbox_policy
        self._actions = ActionRegistry()
        self._connection = Connection(
            url,
            self,
            codec=schema.codec_for(f"pierhead.v1.{codec}"),
            backoff=Backoff(reconnect_initial_s, reconnect_max_s),
        )
        self._max_in_flight = max_in_flight
        self._in_flight: deque[int] = deque()  # last seq of each batch awaiting its ack
        self._limits: schema.Limits | None = None
        """The broker's, from its latest welcome; None until the first one."""
        self._semaphores = WorkspaceSemaphores()
        self._released = asyncio.Event()
        self._released.set()
        self._caught = asyncio.Event()
        self._ended = asyncio.Event()
        """Set when the connection stopped for good: nothing will be released or acked."""
        self._progress = asyncio.Event()
        self._wake_sender = asyncio.Event()
        self._lease: Lease | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._action_tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._spool: Spool | None = None
        self._spool_rows: dict[Ticket, int] = {}
        if spool is not None:
            self._spool = Spool(spool, workspace=workspace, run_id=self.run_id)
            for row, seq, event in self._spool.load():
                size = len(_SIZE_ENCODER.encode(event))
                self._spool_rows[self._outbox.add(event, size, seq=seq)] = row

    # Lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start connecting (in the background) and sending what is queued."""
        if self._tasks:
            raise UsageError("this worker is already started")
        self._tasks = [
            asyncio.create_task(self._run_connection(), name="pierhead-connection"),
            asyncio.create_task(self._send_forever(), name="pierhead-sender"),
        ]

    async def close(self, timeout: float | None = None) -> None:
        """Flush (at most ``timeout``, default ``close_timeout_s``), then disconnect.

        Events still unacknowledged after that are reported in a warning; they are lost
        unless the process keeps running and the worker is started again.
        """
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(TimeoutError, ClosedError):
            await self.flush(self.close_timeout_s if timeout is None else timeout)
        await self._connection.close()
        for task in [*self._tasks, *self._action_tasks]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._action_tasks, return_exceptions=True)
        if self._outbox.held:
            log.warning(
                "pierhead worker %s closed with %d events not acknowledged by the broker%s",
                self.run_id,
                self._outbox.held,
                " (kept in the spool)" if self._spool is not None else "",
            )
        if self._spool is not None:
            self._spool.close()

    async def _run_connection(self) -> None:
        try:
            await self._connection.run()
        finally:
            self._ended.set()
            self._notify_progress()

    @property
    def url(self) -> str:
        """The broker address this client is connected to, or will try next while it is not:
        one of the addresses it was given, which it goes through in turn on each reconnect."""
        return self._connection.url

    @property
    def state(self) -> ConnectionState:
        return self._connection.state

    def state_changes(self) -> AsyncIterator[ConnectionState]:
        """Connection states as they change: connecting, connected, reconnecting, closed."""
        return self._connection.changes()

    async def connected(self) -> None:
        """Wait until the broker has welcomed this worker."""
        await self._connection.wait_connected()

    @property
    def counters(self) -> dict[str, int]:
        """Outbox figures: queued (not sent), in_flight (sent, not acked), acked, dropped."""
        outbox = self._outbox
        return {
            "queued": outbox.queued,
            "in_flight": outbox.in_flight,
            "acked": outbox.acked_total,
            "dropped": outbox.dropped_total,
        }

    # Publishing ---------------------------------------------------------------------------

    def publish_nowait(
        self,
        payload: WorkerPayload,
        *,
        series: str | None = None,
        create_time: datetime.datetime | None = None,
    ) -> Ticket:
        """Queue an event without waiting; returns its ticket.

        Raises OutboxFullError when the outbox is full and the policy is ``block`` or
        ``raise`` (with ``drop_oldest`` the oldest events make room), EventTooLargeError for
        an event the broker's frames cannot hold, InvalidArgumentError (a SchemaError) when
        the event breaks the protocol's rules, and ClosedError once the worker is closed or
        stopped for good.
        """
        return self._add(*_checked(payload, series, create_time))

    async def publish(
        self,
        payload: WorkerPayload,
        *,
        series: str | None = None,
        create_time: datetime.datetime | None = None,
    ) -> Ticket:
        """Queue an event; returns at once unless the outbox is full under ``block``."""
        event, size = _checked(payload, series, create_time)
        self._check_open()
        self._check_size(size)
        while self._policy == "block" and not self._outbox.has_room(size):
            await self._wait_progress()
        return self._add(event, size)

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("this worker is closed")
        if self._tasks and self._connection.state is ConnectionState.CLOSED:
            # Stopped for good (4001, 4003, 4009): nothing queued now could ever be sent.
            failure = self._connection.failure
            raise ClosedError(f"this worker was stopped for good: {failure}") from failure

    def _check_size(self, size: int) -> None:
        if size > self._outbox.max_bytes:
            raise EventTooLargeError(
                f"an event of {size} bytes can never fit an outbox of {self._outbox.max_bytes}"
            )
        room = self._frame_room()
        if room is not None and size > room:
            raise EventTooLargeError(
                f"an event of {size} bytes does not fit the broker's frames "
                f"(max_frame_bytes {room + _FRAME_OVERHEAD}, so at most {room} bytes per event)"
            )

    def _frame_room(self) -> int | None:
        """The largest event the broker's frames hold (alone in a frame, with room for the
        frame around it); None until the broker has said its limit. A larger event could
        never be sent (the broker closes with 1009) and would hold up every event after it."""
        if self._limits is None:
            return None
        return max(self._limits.max_frame_bytes - _FRAME_OVERHEAD, 0)

    def _add(self, event: Event, size: int) -> Ticket:
        self._check_open()
        self._check_size(size)
        if self._spool is None:
            ticket = self._outbox.add(event, size)
        else:
            # On disk first: once the caller has a ticket, a crash no longer loses the event.
            row = self._spool.append(event)
            try:
                ticket = self._outbox.add(event, size)
            except Exception:
                self._spool.dropped([row])
                raise
            self._spool_rows[ticket] = row
        self._drop(self._outbox.take_dropped())
        self._wake_sender.set()
        return ticket

    def _drop(self, dropped: Sequence[Ticket]) -> None:
        if dropped and self._spool is not None:
            self._spool.dropped([self._spool_rows.pop(t) for t in dropped if t in self._spool_rows])
        self._settle(dropped)

    async def event(self, message: str, severity: schema.Severity = "info") -> Ticket:
        return await self.publish(schema.WorkspaceEvent(message=message, severity=severity))

    async def log(
        self, message: str, level: schema.LogLevel = "info", logger: str | None = None
    ) -> Ticket:
        return await self.publish(schema.LogRecord(message=message, level=level, logger=logger))

    async def scalar(self, name: str, value: float, step: int | None = None) -> Ticket:
        return await self.publish(schema.Scalar(name=name, value=value, step=step))

    async def progress(
        self, name: str, current: float, total: float | None = None, rate: float | None = None
    ) -> Ticket:
        return await self.publish(
            schema.Progress(name=name, current=current, total=total, rate=rate)
        )

    async def status(self, key: str, value: str) -> Ticket:
        return await self.publish(schema.Status(key=key, value=value))

    async def hyperparameters(self, values: Mapping[str, Any]) -> Ticket:
        return await self.publish(schema.Hyperparameters(values=dict(values)))

    async def hardware(
        self,
        *,
        cpu_percent: float | None = None,
        memory_used_bytes: int | None = None,
        memory_total_bytes: int | None = None,
        gpus: Sequence[schema.GpuStats] = (),
        extra: Mapping[str, float] | None = None,
    ) -> Ticket:
        """A sample of the machine's load (the dashboard draws it beside the scalars)."""
        return await self.publish(
            schema.Hardware(
                cpu_percent=cpu_percent,
                memory_used_bytes=memory_used_bytes,
                memory_total_bytes=memory_total_bytes,
                gpus=list(gpus),
                extra=dict(extra or {}),
            )
        )

    async def custom(self, name: str, data: Any) -> Ticket:
        try:
            builtins = msgspec.to_builtins(data)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidArgumentError(
                f"invalid custom event {name!r}: its data has no JSON form: {exc}"
            ) from None
        return await self.publish(schema.Custom(name=name, data=builtins))

    def queue_event(self, message: str, severity: schema.Severity = "info") -> Ticket:
        """Queue a workspace event without waiting (boardwalk's name)."""
        return self.publish_nowait(schema.WorkspaceEvent(message=message, severity=severity))

    async def post_event(
        self, message: str, severity: schema.Severity = "info", *, timeout: float | None = None
    ) -> None:
        """Publish a workspace event and wait until the broker has stored it."""
        ticket = await self.event(message, severity)
        await self.wait_acked(ticket, timeout=timeout)

    async def wait_acked(self, ticket: Ticket, *, timeout: float | None = None) -> None:
        """Wait until the event with this ticket is stored (or was dropped by the outbox);
        PierheadTimeoutError (a TimeoutError) after ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                while not self._outbox.settled(ticket):
                    await self._wait_progress()
        except TimeoutError:
            raise PierheadTimeoutError(
                f"event {ticket} not acknowledged within {timeout:g} s "
                f"({self._outbox.held} events held, connection {self.state})"
            ) from None

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every event queued so far is acknowledged; PierheadTimeoutError (a
        TimeoutError) after ``timeout`` seconds."""
        if self._outbox.last_ticket:
            await self.wait_acked(self._outbox.last_ticket, timeout=timeout)

    async def _wait_progress(self) -> None:
        if self._connection.state is ConnectionState.CLOSED and self._tasks:
            raise ClosedError("the connection is closed") from self._connection.failure
        self._progress.clear()
        await self._progress.wait()

    def _notify_progress(self) -> None:
        self._progress.set()

    def _settle(self, tickets: Sequence[Ticket]) -> None:
        if not tickets:
            return
        for ticket in tickets:
            self._spool_rows.pop(ticket, None)
        self._notify_progress()

    async def _send_forever(self) -> None:
        connection = self._connection
        while True:
            try:
                await connection.wait_connected()
            except ClosedError:
                self._notify_progress()
                return
            limits = self._limits
            assert limits is not None, "connected, so welcomed"
            while connection.connected and len(self._in_flight) < self._max_in_flight:
                batch = self._outbox.next_batch(limits.max_batch, limits.max_frame_bytes // 2)
                if batch is None:
                    break
                self._in_flight.append(batch.seq + len(batch.events) - 1)
                if self._spool is not None:
                    numbered = self._outbox.newest_in_flight(len(batch.events))
                    rows = self._spool_rows
                    self._spool.numbered((rows[t], seq) for t, seq in numbered if t in rows)
                try:
                    await connection.send(batch)
                except ConnectionLostError:
                    break  # on_welcome puts everything back for the next connection
            self._wake_sender.clear()
            await self._wake_sender.wait()

    # Details, catch and semaphores --------------------------------------------------------

    async def post_details(self, details: WorkspaceDetails) -> None:
        """Replace the workspace's details (also sent again on every reconnect).

        InvalidArgumentError, before anything is sent, for details the broker would refuse.
        """
        self._details = _checked_details(details)
        await self._request(SetDetails(id=self._connection.next_id(), details=details))

    async def post_catch(self, reason: str | None = None) -> None:
        """Catch (pause) this worker's own workspace, e.g. after a failure."""
        await self._request(Catch(id=self._connection.next_id(), reason=reason))

    @property
    def caught(self) -> bool:
        """Whether the workspace is caught, as last pushed by the broker."""
        return self._semaphores.caught

    @property
    def semaphores(self) -> WorkspaceSemaphores:
        return self._semaphores

    async def get_semaphores(self) -> WorkspaceSemaphores:
        """The workspace's semaphores, once connected (they are pushed, never polled)."""
        await self._connection.wait_connected()
        return self._semaphores

    async def wait_caught(self) -> None:
        """Return once the workspace is caught; ClosedError if the connection stops first."""
        await self._until(self._caught)

    async def wait_released(self) -> None:
        """Return once the workspace is not caught; ClosedError if the connection stops first."""
        await self._until(self._released)

    async def _until(self, event: asyncio.Event) -> None:
        if not event.is_set():
            waits = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(self._ended.wait())]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()
        if not event.is_set():
            raise ClosedError("the connection is closed") from self._connection.failure

    async def checkpoint(self, unreachable: Unreachable = "wait") -> None:
        """A safe point between units of work: return at once unless caught.

        When caught, wait for the release. When the broker is unreachable, ``wait`` (the
        default) waits until it is back and then decides; ``proceed`` goes on as if released.
        """
        while True:
            if not self._connection.connected:
                if unreachable == "proceed":
                    return
                await self._connection.wait_connected()
                continue
            if not self.caught:
                return
            await self._until(self._released)

    # Mutex --------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def mutex(
        self, *, wait: bool = True, timeout: float | None = None
    ) -> AsyncIterator[Lease]:
        """Hold the workspace mutex for the block: ``async with worker.mutex() as lease``.

        Raises BrokerRefusedError (``conflict`` naming the holder, or ``timeout``) when it
        cannot be had, and InvalidArgumentError for a ``timeout`` that is not a positive
        number of seconds. A lease lost while held is marked (``lease.check()`` raises) and
        the release at the end is skipped.
        """
        # The schema's bounds are checked before sending too; this says it in the caller's words.
        if timeout is not None and not (isinstance(timeout, int | float) and timeout > 0):
            raise InvalidArgumentError(
                "mutex timeout must be None (wait as long as it takes) or a positive number "
                f"of seconds, not {timeout!r}",
                field="timeout",
            )
        lease = await self._acquire(wait=wait, timeout=timeout)
        try:
            yield lease
        finally:
            if not lease.lost:
                await self.unmutex()

    async def _acquire(self, *, wait: bool, timeout: float | None) -> Lease:
        generation: int | None = None
        while True:
            frame = MutexAcquire(id=self._connection.next_id(), wait=wait, timeout_s=timeout)
            try:
                await self._connection.wait_connected(newer_than=generation)
                generation = self._connection.generation
                reply = await self._connection.request(frame)
            except ConnectionLostError:
                # Acquiring again is safe: a holder asking again gets its own fence back.
                continue
            assert isinstance(reply, MutexGranted)
            self._lease = Lease(reply.fence)
            return self._lease

    async def unmutex(self) -> None:
        """Release the workspace mutex this run holds."""
        lease, self._lease = self._lease, None
        if lease is None or lease.lost:
            return
        generation: int | None = None
        while True:
            try:
                await self._connection.wait_connected(newer_than=generation)
                retry = generation is not None
                generation = self._connection.generation
                await self._connection.request(MutexRelease(id=self._connection.next_id()))
                return
            except ConnectionLostError:
                continue
            except BrokerRefusedError as refused:
                # A retry after a lost answer: the first release did it.
                if retry and refused.code is ErrorCode.CONFLICT:
                    return
                raise

    # Actions ------------------------------------------------------------------------------

    def action(self, name: str | None = None, *, description: str = "") -> Callable[[F], F]:
        """Register a function operators can call: ``@worker.action("set_lr")``.

        Register actions before the worker starts: they are declared in the handshake.
        """

        def register(function: F) -> F:
            if self._tasks:
                raise UsageError("register actions before the worker is started")
            self._actions.register(function, name=name, description=description)
            return function

        return register

    # Connection callbacks -----------------------------------------------------------------

    def hello(self) -> Hello:
        return msgspec.structs.replace(
            self._hello, details=self._details, actions=self._actions.specs
        )

    def on_welcome(self, welcome: Welcome) -> None:
        self._limits = welcome.limits
        self._in_flight.clear()
        if self._spool is not None:
            self._spool.acked(welcome.acked_seq or 0)
        self._settle(self._outbox.reconnected(welcome.acked_seq or 0))
        room = self._frame_room()
        assert room is not None
        too_large = self._outbox.drop_larger_than(room)
        if too_large:
            # Queued before the limit was known (the caller had its ticket): dropped here, or
            # sending them would close every connection with 1009 and hold up the rest.
            log.error(
                "pierhead worker %s dropped %d queued events larger than the broker's frames "
                "allow (max_frame_bytes %d); counted in counters['dropped']",
                self.run_id,
                len(too_large),
                welcome.limits.max_frame_bytes,
            )
            self._drop(too_large)
        if welcome.semaphores is not None:
            self._set_semaphores(welcome.semaphores)
        self._notify_progress()
        self._wake_sender.set()

    def on_disconnect(self) -> None:
        self._notify_progress()

    def on_frame(self, frame: BrokerFrame) -> None:
        match frame:
            case Ack(seq=seq):
                if self._spool is not None:
                    self._spool.acked(seq)
                self._settle(self._outbox.acked(seq))
                while self._in_flight and self._in_flight[0] <= seq:
                    self._in_flight.popleft()
                self._wake_sender.set()
            case SemaphoresPush():
                self._set_semaphores(semaphores_of(frame))
            case ActionRequest():
                task = asyncio.create_task(self._answer(frame))
                self._action_tasks.add(task)
                task.add_done_callback(self._action_tasks.discard)
            case MutexLost(fence=fence, reason=reason):
                lease = self._lease
                if lease is not None and lease.fence == fence and not lease.lost:
                    lease.mark_lost(reason)
                    log.warning("pierhead: mutex lease %d lost (%s)", fence, reason)
            case ErrorReply():
                log.error("pierhead: the broker refused a frame: %s %s", frame.code, frame.message)
            case _:
                log.debug("pierhead: ignored %s", type(frame).__name__)

    def _set_semaphores(self, semaphores: WorkspaceSemaphores) -> None:
        self._semaphores = semaphores
        lease = self._lease
        if lease is not None and (
            semaphores.holder != self.run_id or semaphores.fence != lease.fence
        ):
            # Lost while away, when no mutex_lost could reach us; or told here first, since the
            # broker sends mutex_lost once the change is durable, after the commit's push.
            reason = _lost_reason(semaphores, lease.fence)
            if not lease.lost:
                log.warning("pierhead: mutex lease %d lost (%s)", lease.fence, reason)
            lease.mark_lost(reason)
        if semaphores.caught:
            self._released.clear()
            self._caught.set()
        else:
            self._caught.clear()
            self._released.set()

    async def _answer(self, request: ActionRequest) -> None:
        result = await self._actions.run(request)
        with contextlib.suppress(ConnectionLostError):
            await self._connection.send(result)

    async def _request(self, frame: Any) -> BrokerFrame:
        await self._connection.wait_connected()
        return await self._connection.request(frame)


def _lost_reason(semaphores: WorkspaceSemaphores, fence: int) -> str:
    """Why the lease with ``fence`` is gone, from the semaphores that no longer show it."""
    if semaphores.mutex_change in ("broken", "expired") and semaphores.fence == fence:
        return semaphores.mutex_change
    # The next waiter's grant in the same commit hides the reason (so do older brokers): a
    # new fence means another run was granted; the same one, that the lease ran out.
    return "expired" if semaphores.fence == fence else "broken"


def _checked(
    payload: WorkerPayload, series: str | None, create_time: datetime.datetime | None
) -> tuple[Event, int]:
    """The event, checked against the protocol's rules, and its encoded size."""
    kind = _kind(payload)
    for name in payload.__struct_fields__:
        value = getattr(payload, name)
        # JSON has no NaN or infinity: encoded they become null, and the check below would
        # only say "expected float, got null".
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidArgumentError(
                f"invalid event ({kind}): {name} must be a finite number, not {value!r}",
                field=f"$.payload.{name}",
            )
    event = Event(
        payload=payload,
        create_time=create_time or datetime.datetime.now(datetime.UTC),
        series=series,
    )
    try:
        encoded = _SIZE_ENCODER.encode(event)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidArgumentError(f"invalid event ({kind}): {exc}") from None
    # Decoding what was encoded applies every bound the broker will apply; an event it would
    # refuse is refused here, to the caller, instead of blocking the outbox later.
    try:
        _EVENT_DECODER.decode(encoded)
    except msgspec.ValidationError:
        # Again through the schema, for the code the broker would answer (too_large for a
        # length bound, else bad_frame): only on this rare path.
        try:
            schema.convert(msgspec.json.decode(encoded), Event)
        except schema.SchemaError as exc:
            raise InvalidArgumentError.from_schema(exc, f"invalid event ({kind})") from None
        raise AssertionError("the schema accepts what the event decoder refused") from None
    return event, len(encoded)


def _kind(payload: object) -> str:
    config = getattr(payload, "__struct_config__", None)
    if config is None:
        raise InvalidArgumentError(f"an event payload is a schema payload, not {payload!r}")
    return str(config.tag)


def _checked_details(details: WorkspaceDetails) -> WorkspaceDetails:
    """``details`` as the broker will read them; InvalidArgumentError if it would not."""
    try:
        return schema.convert(msgspec.to_builtins(details), WorkspaceDetails)
    except (TypeError, ValueError) as exc:
        # SchemaError is a ValueError; to_builtins raises TypeError for what it cannot hold.
        if isinstance(exc, schema.SchemaError):
            raise InvalidArgumentError.from_schema(exc, "invalid workspace details") from None
        raise InvalidArgumentError(f"invalid workspace details: {exc}") from None
