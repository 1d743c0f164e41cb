"""A workspace as the broker holds it: its stream positions, its state, its tail.

Two states are kept: ``state`` is folded up to the last *committed* offset and is what
subscribers are shown; ``pending`` is folded up to the last *assigned* offset and is what the
next commit stores. Events get their offsets here, in arrival order, before they are durable;
nobody sees them until the commit that makes them durable has returned.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from schema import (
    Event,
    EventMsg,
    Payload,
    WorkspaceSemaphores,
    WorkspaceState,
    fold_events,
    new_workspace_state,
    stamp,
)

from ._page import Page
from ._tail import Tail


class WorkspaceClosedError(LookupError):
    """An append to a workspace epoch that is being deleted."""


class Appended(NamedTuple):
    """Events just given their offsets."""

    events: list[EventMsg]
    changes: list[EventMsg]
    """Those of ``events`` that change more of the state than its position (see
    :func:`schema.fold_events`), in order: all the notification rules look at."""


class Workspace:
    __slots__ = (
        "acked_seqs",
        "assigned_seqs",
        "closed",
        "first_offset",
        "mirror",
        "name",
        "next_offset",
        "pages",
        "pending",
        "state",
        "tail",
    )

    def __init__(
        self,
        state: WorkspaceState,
        *,
        first_offset: int | None = None,
        run_seqs: dict[str, int] | None = None,
    ) -> None:
        self.name = state.name
        self.state = state
        self.pending = state
        self.next_offset = state.last_offset + 1
        self.first_offset = state.last_offset + 1 if first_offset is None else first_offset
        self.tail = Tail(next_offset=self.next_offset)
        self.acked_seqs: dict[str, int] = dict(run_seqs or {})
        """Highest durable seq per run."""
        self.assigned_seqs: dict[str, int] = dict(self.acked_seqs)
        """Highest seq given an offset per run (durable or on its way)."""
        self.pages: dict[tuple[str, frozenset[str] | None, int, int], Page] = {}
        """Pages built for delivery since the last commit, shared by the subscribers at the
        same place, by (codec, kinds, after, limit)."""
        self.closed = False
        """Being deleted: nothing more is appended, so nothing revives the epoch in the store."""
        self.mirror = False
        """Another node writes this workspace (several nodes on one Redis store): this node
        follows it from the store, for its watchers, and appends nothing to it."""

    @classmethod
    def create(cls, name: str, *, epoch: int, created: datetime.datetime) -> Workspace:
        return cls(new_workspace_state(name, epoch=epoch, created=created))

    @property
    def epoch(self) -> int:
        return self.state.epoch

    @property
    def key(self) -> tuple[str, int]:
        return (self.name, self.state.epoch)

    @property
    def initial_state(self) -> WorkspaceState:
        """The state before the first event: what a subscriber that joins late starts from."""
        return new_workspace_state(self.name, epoch=self.state.epoch, created=self.state.created)

    @property
    def semaphores(self) -> WorkspaceSemaphores:
        """The semaphores as of the latest assigned event: what decisions are made against."""
        return self.pending.semaphores

    def append_published(
        self, events: Sequence[Event], *, run_id: str, first_seq: int, now: datetime.datetime
    ) -> Appended:
        """A worker's events, numbered from ``first_seq``: offsets given, ``pending`` folded."""
        self.assigned_seqs[run_id] = first_seq + len(events) - 1
        return self._add(
            stamp(
                events,
                workspace=self.name,
                run_id=run_id,
                first_offset=self.next_offset,
                first_seq=first_seq,
                received_time=now,
            )
        )

    def append_made(self, payloads: Iterable[Payload], *, now: datetime.datetime) -> Appended:
        """Events the broker makes itself (presence, details, semaphores)."""
        return self._add(
            [
                EventMsg(
                    workspace=self.name,
                    offset=self.next_offset + index,
                    create_time=now,
                    received_time=now,
                    payload=payload,
                )
                for index, payload in enumerate(payloads)
            ]
        )

    def _add(self, events: list[EventMsg]) -> Appended:
        if self.closed:
            raise WorkspaceClosedError(f"workspace {self.name!r} is being deleted")
        self.next_offset += len(events)
        changes: list[EventMsg] = []
        self.pending = fold_events(self.pending, events, changes=changes)
        return Appended(events, changes)

    def committed(self, events: Sequence[EventMsg], state: WorkspaceState | None) -> None:
        """Events of this workspace and its state are now durable."""
        self.tail.extend(events)
        self.pages.clear()
        if state is not None:
            self.state = state
