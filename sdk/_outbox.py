"""A worker's outbox: every event from the moment it is queued until the broker acknowledges it.

This is the sans-I/O core of publishing (protocol §10). It does no waiting, reads no clock and
touches no socket; the Worker drives it from its connection loop and wraps ``has_room`` and
``settled`` in asyncio waits.

The rules:

* **Tickets.** ``add`` gives every event a ticket: 1, 2, 3, ... in the order of adding. Tickets
  name events for ``flush()`` and ``post_event()``; they are not seqs.
* **Lazy seqs.** An event gets its seq only when it is first put into a ``publish`` batch, from
  ``next_seq`` (which starts at 1). It keeps that seq for good: a resend carries the same seq,
  which is how the broker recognises it and does not store it twice. Seqs are assigned in ticket
  order, so the seqs of the held events always increase from the oldest to the newest.
* **The broker's word raises ``next_seq``.** After ``welcome`` (``reconnected``) and on every
  ``ack``, ``next_seq`` becomes at least one past the broker's seq. A new process reusing a
  ``run_id`` thus numbers its events after what the broker already stores, instead of having
  them acknowledged as duplicates and silently discarded.
* **Acks are cumulative.** ``acked(seq)`` settles every held event with a seq up to ``seq``.
  Old, repeated or unknown acks are harmless.
* **Reconnect.** ``reconnected(acked_seq)`` settles what the broker reports durable and makes
  everything else unsent again: events sent on the lost connection go first, in their order
  and with their seqs, then the events never sent.
* **Bounds.** At most ``max_events`` events and ``max_bytes`` bytes (as measured by the caller)
  are held, sent or not. When an event does not fit, the policy decides: ``"block"`` and
  ``"raise"`` refuse it with ``OutboxFullError`` (under ``"block"`` the caller waits for
  ``has_room`` before adding), ``"drop_oldest"`` discards the oldest held events until it fits.
  An event larger than ``max_bytes`` never fits and is refused under every policy.
* **Unsendable events.** An event larger than the broker's frames can never be sent, and sent
  anyway it gets the connection closed (1009) with every event behind it stuck. The worker
  refuses such events at ``add`` once it knows the broker's limit; those queued before it knew
  are taken out by ``drop_larger_than`` when the limit arrives (counted as dropped). A seq one
  of them had is then never sent: the broker accepts holes in a run's seqs.

Apart from ``drop_larger_than``, events leave the outbox only from its head (acks are
cumulative and seqs increase with tickets; dropping takes the oldest), so the held tickets are
one contiguous range, less the few taken out by ``drop_larger_than``, and ``settled`` is a
comparison plus a look in that small set.
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import Final, Literal, NewType, get_args

import schema

from ._errors import InvalidArgumentError, PierheadError

__all__ = ["EventTooLargeError", "Outbox", "OutboxFullError", "OutboxPolicy", "Ticket"]

Ticket = NewType("Ticket", int)
"""Names one added event: 1, 2, 3, ... in the order of adding. Not a seq."""

OutboxPolicy = Literal["block", "drop_oldest", "raise"]

_POLICIES: Final = frozenset(get_args(OutboxPolicy))
_NO_SEQ: Final = 0  # seqs start at 1, so 0 marks an entry that has never been in a batch


class OutboxFullError(PierheadError):
    """The outbox has no room for an event (policy ``"block"`` or ``"raise"``)."""


class EventTooLargeError(OutboxFullError):
    """The event alone is larger than ``max_bytes``: no amount of waiting makes it fit."""


class _Entry:
    __slots__ = ("event", "seq", "size", "ticket")

    def __init__(self, ticket: Ticket, event: schema.Event, size: int) -> None:
        self.ticket = ticket
        self.event = event
        self.size = size
        self.seq = _NO_SEQ


class Outbox:
    """Events held from ``add`` until acknowledged (or dropped); see the module docstring.

    Held events are kept in two deques that together are in ticket order: ``_in_flight``
    (sent on the current connection, not yet acknowledged) followed by ``_unsent``. Every
    operation works at their ends, so adding, sending and acknowledging cost O(1) per event.
    """

    __slots__ = (
        "_acked_total",
        "_dropped",
        "_dropped_total",
        "_held_bytes",
        "_in_flight",
        "_last_ticket",
        "_max_bytes",
        "_max_events",
        "_next_seq",
        "_policy",
        "_taken_out",
        "_unsent",
    )

    def __init__(
        self,
        *,
        max_events: int = 100_000,
        max_bytes: int = 64 * 1024 * 1024,
        policy: OutboxPolicy = "block",
    ) -> None:
        if isinstance(max_events, bool) or not isinstance(max_events, int) or max_events < 1:
            raise InvalidArgumentError(
                f"max_events must be an integer of at least 1, not {max_events!r}"
            )
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise InvalidArgumentError(
                f"max_bytes must be an integer of at least 1, not {max_bytes!r}"
            )
        if policy not in _POLICIES:
            choices = ", ".join(repr(p) for p in sorted(_POLICIES))
            raise InvalidArgumentError(f"policy must be one of {choices}, not {policy!r}")
        self._max_events = max_events
        self._max_bytes = max_bytes
        self._policy: OutboxPolicy = policy
        self._in_flight: deque[_Entry] = deque()
        self._unsent: deque[_Entry] = deque()
        self._held_bytes = 0
        self._last_ticket = 0
        self._next_seq = 1
        self._acked_total = 0
        self._dropped_total = 0
        self._dropped: list[Ticket] = []
        self._taken_out: set[Ticket] = set()
        """Tickets ``drop_larger_than`` took out from behind the head, until the head passes."""

    # -- configuration and counters ------------------------------------------------------------

    @property
    def max_events(self) -> int:
        return self._max_events

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    @property
    def policy(self) -> OutboxPolicy:
        return self._policy

    @property
    def queued(self) -> int:
        """Held events not sent on the current connection."""
        return len(self._unsent)

    @property
    def in_flight(self) -> int:
        """Held events sent on the current connection and not yet acknowledged."""
        return len(self._in_flight)

    @property
    def held(self) -> int:
        """Every held event: ``queued + in_flight``."""
        return len(self._in_flight) + len(self._unsent)

    @property
    def held_bytes(self) -> int:
        """The sizes of the held events, as given to ``add``."""
        return self._held_bytes

    @property
    def acked_total(self) -> int:
        """Events settled by an ack or by ``reconnected``, over the outbox's life."""
        return self._acked_total

    @property
    def dropped_total(self) -> int:
        """Events discarded by ``"drop_oldest"`` or ``drop_larger_than``, over the outbox's life."""
        return self._dropped_total

    @property
    def last_ticket(self) -> Ticket:
        """The newest ticket (0 before the first ``add``); also the number of events added."""
        return Ticket(self._last_ticket)

    @property
    def next_seq(self) -> int:
        """The seq the next event to enter a batch for the first time will get."""
        return self._next_seq

    # -- adding ---------------------------------------------------------------------------------

    def has_room(self, size: int) -> bool:
        """Whether an event of ``size`` bytes fits now, without dropping anything.

        Never true for an event larger than ``max_bytes``: ``add`` refuses that one at once
        (``EventTooLargeError``), so waiting for room would be waiting forever.
        """
        return (
            self.held < self._max_events and self._held_bytes + _check_size(size) <= self._max_bytes
        )

    def add(self, event: schema.Event, size: int, *, seq: int | None = None) -> Ticket:
        """Hold ``event`` (``size`` bytes encoded) until it is acknowledged; returns its ticket.

        Without room, ``"block"`` and ``"raise"`` raise ``OutboxFullError`` and hold nothing;
        ``"drop_oldest"`` discards held events from the oldest on, sent or not, until the new
        one fits (see ``take_dropped``). An event larger than ``max_bytes`` raises
        ``EventTooLargeError`` under every policy.
        """
        if _check_size(size) > self._max_bytes:
            raise EventTooLargeError(
                f"an event of {size} bytes is larger than the outbox's max_bytes "
                f"({self._max_bytes}); it can never be queued"
            )
        if not self.has_room(size):
            if self._policy != "drop_oldest":
                raise OutboxFullError(self._full_message(size))
            self._drop_until_room_for(size)
        self._last_ticket += 1
        ticket = Ticket(self._last_ticket)
        entry = _Entry(ticket, event, size)
        if seq is not None:
            # Restored from a spool: the event may already be stored under this seq, so it
            # keeps it (the broker drops the resend) and later events number after it.
            entry.seq = seq
            self._next_seq = max(self._next_seq, seq + 1)
        self._unsent.append(entry)
        self._held_bytes += size
        return ticket

    def newest_in_flight(self, count: int) -> list[tuple[Ticket, int]]:
        """(ticket, seq) of the ``count`` newest in-flight events: what a batch just numbered."""
        newest = list(itertools.islice(reversed(self._in_flight), count))
        return [(entry.ticket, entry.seq) for entry in reversed(newest)]

    def take_dropped(self) -> list[Ticket]:
        """The tickets dropped since the last call, oldest first (for reporting the loss)."""
        dropped, self._dropped = self._dropped, []
        return dropped

    def settled(self, ticket: Ticket) -> bool:
        """Whether the event of ``ticket`` is no longer held: acknowledged or dropped."""
        if not 1 <= ticket <= self._last_ticket:
            raise InvalidArgumentError(
                f"ticket {ticket} was never issued (last ticket: {self._last_ticket})"
            )
        # Events leave only from the head, so the held tickets are a contiguous range ending at
        # last_ticket: a ticket older than the oldest held one is settled.
        oldest = self._oldest()
        return oldest is None or ticket < oldest.ticket or ticket in self._taken_out

    def drop_larger_than(self, max_size: int) -> list[Ticket]:
        """Take out every unsent event larger than ``max_size``: it can never be sent.

        For a limit learned after the events were added (the broker's frame size, from its
        welcome). Returns their tickets, oldest first; they count as dropped and are settled.
        O(held events): meant for a new connection, not for every event.
        """
        keep: deque[_Entry] = deque()
        dropped: list[Ticket] = []
        for entry in self._unsent:
            if entry.size > max_size:
                dropped.append(entry.ticket)
                self._held_bytes -= entry.size
            else:
                keep.append(entry)
        if dropped:
            self._unsent = keep
            self._dropped_total += len(dropped)
            self._taken_out.update(dropped)
            self._forget_taken_out()
        return dropped

    # -- sending and acknowledgement ------------------------------------------------------------

    def next_batch(self, max_events: int, max_bytes: int) -> schema.Publish | None:
        """The next ``publish`` frame to send on this connection, or None if all is sent.

        Takes the oldest unsent events, giving a seq to those that have none, up to
        ``max_events`` events and ``max_bytes`` bytes (an event larger than ``max_bytes`` goes
        alone rather than never). The frame's seqs are consecutive: the batch ends before a
        hole. The events become in flight until acknowledged or the connection is lost.
        ``max_bytes`` counts event sizes only; the caller leaves room for the frame around them.
        """
        if max_events < 1:
            raise InvalidArgumentError(f"max_events must be at least 1, not {max_events}")
        if max_bytes < 1:
            raise InvalidArgumentError(f"max_bytes must be at least 1, not {max_bytes}")
        if not self._unsent:
            return None
        events: list[schema.Event] = []
        first_seq = expected = self._seq_for(self._unsent[0])
        total = 0
        while self._unsent and len(events) < max_events:
            entry = self._unsent[0]
            if events and total + entry.size > max_bytes:
                break
            seq = self._seq_for(entry)
            if seq != expected:
                # A frame numbers its events seq, seq+1, ...; a gap needs a new frame. The
                # held seqs are consecutive in practice (they are assigned in order and the
                # jumps of next_seq happen only when nothing assigned is held), so this is a
                # guard, not a path.
                break
            if entry.seq == _NO_SEQ:
                entry.seq = seq
                self._next_seq = seq + 1
            self._in_flight.append(self._unsent.popleft())
            events.append(entry.event)
            total += entry.size
            expected += 1
        return schema.Publish(seq=first_seq, events=events)

    def acked(self, seq: int) -> list[Ticket]:
        """The broker stores every event up to ``seq``: settle them; returns their tickets.

        Cumulative and idempotent: an old, repeated or unknown seq settles nothing new.
        """
        if seq < 0:
            raise InvalidArgumentError(f"an acknowledged seq is never negative, not {seq}")
        done: list[Ticket] = []
        # Seqs increase from the head, so the settled events are a prefix of in_flight, then
        # (only after a reconnect, before the resend) a prefix of unsent.
        for held in (self._in_flight, self._unsent):
            while held and held[0].seq != _NO_SEQ and held[0].seq <= seq:
                entry = held.popleft()
                self._held_bytes -= entry.size
                done.append(entry.ticket)
        self._acked_total += len(done)
        if done and self._taken_out:
            self._forget_taken_out()
        # The broker stores seq: any seq up to it that we hand out later would be taken for a
        # duplicate and discarded. Only another process with this run_id can cause that.
        self._next_seq = max(self._next_seq, seq + 1)
        return done

    def reconnected(self, acked_seq: int) -> list[Ticket]:
        """A new connection's ``welcome.acked_seq``: settle up to it, resend everything else.

        Returns the settled tickets. Events sent on the previous connection and not covered
        become unsent again, ahead of the never-sent ones and in their order, keeping their
        seqs. ``next_seq`` rises past ``acked_seq`` so that new events are never numbered at
        or below what the broker already stores for this run.
        """
        done = self.acked(acked_seq)
        self._unsent.extendleft(reversed(self._in_flight))
        self._in_flight.clear()
        return done

    # -- internals -----------------------------------------------------------------------------

    def _oldest(self) -> _Entry | None:
        if self._in_flight:
            return self._in_flight[0]
        if self._unsent:
            return self._unsent[0]
        return None

    def _forget_taken_out(self) -> None:
        # Tickets older than the head are settled anyway; keep only those behind it.
        oldest = self._oldest()
        if oldest is None:
            self._taken_out.clear()
        else:
            self._taken_out = {t for t in self._taken_out if t > oldest.ticket}

    def _seq_for(self, entry: _Entry) -> int:
        return self._next_seq if entry.seq == _NO_SEQ else entry.seq

    def _drop_until_room_for(self, size: int) -> None:
        # The caller has checked size <= max_bytes and max_events >= 1, so an empty outbox has
        # room and this ends.
        while not self.has_room(size):
            held = self._in_flight if self._in_flight else self._unsent
            entry = held.popleft()
            self._held_bytes -= entry.size
            self._dropped.append(entry.ticket)
            self._dropped_total += 1
        if self._taken_out:
            self._forget_taken_out()

    def _full_message(self, size: int) -> str:
        hint = " (wait for has_room() before add)" if self._policy == "block" else ""
        return (
            f"outbox full{hint}: holding {self.held} of max_events={self._max_events} events "
            f"and {self._held_bytes} of max_bytes={self._max_bytes} bytes; "
            f"an event of {size} bytes does not fit"
        )


def _check_size(size: int) -> int:
    if size < 0:
        raise InvalidArgumentError(f"an event's size is never negative, not {size}")
    return size
