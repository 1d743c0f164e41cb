"""Pages: what a watcher session sends of a stream in one ``events`` frame. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from schema import Codec, EventMsg


class Page:
    """One page of events for delivery: the encoded array, where it ends, and its frames.

    Subscribers at the same place in a stream share the array; those whose subscription has
    the same id (as the first subscription of every session does) share the whole frame.
    """

    __slots__ = ("_frames", "array", "last")

    def __init__(self, array: bytes | None, last: int) -> None:
        self.array = array
        """None when the subscription's kinds filter left no event in the page."""
        self.last = last
        self._frames: dict[int, bytes] = {}

    def frame(self, sub: int, codec: Codec) -> bytes:
        frame = self._frames.get(sub)
        if frame is None:
            assert self.array is not None
            frame = self._frames[sub] = codec.events_frame_of(sub, self.array)
        return frame


def make_page(
    events: Sequence[EventMsg],
    *,
    kinds: Collection[str] | None,
    codec: Codec,
    max_bytes: int,
) -> Page:
    """A page of ``events`` (consecutive, at least one) for a subscription to ``kinds``.

    Events are encoded until the array reaches ``max_bytes`` (the event that crosses it is
    the last one in), so a page never costs more encoding than it sends: with large events,
    encoding all of them first would cost many times what the page holds.
    """
    if not events:
        raise ValueError("a page covers at least one event")
    chosen = events if kinds is None else [event for event in events if event.kind in kinds]
    parts: list[bytes] = []
    size = 0
    for data in map(codec.encode_event, chosen):
        parts.append(data)
        size += len(data)
        if size >= max_bytes:
            break
    # Stopped early: the page ends at its last event. Otherwise it covers every event given,
    # including those the filter left out.
    last = chosen[len(parts) - 1].offset if len(parts) < len(chosen) else events[-1].offset
    return Page(codec.event_array(parts) if parts else None, last)
