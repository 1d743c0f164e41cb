"""The watcher client: follow workspaces across reconnects, and operate on them."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

import schema
from schema import (
    ActionCall,
    BrokerFrame,
    CallResult,
    Catch,
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

from ._backoff import Backoff
from ._connection import Connection, ConnectionState
from ._cursors import SubscriptionCursors
from ._errors import BrokerRefusedError, ClosedError, ConnectionLostError, PierheadError
from ._lifecycle import AsyncClient

_CLIENT = "pierhead-sdk/0.1"


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
    ) -> None:
        self.pattern = pattern
        self.kinds = kinds
        self.cursors = SubscriptionCursors(since)
        self.recovered = True
        self._watcher = watcher
        self._queue: asyncio.Queue[Delivery | BaseException] = asyncio.Queue(buffer)
        self.sub: int | None = None
        """The broker's id for it on the current connection; None until confirmed there."""
        self._error: BaseException | None = None
        self.confirmed_once = False
        self.closed = False

    def __aiter__(self) -> AsyncIterator[Delivery]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Delivery]:
        while True:
            if self._error is not None and self._queue.empty():
                raise self._error
            item = await self._queue.get()
            if isinstance(item, BaseException):
                raise item
            yield item

    def end(self, error: BaseException) -> None:
        """No more deliveries: the reader gets what is queued, then ``error``."""
        if self._error is None:
            self._error = error
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(error)

    async def close(self) -> None:
        """Stop following (the iterator then waits forever; stop iterating first)."""
        await self._watcher._unsubscribe(self)

    def subscribe_frame(self, request_id: int) -> Subscribe:
        return Subscribe(
            id=request_id, pattern=self.pattern, from_=self.cursors.start(), kinds=self.kinds
        )

    async def deliver(self, item: Delivery | BaseException) -> None:
        await self._queue.put(item)


class Watcher(AsyncClient):
    """A watcher's connection: subscriptions, the live state, and operator requests.

    ``async with Watcher(url) as watcher: async for event in watcher.subscribe("deploy-*")``.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        client: str = _CLIENT,
        codec: Literal["json", "msgpack"] = "json",
        reconnect_initial_s: float = 0.1,
        reconnect_max_s: float = 10.0,
        reconnect: bool = True,
        subscription_buffer: int = 256,
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
        )
        self._buffer = subscription_buffer
        self.state: dict[str, WorkspaceState] = {}
        """The live state of every workspace a subscription follows (folded from its events)."""
        self._subscriptions: list[Subscription] = []
        self._by_sub: dict[int, Subscription] = {}
        self._subscribing: dict[int, Subscription] = {}
        """Subscribe requests in flight, by request id, until their ``subscribed`` arrives."""
        self._confirmations: dict[int, _Confirmation] = {}
        self._task: asyncio.Task[None] | None = None
        self._resubscriber: asyncio.Task[None] | None = None

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
        for task in (self._task, self._resubscriber):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for subscription in self._subscriptions:
            subscription.end(ClosedError("the watcher is closed"))

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
    ) -> Subscription:
        """Follow the workspaces matching ``pattern`` (a glob), starting at ``since``.

        Returns once the broker has confirmed it; ``watcher.state`` then holds the snapshot.
        """
        msgspec.convert(
            {"type": "subscribe", "id": 0, "pattern": pattern, "kinds": kinds}, Subscribe
        )
        subscription = Subscription(self, pattern, since, kinds, self._buffer)
        self._subscriptions.append(subscription)
        generation: int | None = None
        while subscription.sub is None:
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
        return subscription

    async def _unsubscribe(self, subscription: Subscription) -> None:
        subscription.closed = True
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
        sub = subscription.sub
        if sub is not None:
            self._by_sub.pop(sub, None)
            with contextlib.suppress(ConnectionLostError, BrokerRefusedError):
                await self._connection.request(
                    schema.Unsubscribe(id=self._connection.next_id(), sub=sub)
                )

    # Requests -----------------------------------------------------------------------------

    async def workspaces(self, pattern: str = "*") -> list[WorkspaceState]:
        reply = await self._request(ListWorkspaces(id=self._connection.next_id(), pattern=pattern))
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
        """Stored events page by page: newest first, or oldest first when ``after`` is given."""
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
            page = await self._request(query)
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
        await self._request(
            Catch(id=self._connection.next_id(), workspace=workspace, reason=reason)
        )

    async def release(self, workspace: str) -> None:
        await self._request(Release(id=self._connection.next_id(), workspace=workspace))

    async def break_mutex(self, workspace: str) -> None:
        await self._request(MutexBreak(id=self._connection.next_id(), workspace=workspace))

    async def delete_workspace(self, workspace: str, *, force: bool = False) -> None:
        frame = DeleteWorkspace(id=self._connection.next_id(), workspace=workspace, force=force)
        await self._request(frame)

    async def call(
        self, workspace: str, run_id: str, action: str, *, timeout: float = 30.0, **args: Any
    ) -> Any:
        """Call an action of a worker run; returns its result or raises ActionFailedError."""
        frame = ActionCall(
            id=self._connection.next_id(),
            workspace=workspace,
            run_id=run_id,
            action=action,
            args=msgspec.to_builtins(args),
            timeout_s=timeout,
        )
        reply = await self._request(frame)
        assert isinstance(reply, CallResult)
        if not reply.ok:
            assert reply.error is not None
            raise ActionFailedError(reply.error)
        return reply.result

    async def stats(self) -> StatsReport:
        reply = await self._request(StatsRequest(id=self._connection.next_id()))
        assert isinstance(reply, StatsReport)
        return reply

    async def _request(self, frame: Any) -> BrokerFrame:
        await self._connection.wait_connected()
        return await self._connection.request(frame)

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
        again = [s for s in self._subscriptions if s.confirmed_once and not s.closed]
        for subscription in again:
            subscription.sub = None
        if again:
            self._resubscriber = asyncio.create_task(self._resubscribe(again))

    def on_disconnect(self) -> None:
        for confirmation in self._confirmations.values():
            if not confirmation.future.done():
                confirmation.future.set_exception(ConnectionLostError("the connection dropped"))

    async def _resubscribe(self, subscriptions: list[Subscription]) -> None:
        for subscription in subscriptions:
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
                    subscription.cursors.skip_to(workspace, last)
                    subscription.recovered = False
                    return subscription.deliver(Missed(workspace, first, last))
            case ErrorReply(id=request_id) if request_id in self._subscribing:
                subscription = self._subscribing.pop(request_id)
                error = BrokerRefusedError(frame.code, frame.message, frame.detail)
                confirmation = self._confirmations.pop(request_id, None)
                if confirmation is not None:
                    confirmation.future.set_exception(error)
                else:
                    return subscription.deliver(error)
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

    async def _deliver(self, subscription: Subscription, events: list[EventMsg]) -> None:
        fold = subscription.kinds is None
        for event in events:
            if not subscription.cursors.accept(event):
                continue
            if fold:
                state = self.state.get(event.workspace)
                if state is not None:
                    self.state[event.workspace] = fold_event(state, event)
            await subscription.deliver(event)


@dataclass(slots=True)
class _Confirmation:
    subscription: Subscription
    future: asyncio.Future[None]
