"""Notifications on asyncio: the broker's adapter around the rules, the stall detector and
one sender per sink.

``on_write`` runs in the broker's write path, on the event loop: it turns a write's events
into notifications, which go into the same commit (so they are exactly as durable as the
events) or, on a store that defers them, wait a moment and go into a later one with a mark
that keeps them safe meanwhile (``_notify_defer``); and it feeds the stall detector.
Everything slow (HTTP, retries, reading the queues) happens in the senders' own tasks, which
read the store through threads: a receiver that never answers holds up its own sender and
nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import structlog

from schema import EventMsg, Presence, Status

from ._notify import Notification, NotifyConfig, QueuedNotification, SinkQueueStats
from ._notify_defer import DeferredNotifications, Taken
from ._notify_rules import NotifyRules
from ._notify_sender import POLL_S, SinkSender
from ._stall import StallWatch
from ._store import HistoryFilter, Store
from ._threads import StoreThreads
from ._writer import GroupCommitWriter

log = structlog.get_logger("pierhead.notify")

QUEUE_STATS_EVERY_S = 5.0
"""How often the queues' depths are read for the counters a node publishes (a ``stats``
request reads them at once)."""

MADE_AGAIN_READ = 10_000
"""Events read at a time when notifications are made again at boot."""

STALL_CHECK_MAX_S = 5.0
"""The longest wait between two looks for stalled runs (a new run may be due sooner)."""


@dataclass(frozen=True, slots=True)
class ToQueue:
    """What a write's commit carries for the notification queues (see ``Commit``)."""

    notifications: Sequence[Notification] = ()
    marks: Mapping[tuple[str, int], int] = field(default_factory=dict)
    unmarked: Sequence[tuple[str, int]] = ()


NOTHING_TO_QUEUE: Final = ToQueue()


class StoreSinkQueue:
    """A sink's queue in the store, as its sender sees it (``_notify_sender.SinkQueue``)."""

    def __init__(
        self,
        sink: str,
        store: Store,
        writer: GroupCommitWriter,
        threads: StoreThreads,
        *,
        lease_s: float,
    ) -> None:
        self.sink = sink
        self._store = store
        self._writer = writer
        self._threads = threads
        self._lease_s = lease_s
        self._token = secrets.token_hex(8)
        self._dropped = 0
        self._dropped_at: float | None = None
        self._renewed_at: float | None = None
        """When the lease was last taken or renewed (monotonic): renewed a third of the way
        through, so a sender that holds it asks the store seldom."""

    async def lease(self) -> bool:
        now = time.monotonic()
        if self._renewed_at is not None and now - self._renewed_at < self._lease_s / 3:
            return True
        held = await self._threads.run(
            lambda: self._store.notify_lease(self.sink, self._token, self._lease_s)
        )
        self._renewed_at = now if held else None
        return held

    async def peek(self, limit: int) -> list[QueuedNotification]:
        return await self._threads.run(lambda: self._store.notify_queue(self.sink, limit))

    async def remove(self, ids: Sequence[int]) -> bool:
        chosen = list(ids)
        removed = await self._writer.in_writer(
            lambda: self._store.notify_done(self.sink, chosen, self._token)
        )
        if not removed:
            self._renewed_at = None
        return removed

    async def dropped(self) -> int:
        # Asked before every message: read at most once a poll (a count a second old is
        # what a message about drops needs).
        now = time.monotonic()
        if self._dropped_at is None or now - self._dropped_at >= POLL_S:
            stats = await self._threads.run(self._store.notify_stats)
            entry = stats.get(self.sink)
            self._dropped = entry.dropped if entry is not None else 0
            self._dropped_at = now
        return self._dropped


class Notifier:
    """The rules, the stall detector and the senders of one broker (``--notify``)."""

    def __init__(
        self,
        config: NotifyConfig,
        store: Store,
        writer: GroupCommitWriter,
        threads: StoreThreads,
        *,
        lease_s: float,
        excused: Callable[[str, str], bool],
    ) -> None:
        """``excused(workspace, run_id)``: whether a run is silent by design now (its
        workspace is caught, or it waits for the mutex), and so not stalled."""
        self.config = config
        self._excused = excused
        self.rules = NotifyRules(config)
        self.stalls = StallWatch(config.stall_after_s) if config.stall_after_s else None
        self._store = store
        self._writer = writer
        self._threads = threads
        self.senders = {
            sink.name: SinkSender(
                sink,
                # The lease is not renewed while a request is in flight: it outlasts one.
                StoreSinkQueue(
                    sink.name,
                    store,
                    writer,
                    threads,
                    lease_s=max(lease_s, 3 * (sink.timeout_s + POLL_S)),
                ),
                public_url=config.public_url,
            )
            for sink in config.sinks
        }
        self._stall_wakeup = asyncio.Event()
        self._stalls_checked_by = 0.0
        """When the stall finder looks next (loop time)."""
        self._queue_stats: dict[str, SinkQueueStats] = {}
        store.notify_limits({sink.name: sink.max_queued for sink in config.sinks})
        self.deferred = (
            DeferredNotifications(delay_s=config.queue_delay_s)
            if store.defers_notifications
            else None
        )
        """Derived notifications waiting to be queued (``None``: queued with their events)."""
        self._queue_timer: asyncio.TimerHandle | None = None

    # The write path (on the loop, per write) -------------------------------------------

    def on_write(
        self,
        events: Sequence[EventMsg],
        changes: Sequence[EventMsg] | None,
        epoch_of: Callable[[str], int],
        mono: float,
        *,
        queue_now: bool = False,
    ) -> ToQueue:
        """What the commit of a write's events carries for the queues: the notifications
        they make (stall recoveries among them), or, on a store that defers them, a mark while
        they wait. ``changes``: those of ``events`` that are not plain data, when known; the
        rules look at nothing else, and most writes are logs and scalars only. ``queue_now``:
        everything waiting goes into this commit (the write deletes a workspace)."""
        derived: list[Notification] = []
        recoveries: list[Notification] = []
        if events:
            derived = self.rules.derive(events if changes is None else changes, epoch_of)
            if self.stalls is not None:
                recoveries = self._heard(events, epoch_of, mono)
        deferred = self.deferred
        if deferred is None:
            made = derived + recoveries
            return ToQueue(made) if made else NOTHING_TO_QUEUE
        marks = deferred.add(derived, mono)
        if recoveries or queue_now or deferred.full:
            taken = self._take()
            return ToQueue([*taken.notifications, *recoveries], unmarked=taken.unmarked)
        if marks:
            self._queue_later(deferred)
            return ToQueue(marks=marks)
        return NOTHING_TO_QUEUE

    def queue_waiting(self) -> asyncio.Future[None] | None:
        """Queue the notifications waiting, in a commit of their own; its future (``None``
        when nothing waits, or the writer takes nothing more: their marks are stored, and the
        next start queues them)."""
        taken = self._take()
        if not (taken.notifications or taken.unmarked):
            return None
        try:
            return self._writer.submit(
                notifications=taken.notifications, notify_unmarked=taken.unmarked
            )
        except Exception as exc:
            log.warning("notifications_left_to_next_start", error=str(exc))
            return None

    def _take(self) -> Taken:
        if self._queue_timer is not None:
            self._queue_timer.cancel()
            self._queue_timer = None
        return Taken() if self.deferred is None else self.deferred.take()

    def _queue_later(self, deferred: DeferredNotifications) -> None:
        if self._queue_timer is None and deferred.due is not None:
            loop = asyncio.get_running_loop()
            self._queue_timer = loop.call_at(deferred.due, self._queue_due)

    def _queue_due(self) -> None:
        self._queue_timer = None
        self.queue_waiting()

    def committed(self, notifications: Iterable[Notification]) -> None:
        """These notifications are durable: their senders look at their queues now."""
        for sink in {n.sink for n in notifications}:
            self.senders[sink].wake()

    def _heard(
        self, events: Sequence[EventMsg], epoch_of: Callable[[str], int], mono: float
    ) -> list[Notification]:
        stalls = self.stalls
        assert stalls is not None
        recoveries: list[Notification] = []
        # A publish is one run's events: its last one stands for the rest. Presence events
        # (broker-made, one per write) start and end the watching.
        last = events[-1]
        workspace = last.workspace
        if not self.rules.watches_stalls(workspace):
            return []
        epoch = epoch_of(workspace)
        if last.run_id is not None:
            recovered = stalls.heard(workspace, epoch, last.run_id, last.offset, mono)
            if recovered is not None:
                recoveries += self.rules.recovered(
                    workspace, epoch, last.run_id, offset=last.offset, at=last.received_time
                )
            return recoveries
        for event in events:
            payload = event.payload
            if isinstance(payload, Presence):
                if payload.state == "connected":
                    stalls.connected(workspace, epoch, payload.run_id, event.offset, mono)
                    # The finder sleeps until the first run is due, and a run that just
                    # connected is due last: it only needs waking when nothing was watched.
                    if mono + stalls.after_s < self._stalls_checked_by:
                        self._stall_wakeup.set()
                elif payload.state == "disconnected":
                    stalls.gone(workspace, payload.run_id)
                else:
                    stalls.expired(workspace, payload.run_id)
        return recoveries

    def forget(self, workspaces: Iterable[str]) -> None:
        """These workspaces were deleted: their runs closed without a presence event, and
        will neither stall nor expire."""
        for name in workspaces:
            self.rules.forget_workspace(name)
            if self.stalls is not None:
                self.stalls.forget_workspace(name)

    # Background -------------------------------------------------------------------------

    async def run(self, runs_at_boot: Sequence[tuple[str, int, str]] = ()) -> None:
        """The senders and the stall detector, until cancelled. ``runs_at_boot``: the
        (workspace, epoch, run id) of the runs the broker restored within their grace."""
        await self.remember_final_statuses(runs_at_boot)
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._refresh_queue_stats())
            for sender in self.senders.values():
                tasks.create_task(sender.run())
            if self.stalls is not None:
                tasks.create_task(self._find_stalls(self.stalls))

    async def _find_stalls(self, stalls: StallWatch) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = stalls.next_due()
            wait = STALL_CHECK_MAX_S if due is None else min(due - loop.time(), STALL_CHECK_MAX_S)
            self._stalls_checked_by = loop.time() + wait
            self._stall_wakeup.clear()
            if wait > 0:
                try:
                    async with asyncio.timeout(wait):
                        await self._stall_wakeup.wait()
                except TimeoutError:
                    pass
            now = datetime.datetime.now(datetime.UTC)
            notes: list[Notification] = []
            mono = loop.time()
            for stalled in stalls.due(mono):
                if self._excused(stalled.workspace, stalled.run_id):
                    # Caught, or waiting for the mutex: silence is what it should do. Its
                    # silence is counted again from now.
                    stalls.heard(
                        stalled.workspace,
                        stalled.epoch,
                        stalled.run_id,
                        stalled.since_offset,
                        mono,
                    )
                    continue
                log.info(
                    "run_stalled",
                    workspace=stalled.workspace,
                    run_id=stalled.run_id,
                    silent_s=round(stalled.silent_s, 1),
                )
                notes += self.rules.stalled(
                    stalled.workspace,
                    stalled.epoch,
                    stalled.run_id,
                    since_offset=stalled.since_offset,
                    silent_s=stalled.silent_s,
                    at=now,
                )
            if notes:
                # Behind what waits, so a sink hears of each workspace in order.
                taken = self._take()
                try:
                    await self._writer.submit(
                        notifications=[*taken.notifications, *notes],
                        notify_unmarked=taken.unmarked,
                    )
                except Exception as exc:
                    # The writer failed or stopped: the broker is stopping with it, and says why.
                    log.warning("stall_notifications_not_queued", error=str(exc))
                    return

    async def remember_final_statuses(self, runs: Sequence[tuple[str, int, str]]) -> None:
        """Which of these runs, in their grace when this node began writing their workspace
        (at boot, or when it took the workspace over), had published their final status: their
        expiry is no expiry without one."""
        if not runs or not self._hears_of_expiries:
            return
        try:
            found = await self._threads.run(lambda: self._finished_among(runs))
        except Exception as exc:
            # Without them an expiry of a run that did finish may be told as one without a
            # final status: a wrong alert, not a reason to stop notifying.
            log.warning("final_statuses_not_read", runs=len(runs), error=type(exc).__name__)
            return
        self.rules.finished_before(found)

    @property
    def _hears_of_expiries(self) -> bool:
        return any("expired" in sink.triggers for sink in self.config.sinks)

    def _finished_among(self, runs: Iterable[tuple[str, int, str]]) -> list[tuple[str, str]]:
        """(workspace, run id) of those of ``runs`` whose stored events hold a final status."""
        matches = self.config.finished.matches
        found: list[tuple[str, str]] = []
        for workspace, epoch, run_id in runs:
            query = HistoryFilter(workspace, epoch, kinds=["status"], run_id=run_id)
            events, _ = self._store.history(query)
            payloads = [event.payload for event in events]
            if any(isinstance(p, Status) and matches(p.key, p.value) for p in payloads):
                found.append((workspace, run_id))
        return found

    def made_again(self, marked: Mapping[tuple[str, int], int]) -> list[Notification]:
        """The notifications of each marked workspace's stored events from its mark on: a
        broker stopped before it queued them (``_notify_defer``). Called at boot, before
        anything is written; reads the store on the caller's thread."""
        made: list[Notification] = []
        for (workspace, epoch), offset in sorted(marked.items()):
            after = offset - 1
            while events := self._store.read(workspace, epoch, after, MADE_AGAIN_READ):
                after = events[-1].offset
                if self._hears_of_expiries:
                    # A run's final status may lie before the mark: looked up, as at boot.
                    expired = {
                        (workspace, epoch, event.payload.run_id)
                        for event in events
                        if isinstance(event.payload, Presence) and event.payload.state == "expired"
                    }
                    self.rules.finished_before(self._finished_among(sorted(expired)))
                made += self.rules.derive(events, _always(epoch))
                if len(events) < MADE_AGAIN_READ:
                    break
        return made

    async def _refresh_queue_stats(self) -> None:
        """The queues' depths and drops, for the counters a node publishes for the others."""
        while True:
            # What waits is left to wait: counts a few seconds old are what these are for.
            await self._read_queue_stats()
            await asyncio.sleep(QUEUE_STATS_EVERY_S)

    async def queue_counters(self) -> dict[str, int | float]:
        """The queues' depths and drops as the store has them now, what waited to be queued
        included (as last read while the store cannot be reached)."""
        waiting = self.queue_waiting()
        if waiting is not None:
            with contextlib.suppress(Exception):
                # The writer failed: the broker stops, and says why; the marks are stored.
                await waiting
        await self._read_queue_stats()
        return self._queue_counters()

    async def _read_queue_stats(self) -> None:
        try:
            self._queue_stats = await self._threads.run(self._store.notify_stats)
        except Exception as exc:
            log.warning("notify_stats_not_read", error=type(exc).__name__)

    def _queue_counters(self) -> dict[str, int | float]:
        counters: dict[str, int | float] = {}
        for sink in self.config.sinks:
            queue = self._queue_stats.get(sink.name, SinkQueueStats(queued=0, dropped=0))
            counters[f"notify.{sink.name}.queued"] = queue.queued
            counters[f"notify.{sink.name}.dropped"] = queue.dropped
        return counters

    def counters(self) -> dict[str, int | float]:
        counters = self._queue_counters()
        for name, sender in self.senders.items():
            stats = sender.stats
            counters[f"notify.{name}.sent"] = stats.sent
            counters[f"notify.{name}.messages"] = stats.messages
            counters[f"notify.{name}.retries"] = stats.retries
            counters[f"notify.{name}.rejected"] = stats.rejected
            counters[f"notify.{name}.failed_attempts"] = stats.failed_attempts
            counters[f"notify.{name}.sending"] = int(stats.holds_lease)
        if self.stalls is not None:
            counters["notify.runs_watched_for_stalls"] = len(self.stalls)
        return counters


def _always(epoch: int) -> Callable[[str], int]:
    return lambda _: epoch
