"""The storage interface the broker is written against.

Sessions and routing never touch a database: they hand the writer a :class:`Commit` and read
through :class:`Store`. The embedded implementation is SQLite (``_sqlite_store``); a
Redis-backed one for several broker nodes maps onto the same calls (see docs/storage.md).

Threading contract: ``commit`` and ``trim`` are called from one writer thread at a
time; ``read`` and ``history`` may be called from other threads concurrently with them.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from schema import EventMsg, PayloadKind, WorkspaceState

from ._notify import Notification, QueuedNotification, SinkQueueStats


class StoreUnavailableError(ConnectionError):
    """The store's server cannot be reached right now (a Redis store); the request may be
    tried again. The broker keeps its sessions meanwhile and holds acknowledgements."""


@dataclass(frozen=True, slots=True)
class StoredWorkspace:
    """A workspace as the store holds it, loaded at boot."""

    state: WorkspaceState
    """The state folded up to ``state.last_offset`` (name and epoch included)."""
    first_offset: int
    """The oldest offset still stored; ``state.last_offset + 1`` when none is."""
    run_seqs: Mapping[str, int]
    """Highest durable seq per run id: what ``welcome.acked_seq`` reports."""


@dataclass(frozen=True, slots=True)
class Commit:
    """One group commit: everything in it becomes durable together, or not at all."""

    events: Sequence[EventMsg] = ()
    """New events, offsets already assigned, in offset order per workspace."""
    states: Mapping[tuple[str, int], WorkspaceState] = field(default_factory=dict)
    """The state after ``events`` of every workspace (name, epoch) they touch, or that changed."""
    run_seqs: Mapping[tuple[str, int, str], int] = field(default_factory=dict)
    """(workspace, epoch, run_id) -> highest seq now stored for that run."""
    deleted: Sequence[tuple[str, int]] = ()
    """Workspace epochs to remove (events, state, run positions), applied before the rest."""
    notifications: Sequence[Notification] = ()
    """Notifications to queue, each in its sink's queue, in this order (made from ``events``
    or earlier commits' events, or by the stall detector)."""
    notify_marks: Mapping[tuple[str, int], int] = field(default_factory=dict)
    """(workspace, epoch) -> the offset from which its events made notifications that are not
    queued yet (a store that ``defers_notifications``): the broker queues them within a
    moment, in a later commit that removes the mark; a broker that died meanwhile makes them
    again at its restart from the events stored from there. A mark already stored is kept as
    it is (its offset is the earlier one)."""
    notify_unmarked: Sequence[tuple[str, int]] = ()
    """Marks to remove, before ``notify_marks`` are added: what they stood for is queued by
    this commit (or was given up)."""
    by_workspace: Mapping[str, Sequence[EventMsg]] = field(init=False, repr=False, compare=False)
    """``events`` grouped by workspace name. Grouped once, where the commit is made (in the
    writer's thread), for both the store and the broker's fan-out."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_workspace", events_by_workspace(self.events))


def events_by_workspace(events: Sequence[EventMsg]) -> dict[str, list[EventMsg]]:
    """``events`` grouped by workspace name, each group in the order given."""
    grouped: dict[str, list[EventMsg]] = {}
    start = 0
    # Commits hold long runs of one workspace's events: a step per run, not per event.
    while start < len(events):
        name = events[start].workspace
        end = start + 1
        while end < len(events) and events[end].workspace == name:
            end += 1
        grouped.setdefault(name, []).extend(events[start:end])
        start = end
    return grouped


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    """What a ``history`` request asks for; see ``schema.HistoryQuery`` for the order rules."""

    workspace: str
    epoch: int
    before: int | None = None
    after: int | None = None
    limit: int = 100
    kinds: Sequence[PayloadKind] | None = None
    series: str | None = None
    run_id: str | None = None

    def matches(self, event: EventMsg) -> bool:
        """Whether ``event`` belongs on the page (its bounds and filters)."""
        if self.after is not None and event.offset <= self.after:
            return False
        if self.before is not None and event.offset >= self.before:
            return False
        if self.kinds is not None and event.kind not in self.kinds:
            return False
        if self.series is not None and event.series != self.series:
            return False
        return self.run_id is None or event.run_id == self.run_id


class Store(Protocol):
    """Durable workspace streams, their folded states and the dedupe positions of runs."""

    def load(self) -> list[StoredWorkspace]:
        """Every live workspace, for the broker to restore at boot."""
        ...

    def commit(self, commit: Commit) -> None:
        """Write a commit atomically; it is durable when this returns."""
        ...

    def read(self, workspace: str, epoch: int, after: int, limit: int) -> list[EventMsg]:
        """Up to ``limit`` stored events with offset > ``after``, oldest first."""
        ...

    def history(self, query: HistoryFilter) -> tuple[list[EventMsg], bool]:
        """A page of events and whether more match beyond ``query.limit``."""
        ...

    def trim(
        self, *, max_events: int, max_age: datetime.timedelta, now: datetime.datetime
    ) -> dict[tuple[str, int], int]:
        """Apply retention to every workspace; the new ``first_offset`` of each one trimmed."""
        ...

    def forget_runs(
        self,
        *,
        idle_for: datetime.timedelta,
        live: Iterable[tuple[str, int, str]],
        now: datetime.datetime,
    ) -> list[tuple[str, int, str]]:
        """Drop the dedupe positions of runs neither connected (``live``) nor with a stored
        event for ``idle_for``; the (workspace, epoch, run id) of each one dropped."""
        ...

    @property
    def defers_notifications(self) -> bool:
        """Whether commits may leave notifications to a later commit (``Commit.notify_marks``):
        a commit that queues none writes less (SQLite, where a queue write is a page and a
        statement more in every commit). A store shared by several nodes queues them at once."""
        ...

    def notify_marked(self) -> dict[tuple[str, int], int]:
        """The marks stored (see ``Commit.notify_marks``): read at boot, before any commit."""
        ...

    def notify_limits(self, limits: Mapping[str, int]) -> None:
        """The bound of each sink's queue (sink name -> most notifications kept). Called once,
        before the first commit; a commit that queues past a bound drops the sink's oldest
        and counts them in ``notify_stats``."""
        ...

    def notify_queue(self, sink: str, limit: int) -> list[QueuedNotification]:
        """Up to ``limit`` of the sink's queued notifications, oldest (smallest id) first."""
        ...

    def notify_done(self, sink: str, ids: Sequence[int], lease: str) -> bool:
        """Remove the sink's notifications ``ids`` (delivered, or given up); ``False``, with
        nothing removed, when ``lease`` no longer holds the sink's sender lease (another node
        sends for it now). Called from the writer's thread."""
        ...

    def notify_lease(self, sink: str, lease: str, ttl_s: float) -> bool:
        """Take or renew the right to send the sink's queue, as ``lease`` (a random token),
        for ``ttl_s`` seconds; ``False`` when another holder has it. Only one node sends a
        sink's notifications at a time (always granted by an embedded store)."""
        ...

    def notify_stats(self) -> dict[str, SinkQueueStats]:
        """Queued and dropped counts of every sink that has had a notification."""
        ...

    @property
    def reachable(self) -> bool:
        """Whether the store's server answered the last time it was asked (always, for an
        embedded store): ``/healthz`` reports the node not ready while it is not."""
        ...

    def interrupt(self) -> None:
        """Stop waiting for a server that cannot be reached: a commit waiting for one fails.
        Called once the broker stops, before the writer is awaited (a no-op for SQLite)."""
        ...

    def close(self) -> None: ...
