"""The in-memory tail of a workspace stream: recent committed events and their encodings.

Live subscribers read from here and never touch the store; each event is encoded at most once
per codec, however many subscribers receive it. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable

from schema import Codec, EventMsg


class TailEntry:
    """One committed event, with its payload kind and its encodings made on first use."""

    __slots__ = ("_encodings", "event", "kind")

    def __init__(self, event: EventMsg) -> None:
        self.event = event
        self.kind: str = event.payload.__struct_config__.tag  # type: ignore[assignment]
        self._encodings: dict[str, bytes] = {}

    @property
    def offset(self) -> int:
        return self.event.offset

    def encoded(self, codec: Codec) -> bytes:
        data = self._encodings.get(codec.subprotocol)
        if data is None:
            data = self._encodings[codec.subprotocol] = codec.encode_event(self.event)
        return data


class Tail:
    """The latest ``capacity`` committed events of one workspace, contiguous by offset."""

    __slots__ = ("_entries", "_first", "capacity")

    def __init__(self, capacity: int, *, next_offset: int = 1) -> None:
        if capacity < 1:
            raise ValueError("a tail holds at least one event")
        self.capacity = capacity
        self._entries: list[TailEntry] = []
        self._first = next_offset
        """Offset of ``_entries[0]``; when empty, the offset the next event must have."""

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def first_offset(self) -> int:
        return self._first

    @property
    def last_offset(self) -> int:
        return self._first + len(self._entries) - 1

    def extend(self, events: Iterable[EventMsg]) -> None:
        """Append committed events; their offsets must continue the tail without a gap."""
        for event in events:
            expected = self._first + len(self._entries)
            if event.offset != expected:
                raise ValueError(f"tail expected offset {expected}, got {event.offset}")
            self._entries.append(TailEntry(event))
        excess = len(self._entries) - self.capacity
        # Drop in bulk, not per event: a list shifts everything on every deletion.
        if excess > self.capacity // 4:
            del self._entries[:excess]
            self._first += excess

    def after(self, offset: int, limit: int) -> list[TailEntry] | None:
        """Up to ``limit`` entries after ``offset``; None when older ones have left the tail."""
        start = offset + 1 - self._first
        if start < 0:
            return None
        return self._entries[start : start + limit]
