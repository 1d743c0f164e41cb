"""The in-memory tail of a workspace stream: its most recent committed events.

Live subscribers read from here and never touch the store. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence

from schema import EventMsg


class Tail:
    """The latest ``capacity`` committed events of one workspace, contiguous by offset."""

    __slots__ = ("_events", "_first", "capacity")

    def __init__(self, capacity: int, *, next_offset: int = 1) -> None:
        if capacity < 1:
            raise ValueError("a tail holds at least one event")
        self.capacity = capacity
        self._events: list[EventMsg] = []
        self._first = next_offset
        """Offset of ``_events[0]``; when empty, the offset the next event must have."""

    def __len__(self) -> int:
        return len(self._events)

    @property
    def first_offset(self) -> int:
        return self._first

    @property
    def last_offset(self) -> int:
        return self._first + len(self._events) - 1

    def extend(self, events: Sequence[EventMsg]) -> None:
        """Append committed events; their offsets must continue the tail without a gap."""
        if not events:
            return
        expected = self._first + len(self._events)
        # Offsets only ever increase, so the ends tell whether the run is gapless; checking
        # the ends instead of every event keeps a commit's cost here independent of its size.
        if events[0].offset != expected or events[-1].offset != expected + len(events) - 1:
            raise ValueError(
                f"tail expected offsets {expected}..{expected + len(events) - 1},"
                f" got {events[0].offset}..{events[-1].offset}"
            )
        self._events += events
        excess = len(self._events) - self.capacity
        # Drop in bulk, not per event: a list shifts everything on every deletion.
        if excess > self.capacity // 4:
            del self._events[:excess]
            self._first += excess

    def after(self, offset: int, limit: int) -> list[EventMsg] | None:
        """Up to ``limit`` events after ``offset``; None when older ones have left the tail."""
        start = offset + 1 - self._first
        if start < 0:
            return None
        return self._events[start : start + limit]
