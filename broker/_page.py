"""Pages: what a watcher session sends of a stream in one ``events`` frame. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Final

from schema import Codec, EventMsg

FIRST_RUN: Final = 16
"""Events in a page's first encoder call (see :func:`make_page`)."""


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


class StoredEvents:
    """Events read from the store for watchers the in-memory tail no longer serves, and the
    pages made of them.

    Watchers that asked for the same read at once share it (a crowd resuming from one
    cursor), and its pages: one encoding per codec and filter, not one per watcher. The pages
    live as long as a watcher holds the read, not in the workspace, where a long replay of a
    quiet stream would pile them up.
    """

    __slots__ = ("events", "pages")

    def __init__(self, events: list[EventMsg]) -> None:
        self.events = events
        """In offset order; shared, so not to be changed."""
        self.pages: dict[tuple[str, frozenset[str] | None], Page] = {}
        """By codec subprotocol and kinds filter."""


def make_page(
    events: Sequence[EventMsg],
    *,
    kinds: Collection[str] | None,
    codec: Codec,
    max_bytes: int,
) -> Page:
    """A page of ``events`` (consecutive, at least one) for a subscription to ``kinds``.

    Events are encoded until their encodings reach ``max_bytes`` (the event that crosses it
    is the last one in), so a page never costs much more encoding than it sends: with large
    events, encoding all of them first would cost many times what the page holds. They are
    encoded in runs, one encoder call each (a call per event cost three times as much): the
    first of :data:`FIRST_RUN` events, each next one sized to fill half of what is left at
    the average size so far; a run that would reach ``max_bytes`` is encoded again one event
    at a time, to end the page exactly where that would have.
    """
    if not events:
        raise ValueError("a page covers at least one event")
    chosen = events if kinds is None else [event for event in events if event.kind in kinds]
    # In JSON a run's bytes include a comma between each two events; the bound counts the
    # events' own bytes.
    separator = 1 if codec.text else 0
    runs: list[bytes] = []
    size = count = 0
    run_length = FIRST_RUN
    while count < len(chosen) and size < max_bytes:
        in_run = chosen[count : count + run_length]
        run = codec.encode_event_run(in_run)
        run_size = len(run) - separator * (len(in_run) - 1)
        if size + run_size >= max_bytes and len(in_run) > 1:
            for data in map(codec.encode_event, in_run):
                runs.append(data)
                size += len(data)
                count += 1
                if size >= max_bytes:
                    break
            break
        runs.append(run)
        size += run_size
        count += len(in_run)
        run_length = max(1, int((max_bytes - size) / 2 / (size / count)))
    # Stopped early: the page ends at its last event. Otherwise it covers every event given,
    # including those the filter left out.
    last = chosen[count - 1].offset if count < len(chosen) else events[-1].offset
    return Page(codec.event_array(runs, count) if runs else None, last)
