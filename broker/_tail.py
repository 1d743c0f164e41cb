"""In-memory tails of workspace streams: their most recent committed events.

Live subscribers, and those a little behind, read from here and never touch the store. How
many events the tails keep is bounded across the whole broker, not per workspace: the events
held do not grow with the number of workspaces, and one busy workspace may use the room quiet
ones leave. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from schema import EventMsg


class Tail:
    """The most recent committed events of one workspace, contiguous by offset.

    How far back it reaches is for the :class:`TailBudget` to say.
    """

    __slots__ = ("_events", "_first")

    def __init__(self, *, next_offset: int = 1) -> None:
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

    def after(self, offset: int, limit: int) -> list[EventMsg] | None:
        """Up to ``limit`` events after ``offset``; None when older ones have left the tail."""
        start = offset + 1 - self._first
        if start < 0:
            return None
        return self._events[start : start + limit]

    def drop_through(self, offset: int) -> int:
        """Let go of the events up to ``offset``; how many there were."""
        count = min(len(self._events), offset + 1 - self._first)
        if count <= 0:
            return 0
        del self._events[:count]
        self._first += count
        return count


class TailBudget:
    """How many events all tails keep together; the events of the oldest commits leave first.

    Over the bound, the tails shrink to an eighth below it at once, each tail in one step:
    dropping the front of a tail shifts the rest of its list, which should happen once per many
    commits, not on each.
    """

    __slots__ = ("_commits", "capacity", "size")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("the tails hold at least one event")
        self.capacity = capacity
        self.size = 0
        """Events held by all tails together."""
        self._commits: deque[tuple[Tail, int, int]] = deque()
        """(tail, its last offset then, events added) for each commit still held, oldest
        first. Each holds at least one event, so there are never more than ``size``."""

    def added(self, tail: Tail, count: int) -> None:
        """``count`` events were just appended to ``tail``; drop the oldest if over."""
        if count <= 0:
            return
        self._commits.append((tail, tail.last_offset, count))
        self.size += count
        if self.size <= self.capacity:
            return
        target = self.capacity - self.capacity // 8
        through: dict[Tail, int] = {}
        while self.size > target:
            oldest, last, held = self._commits[0]
            excess = self.size - target
            if held <= excess:
                self._commits.popleft()
                through[oldest] = last
                self.size -= held
            else:
                # Only the oldest events of this commit: a commit larger than the bound still
                # leaves its newest events in memory.
                through[oldest] = last - held + excess
                self._commits[0] = (oldest, last, held - excess)
                self.size -= excess
        for oldest, last in through.items():
            oldest.drop_through(last)

    def released(self, tail: Tail) -> None:
        """``tail``'s workspace is gone: its events no longer count against the bound."""
        self.size -= tail.drop_through(tail.last_offset)
        self._commits = deque(entry for entry in self._commits if entry[0] is not tail)
