"""The watcher client: follow workspaces across reconnects, and operate on them."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, Self, TypeAlias, TypeVar

import msgspec

import schema
from schema import (
    ActionCall,
    BrokerFrame,
    CallResult,
    Catch,
    ClientFrame,
    Cursor,
    DeleteWorkspace,
    ErrorReply,
    EventMsg,
    Events,
    Gap,
    Hello,
    HistoryPage,
    HistoryQuery,
    Joined,
    ListWorkspaces,
    MutexBreak,
    PayloadKind,
    Release,
    Removed,
    StartPosition,
    StatsReport,
    StatsRequest,
    Subscribe,
    Subscribed,
    Welcome,
    Workspaces,
    WorkspaceState,
    fold_event,
)

from ._actions import BAD_CALL
from ._backoff import Backoff
from ._connection import BrokerUrls, Connection, ConnectionState, abandon
from ._cursors import SubscriptionCursors
from ._errors import (
    BrokerRefusedError,
    ClosedError,
    ConnectionLostError,
    InvalidArgumentError,
    PierheadError,
    PierheadTimeoutError,
)
from ._lifecycle import AsyncClient

_CLIENT = "pierhead-sdk/0.1"
_T = TypeVar("_T")
_Frame = TypeVar("_Frame", bound=ClientFrame)

SUBSCRIPTION_BUFFER: Final = 4096
"""Deliveries a subscription holds unread, by default: several of the broker's pages (up to
1000 events each). A buffer smaller than a page overflows on every page however fast the
reader is, and under ``refetch`` every overflow costs an unsubscribe, a subscribe and whatever
the broker sent meanwhile: a backlog of 100,000 events took minutes to read at 256."""

Overflow: TypeAlias = Literal["refetch", "block"]
"""What a subscription does when its buffer is full because nobody reads it.

``refetch`` (the default) lets go of what does not fit and stops the broker sending; once the
reader has caught up with half the buffer it subscribes again from its cursors, and the broker
sends the rest. Nothing is lost or repeated, and the watcher's other traffic (replies to
requests, other subscriptions) never waits for a slow reader. ``block`` stops reading the
watcher's socket until there is room: the broker holds the backlog, but every reply and every
other subscription of the watcher waits too.
"""


@dataclass(frozen=True, slots=True)
class Missed:
    """Events a subscription asked for that retention had already removed (inclusive)."""

    workspace: str
    from_offset: int
    to_offset: int


class ActionFailedError(PierheadError):
    """The action ran and raised; ``type`` and ``message`` are the worker's exception's."""

    def __init__(self, failure: schema.ActionFailure) -> None:
        super().__init__(f"{failure.type}: {failure.message}")
        self.type = failure.type
        self.message = failure.message


class BadCallError(ActionFailedError):
    """The worker refused the call's arguments (unknown names, missing ones, or values that
    do not convert to the parameters' annotations); the action did not run."""


Delivery = EventMsg | Missed


class Subscription:
    """An open subscription: iterate it for events (and ``Missed`` notices) in order.

    It survives reconnects: after each one it subscribes again from its cursors, so the
    stream goes on with no gap and no duplicate. ``recovered`` is False once the broker could
    not resume exactly (retention removed events, or a workspace was re-created).
    """

    def __init__(
        self,
        watcher: Watcher,
        pattern: str,
        since: StartPosition | dict[str, Cursor],
        kinds: list[PayloadKind] | None,
        buffer: int,
        overflow: Overflow,
    ) -> None:
        self.pattern = pattern
        self.kinds = kinds
        self.overflow: Overflow = overflow
        self.cursors = SubscriptionCursors(since)
        self.recovered = True
        self._watcher = watcher
        self._queue: asyncio.Queue[Delivery | BaseException] = asyncio.Queue(buffer)
        self._low_water = buffer // 2
        self.sub: int | None = None
        """The broker's id for it on the current connection; None until confirmed there."""
        self._error: BaseException | None = None
        self.confirmed_once = False
        self.closed = False
        self.paused = False
        """Overflowed under ``refetch``: the broker is not sending until the reader catches up."""

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Delivery:
        """The next delivery. Cancelling the wait (e.g. with ``asyncio.timeout``) loses
        nothing and leaves the subscription usable."""
        if self._error is not None and self._queue.empty():
            raise self._error
        item = await self._queue.get()
        if isinstance(item, BaseException):
            raise item
        if self.paused and self._queue.qsize() <= self._low_water:
            self._watcher._refetch(self)
        return item

    @property
    def full(self) -> bool:
        return self._queue.full()

    def end(self, error: BaseException) -> None:
        """No more deliveries: the reader gets what is queued, then ``error``."""
        if self._error is None:
            self._error = error
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(error)

    async def close(self) -> None:
        """Stop following; iteration ends after what was already queued."""
        self.end(StopAsyncIteration())
        await self._watcher._unsubscribe(self)

    def subscribe_frame(self, request_id: int) -> Subscribe:
        return Subscribe(
            id=request_id, pattern=self.pattern, from_=self.cursors.start(), kinds=self.kinds
        )

    async def deliver(self, item: Delivery) -> None:
        await self._queue.put(item)

    def deliver_nowait(self, item: Delivery) -> None:
        self._queue.put_nowait(item)


class Watcher(AsyncClient):
    """A watcher's connection: subscriptions, the live state, and operator requests.

    ``async with Watcher(url) as watcher: async for event in watcher.subscribe("deploy-*")``.
    ``url`` may also be a list of brokers' addresses, tried in turn, from the first, on each
    reconnect.
    """

    def __init__(
        self,
        url: BrokerUrls,
        *,
        token: str | None = None,
        client: str = _CLIENT,
        codec: Literal["json", "msgpack"] = "json",
        reconnect_initial_s: float = 0.1,
        reconnect_max_s: float = 10.0,
        reconnect: bool = True,
        subscription_buffer: int = SUBSCRIPTION_BUFFER,
        request_timeout_s: float = 30.0,
    ) -> None:
        self._hello = Hello(
            protocol=schema.PROTOCOL_VERSION,
            role="watcher",
            client=client,
            token=token or os.environ.get("PIERHEAD_TOKEN"),
        )
        self._connection = Connection(
            url,
            self,
            codec=schema.codec_for(f"pierhead.v1.{codec}"),
            backoff=Backoff(reconnect_initial_s, reconnect_max_s),
            reconnect=reconnect,
            request_timeout_s=request_timeout_s,
        )
        if subscription_buffer < 1:
            raise InvalidArgumentError("subscription_buffer must be at least 1")
        if not request_timeout_s > 0:
            raise InvalidArgumentError("request_timeout_s must be positive")
        self._buffer = subscription_buffer
        self.request_timeout_s = request_timeout_s
        """The longest any request waits, for the connection and then for its answer."""
        self.state: dict[str, WorkspaceState] = {}
        """The live state of every workspace a subscription follows (folded from its events)."""
        self._subscriptions: list[Subscription] = []
        self._by_sub: dict[int, Subscription] = {}
        self._subscribing: dict[int, Subscription] = {}
        """Subscribe requests in flight, by request id, until their ``subscribed`` arrives."""
        self._confirmations: dict[int, _Confirmation] = {}
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("this watcher is already started")
        self._task = asyncio.create_task(self._run_connection(), name="pierhead-watcher")

    async def _run_connection(self) -> None:
        try:
            await self._connection.run()
        finally:
            closed = ClosedError("the watcher's connection is closed")
            closed.__cause__ = self._connection.failure
            for subscription in self._subscriptions:
                subscription.end(closed)

    async def close(self) -> None:
        await self._connection.close()
        for task in [self._task, *self._background]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for subscription in self._subscriptions:
            subscription.end(ClosedError("the watcher is closed"))

    @property
    def url(self) -> str:
        """The broker address this client is connected to, or will try next while it is not:
        one of the addresses it was given, which it goes through in turn on each reconnect."""
        return self._connection.url

    @property
    def connection_state(self) -> ConnectionState:
        return self._connection.state

    def state_changes(self) -> AsyncIterator[ConnectionState]:
        return self._connection.changes()

    async def connected(self) -> None:
        await self._connection.wait_connected()

    # Subscriptions ------------------------------------------------------------------------

    async def subscribe(
        self,
        pattern: str,
        *,
        since: StartPosition | dict[str, Cursor] = "latest",
        kinds: list[PayloadKind] | None = None,
        overflow: Overflow = "refetch",
    ) -> Subscription:
        """Follow the workspaces matching ``pattern`` (a glob), starting at ``since``.

        Returns once the broker has confirmed it; ``watcher.state`` then holds the snapshot.
        ``overflow`` says what happens when the subscription is not read (see ``Overflow``).
        Raises InvalidArgumentError for a bad pattern, and PierheadTimeoutError when no
        confirmation came within ``request_timeout_s``.
        """
        if overflow not in ("refetch", "block"):
            raise InvalidArgumentError(f"overflow must be 'refetch' or 'block', not {overflow!r}")
        subscription = Subscription(self, pattern, since, kinds, self._buffer, overflow)
        self._connection.check(subscription.subscribe_frame(0))
        self._subscriptions.append(subscription)
        try:
            async with self._bounded("subscribe", self.request_timeout_s):
                await self._confirm(subscription)
        except BaseException:
            subscription.closed = True
            self._subscriptions.remove(subscription)
            raise
        return subscription

    async def _confirm(self, subscription: Subscription) -> None:
        generation: int | None = None
        # Not ``sub``: a subscription may overflow, and let go of it, as soon as confirmed.
        while not subscription.confirmed_once:
            await self._connection.wait_connected(newer_than=generation)
            generation = self._connection.generation
            confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            request_id = self._connection.next_id()
            self._subscribing[request_id] = subscription
            self._confirmations[request_id] = _Confirmation(subscription, confirmed)
            try:
                await self._connection.send(subscription.subscribe_frame(request_id))
                await confirmed
            except ConnectionLostError:
                continue  # the resubscribe after the reconnect takes it from here
            finally:
                self._subscribing.pop(request_id, None)
                self._confirmations.pop(request_id, None)
                # ``on_disconnect`` may have failed it while the send, whose error is the one
                # caught, was waiting for room.
                abandon(confirmed)

    async def _unsubscribe(self, subscription: Subscription) -> None:
        subscription.closed = True
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
        sub, subscription.sub = subscription.sub, None
        if sub is not None:
            self._by_sub.pop(sub, None)
            await self._stop_sending(sub)

    async def _stop_sending(self, sub: int) -> None:
        """Ask the broker to drop ``sub``; the connection going away drops it as well."""
        with contextlib.suppress(ConnectionLostError, BrokerRefusedError, PierheadTimeoutError):
            async with self._bounded("unsubscribe", self.request_timeout_s):
                await self._connection.request(
                    schema.Unsubscribe(id=self._connection.next_id(), sub=sub)
                )

    def _overflowed(self, subscription: Subscription) -> None:
        """A ``refetch`` subscription is full: stop taking its events; the broker keeps them."""
        subscription.paused = True
        sub, subscription.sub = subscription.sub, None
        if sub is not None:
            self._by_sub.pop(sub, None)
            self._spawn(self._stop_sending(sub))

    def _refetch(self, subscription: Subscription) -> None:
        """The reader caught up with a paused subscription: follow again from its cursors."""
        subscription.paused = False
        if subscription.closed or not self._connection.connected:
            return  # the resubscribe after the next welcome includes it
        self._spawn(self._resubscribe([subscription], self._connection.generation))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # Requests -----------------------------------------------------------------------------

    async def workspaces(self, pattern: str = "*") -> list[WorkspaceState]:
        frame = ListWorkspaces(id=self._connection.next_id(), pattern=pattern)
        reply = await self._request(self._connection.check(frame))
        assert isinstance(reply, Workspaces)
        return reply.items

    async def history(
        self,
        workspace: str,
        *,
        before: int | None = None,
        after: int | None = None,
        page_size: int = 500,
        kinds: list[PayloadKind] | None = None,
        series: str | None = None,
        run_id: str | None = None,
    ) -> AsyncIterator[EventMsg]:
        """Stored events, one at a time: newest first, or oldest first when ``after`` is given.

        They are fetched ``page_size`` at a time as you iterate; each page is a request.
        """
        while True:
            query = HistoryQuery(
                id=self._connection.next_id(),
                workspace=workspace,
                before=before,
                after=after,
                limit=page_size,
                kinds=kinds,
                series=series,
                run_id=run_id,
            )
            page = await self._request(self._connection.check(query))
            assert isinstance(page, HistoryPage)
            for event in page.events:
                yield event
            if not page.more or not page.events:
                return
            if after is not None:
                after = page.events[-1].offset
            else:
                before = page.events[-1].offset

    async def catch(self, workspace: str, reason: str | None = None) -> None:
        frame = Catch(id=self._connection.next_id(), workspace=workspace, reason=reason)
        await self._request(self._connection.check(frame))

    async def release(self, workspace: str) -> None:
        frame = Release(id=self._connection.next_id(), workspace=workspace)
        await self._request(self._connection.check(frame))

    async def break_mutex(self, workspace: str) -> None:
        frame = MutexBreak(id=self._connection.next_id(), workspace=workspace)
        await self._request(self._connection.check(frame))

    async def delete_workspace(self, workspace: str, *, force: bool = False) -> None:
        frame = DeleteWorkspace(id=self._connection.next_id(), workspace=workspace, force=force)
        await self._request(self._connection.check(frame))

    async def call(
        self,
        workspace: str,
        run_id: str,
        action: str,
        args: Mapping[str, Any] | None = None,
        *,
        timeout: float = 30.0,
    ) -> Any:
        """Call ``action`` of a worker run with ``args`` (a mapping, so that every name is
        free for the action's own parameters); the broker gives up after ``timeout``.

        Returns the action's result. Raises ActionFailedError if the action raised,
        BadCallError if the worker refused the arguments, BrokerRefusedError (code
        ``timeout``) when the worker did not answer in time.
        """
        try:
            plain = msgspec.to_builtins(dict(args or {}))
        except TypeError as exc:
            raise InvalidArgumentError(f"call: the arguments cannot be sent: {exc}") from None
        frame = ActionCall(
            id=self._connection.next_id(),
            workspace=workspace,
            run_id=run_id,
            action=action,
            args=plain,
            timeout_s=timeout,
        )
        checked = self._connection.check(frame)
        # The broker answers by ``timeout`` itself; the margin covers connecting and the trip.
        reply = await self._request(checked, bound=timeout + self.request_timeout_s)
        assert isinstance(reply, CallResult)
        if not reply.ok:
            assert reply.error is not None
            if reply.error.type == BAD_CALL:
                raise BadCallError(reply.error)
            raise ActionFailedError(reply.error)
        return reply.result

    async def stats(self) -> StatsReport:
        reply = await self._request(StatsRequest(id=self._connection.next_id()))
        assert isinstance(reply, StatsReport)
        return reply

    async def _request(self, frame: Any, *, bound: float | None = None) -> BrokerFrame:
        """Send a request once connected and return its answer, all within ``bound``
        (default ``request_timeout_s``), else PierheadTimeoutError."""
        async with self._bounded(frame.__struct_config__.tag, bound or self.request_timeout_s):
            await self._connection.wait_connected()
            return await self._connection.request(frame)

    @contextlib.asynccontextmanager
    async def _bounded(self, what: str, seconds: float) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(seconds):
                yield
        except TimeoutError as exc:
            if isinstance(exc, PierheadTimeoutError):
                raise
            raise PierheadTimeoutError(
                f"{what}: no answer from the broker at {self._connection.url} within "
                f"{seconds:g} s (connection {self._connection.state.value})"
            ) from None

    # Connection callbacks -----------------------------------------------------------------

    def hello(self) -> Hello:
        return self._hello

    def on_welcome(self, welcome: Welcome) -> None:
        self._by_sub.clear()
        # Requests of the previous connection will never be answered.
        self._subscribing = {
            request_id: subscription
            for request_id, subscription in self._subscribing.items()
            if request_id in self._confirmations
        }
        # Every subscription confirmed before follows again from its cursors; one not yet
        # confirmed is still in its subscribe() call, which sends it again itself.
        # A paused one waits for its reader, which subscribes it again.
        again = [
            s for s in self._subscriptions if s.confirmed_once and not s.closed and not s.paused
        ]
        for subscription in self._subscriptions:
            subscription.sub = None
        if again:
            self._spawn(self._resubscribe(again, self._connection.generation))

    def on_disconnect(self) -> None:
        for confirmation in self._confirmations.values():
            if not confirmation.future.done():
                confirmation.future.set_exception(ConnectionLostError("the connection dropped"))

    async def _resubscribe(self, subscriptions: list[Subscription], generation: int) -> None:
        for subscription in subscriptions:
            if self._connection.generation != generation:
                return  # a newer welcome resubscribes them itself
            request_id = self._connection.next_id()
            self._subscribing[request_id] = subscription
            with contextlib.suppress(ConnectionLostError):
                await self._connection.send(subscription.subscribe_frame(request_id))

    def on_frame(self, frame: BrokerFrame) -> Any:
        match frame:
            case Events(sub=sub, events=events):
                subscription = self._by_sub.get(sub)
                if subscription is not None:
                    return self._deliver(subscription, events)
            case Subscribed():
                self._subscribed(frame)
            case Joined(sub=sub, snapshot=snapshot):
                subscription = self._by_sub.get(sub)
                if subscription is not None:
                    subscription.cursors.joined(snapshot)
                    self.state[snapshot.name] = snapshot
            case Removed(sub=sub, workspace=workspace):
                subscription = self._by_sub.get(sub)
                if subscription is not None:
                    subscription.cursors.removed(workspace)
                    self.state.pop(workspace, None)
            case Gap(sub=sub, workspace=workspace, from_offset=first, to_offset=last):
                subscription = self._by_sub.get(sub)
                if subscription is not None:
                    if subscription.overflow == "refetch" and subscription.full:
                        # The broker reports the gap again when it is asked again.
                        self._overflowed(subscription)
                        return None
                    subscription.cursors.skip_to(workspace, last)
                    subscription.recovered = False
                    missed = Missed(workspace, first, last)
                    if subscription.overflow == "refetch":
                        subscription.deliver_nowait(missed)
                        return None
                    return subscription.deliver(missed)
            case ErrorReply(id=request_id) if request_id in self._subscribing:
                subscription = self._subscribing.pop(request_id)
                error = BrokerRefusedError(frame.code, frame.message, frame.detail)
                confirmation = self._confirmations.pop(request_id, None)
                if confirmation is not None:
                    confirmation.future.set_exception(error)
                else:
                    subscription.end(error)
        return None

    def _subscribed(self, frame: Subscribed) -> None:
        subscription = self._subscribing.pop(frame.id, None)
        if subscription is None or subscription.closed:
            return
        subscription.sub = frame.sub
        subscription.confirmed_once = True
        subscription.recovered = subscription.recovered and frame.recovered
        subscription.cursors.subscribed(frame.snapshot)
        self._by_sub[frame.sub] = subscription
        for state in frame.snapshot:
            self.state[state.name] = state
        confirmation = self._confirmations.pop(frame.id, None)
        if confirmation is not None:
            confirmation.future.set_result(None)

    def _deliver(
        self, subscription: Subscription, events: list[EventMsg]
    ) -> Awaitable[None] | None:
        if subscription.overflow == "block":
            return self._deliver_waiting(subscription, events)
        for event in events:
            if subscription.full:
                # Not accepted, so the cursor stays before it: the refetch starts there.
                self._overflowed(subscription)
                return None
            if subscription.cursors.accept(event):
                self._fold(subscription, event)
                subscription.deliver_nowait(event)
        return None

    async def _deliver_waiting(self, subscription: Subscription, events: list[EventMsg]) -> None:
        for event in events:
            if subscription.cursors.accept(event):
                self._fold(subscription, event)
                await subscription.deliver(event)

    def _fold(self, subscription: Subscription, event: EventMsg) -> None:
        if subscription.kinds is None:
            state = self.state.get(event.workspace)
            if state is not None:
                self.state[event.workspace] = fold_event(state, event)


@dataclass(slots=True)
class _Confirmation:
    subscription: Subscription
    future: asyncio.Future[None]
