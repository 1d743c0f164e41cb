"""Frames from watchers, and the loop that delivers their subscriptions.

Delivery is pulled, not pushed: a commit only wakes the loop, which reads each followed
workspace from the in-memory tail (or from the store when it has fallen behind the tail) and
waits for room in the outbox before each frame. A slow watcher therefore lags in the store,
never in memory, and never holds up a publisher or another watcher.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from typing import Any, ClassVar, Final

import msgspec

from schema import (
    ActionCall,
    Catch,
    DeleteWorkspace,
    ErrorCode,
    EventMsg,
    Gap,
    HistoryQuery,
    ListWorkspaces,
    MutexBreak,
    Release,
    Role,
    StatsReport,
    StatsRequest,
    Subscribe,
    Unsubscribe,
)

from ._outbox import OutboxClosedError
from ._page import Page, make_page
from ._session import Handler, Session, SessionContext
from ._store import StoreUnavailableError
from ._subscription import ReadCursor, Subscription
from ._workspace import Workspace

STORE_RETRY_S: Final = 0.5
"""How soon delivery tries the store again while it cannot be reached."""


class WatcherSession(Session):
    role: ClassVar[str] = "watcher"
    catch_role: ClassVar[Role] = "operator"

    def __init__(self, context: SessionContext) -> None:
        super().__init__(context)
        self._wake = asyncio.Event()

    def started(self) -> None:
        """Register with the broker; the ``welcome`` has been queued."""
        self.broker.watcher_started(self, self.grant)

    def ended(self) -> None:
        self.broker.watcher_ended(self)

    def background(self) -> list[Coroutine[Any, Any, None]]:
        return [self._deliver()]

    @property
    def subscriptions(self) -> Mapping[int, Subscription]:
        """This watcher's subscriptions by id, as the broker's followers index holds them."""
        return self.broker.subscriptions(self)

    def wake(self) -> None:
        self._wake.set()

    # Handlers -----------------------------------------------------------------------------

    def on_subscribe(self, frame: Subscribe) -> None:
        self.broker.subscribe(self, frame)

    def on_unsubscribe(self, frame: Unsubscribe) -> None:
        self.broker.unsubscribe(self, frame)

    def on_list(self, frame: ListWorkspaces) -> Coroutine[Any, Any, None] | None:
        if self.broker.list_looks_in_store(frame, self.grant):
            return self._list_once_looked_up(frame)
        self.send(self.broker.list_workspaces(frame, self.grant))
        return None

    async def _list_once_looked_up(self, frame: ListWorkspaces) -> None:
        self.send(await self.broker.list_once_looked_up(frame, self.grant))

    async def on_history(self, frame: HistoryQuery) -> None:
        self.send(await self.broker.history(frame))

    def on_catch(self, frame: Catch) -> None:
        if frame.workspace is None:
            self.error(
                ErrorCode.BAD_FRAME, "a watcher's catch names `workspace`", request_id=frame.id
            )
            return
        self.broker.set_caught(
            self, frame.id, frame.workspace, True, by=self.label, reason=frame.reason
        )

    def on_release(self, frame: Release) -> None:
        self.broker.set_caught(self, frame.id, frame.workspace, False, by=self.label, reason=None)

    def on_call(self, frame: ActionCall) -> None:
        self.broker.call(self, frame, label=self.label)

    def on_mutex_break(self, frame: MutexBreak) -> None:
        self.broker.mutex_break(self, frame.id, frame.workspace, by=self.label)

    async def on_delete_workspace(self, frame: DeleteWorkspace) -> None:
        await self.broker.delete_workspace(self, frame, by=self.label)

    def on_stats(self, frame: StatsRequest) -> Coroutine[Any, Any, None] | None:
        report = self.broker.stats(frame, self.grant)
        broker = self.broker
        if self.grant.scope != "*" or (broker.cluster is None and broker.notifier is None):
            self.send(report)
            return None
        return self._send_completed(report)

    async def _send_completed(self, report: StatsReport) -> None:
        """The node's report with what only a store knows: the notification queues' depths
        now, and every node's counters (read from Redis)."""
        counters = dict(report.counters)
        if self.broker.notifier is not None:
            counters.update(await self.broker.notifier.queue_counters())
        if self.broker.cluster is not None:
            counters.update(await self.broker.cluster.cluster_counters(counters))
        self.send(msgspec.structs.replace(report, counters=counters))

    handlers: ClassVar[dict[type[Any], Handler]] = {
        Subscribe: on_subscribe,
        Unsubscribe: on_unsubscribe,
        ListWorkspaces: on_list,
        HistoryQuery: on_history,
        Catch: on_catch,
        Release: on_release,
        ActionCall: on_call,
        MutexBreak: on_mutex_break,
        DeleteWorkspace: on_delete_workspace,
        StatsRequest: on_stats,
    }

    # Delivery -----------------------------------------------------------------------------

    async def _deliver(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                try:
                    while await self._deliver_round():
                        pass
                except StoreUnavailableError as exc:
                    # Delivery waits for the store and goes on from its cursors: nothing is
                    # skipped, and the session stays open.
                    self.log.warning("delivery_waits_for_store", error=str(exc))
                    await asyncio.sleep(STORE_RETRY_S)
                    self._wake.set()
        except OutboxClosedError:
            pass

    async def _deliver_round(self) -> bool:
        """One page per followed workspace, so that a busy one cannot starve the others."""
        progressed = False
        for sub in list(self.subscriptions.values()):
            for name, cursor in list(sub.cursors.items()):
                workspace = self.broker.workspaces.get(name)
                if workspace is None or workspace.epoch != cursor.epoch:
                    continue
                if cursor.offset < workspace.state.last_offset:
                    await self._deliver_page(sub, workspace, cursor)
                    progressed = True
        return progressed

    async def _deliver_page(
        self, sub: Subscription, workspace: Workspace, cursor: ReadCursor
    ) -> None:
        config = self.broker.config
        if cursor.offset + 1 < workspace.first_offset:
            await self._send_gap(sub, workspace, cursor, workspace.first_offset - 1)
        end = workspace.state.last_offset
        if cursor.offset >= end:
            return  # retention had removed everything up to the end: the gap said it all
        limit = min(config.delivery_page_events, end - cursor.offset)
        key = (self.codec.subprotocol, sub.kinds, cursor.offset, limit)
        page = workspace.pages.get(key)
        if page is None:
            entries = workspace.tail.after(cursor.offset, limit)
            if entries is not None:
                page = workspace.pages[key] = self._page(sub, entries)
            else:
                read = await self.broker.read(workspace, cursor.offset, limit)
                stored = read.events
                if sub.cursors.get(workspace.name) is not cursor or not stored:
                    # Unsubscribed or removed while reading; or retention raced the read,
                    # and the next round reports the gap.
                    return
                if stored[0].offset > cursor.offset + 1:
                    # Retention removed events between the check above and the read.
                    await self._send_gap(sub, workspace, cursor, stored[0].offset - 1)
                wanted = (self.codec.subprotocol, sub.kinds)
                shared = read.pages.get(wanted)
                if shared is None:
                    shared = read.pages[wanted] = self._page(sub, stored)
                page = shared
        cursor.offset = page.last
        if page.array is not None:
            await self.outbox.put(page.frame(sub.sub, self.codec))

    async def _send_gap(
        self, sub: Subscription, workspace: Workspace, cursor: ReadCursor, last_missing: int
    ) -> None:
        gap = Gap(
            sub=sub.sub,
            workspace=workspace.name,
            from_offset=cursor.offset + 1,
            to_offset=last_missing,
        )
        cursor.offset = last_missing
        await self.outbox.put(self.codec.encode(gap))

    def _page(self, sub: Subscription, events: list[EventMsg]) -> Page:
        """The page of ``events`` this subscription wants, up to half a frame's worth of
        bytes."""
        half_frame = self.broker.config.max_frame_bytes // 2
        return make_page(events, kinds=sub.kinds, codec=self.codec, max_bytes=half_frame)
