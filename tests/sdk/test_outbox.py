"""The worker outbox: bounds and policies, lazy seqs, batches, acks and resends after reconnect."""

from __future__ import annotations

import datetime
from collections import deque
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

import schema
from sdk._outbox import EventTooLargeError, Outbox, OutboxFullError, OutboxPolicy, Ticket

POLICIES: tuple[OutboxPolicy, ...] = ("block", "drop_oldest", "raise")
T0 = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC)


def event(name: str) -> schema.Event:
    return schema.Event(payload=schema.LogRecord(message=name), create_time=T0)


def name_of(ev: schema.Event) -> str:
    assert isinstance(ev.payload, schema.LogRecord)
    return ev.payload.message


def names(batch: schema.Publish | None) -> list[str]:
    assert batch is not None
    return [name_of(ev) for ev in batch.events]


def filled(count: int, size: int = 1, **kwargs: Any) -> Outbox:
    outbox = Outbox(**kwargs)
    for i in range(1, count + 1):
        outbox.add(event(f"e{i}"), size)
    return outbox


# -- construction ---------------------------------------------------------------------------------


def test_defaults() -> None:
    outbox = Outbox()
    assert (outbox.max_events, outbox.max_bytes, outbox.policy) == (100_000, 64 * 1024**2, "block")
    assert (outbox.queued, outbox.in_flight, outbox.held, outbox.held_bytes) == (0, 0, 0, 0)
    assert (outbox.acked_total, outbox.dropped_total, outbox.last_ticket) == (0, 0, 0)
    assert outbox.next_seq == 1
    assert outbox.next_batch(10, 1000) is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_events": 0}, "max_events must be an integer of at least 1, not 0"),
        ({"max_events": -5}, "max_events"),
        ({"max_events": True}, "max_events"),
        ({"max_events": 1.5}, "max_events"),
        ({"max_bytes": 0}, "max_bytes must be an integer of at least 1, not 0"),
        ({"max_bytes": "1"}, "max_bytes"),
        ({"policy": "wait"}, "policy must be one of 'block', 'drop_oldest', 'raise', not 'wait'"),
    ],
)
def test_constructor_refuses_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Outbox(**kwargs)


def test_bad_sizes_seqs_and_tickets_are_refused() -> None:
    outbox = filled(1)
    with pytest.raises(ValueError, match="size is never negative"):
        outbox.add(event("x"), -1)
    with pytest.raises(ValueError, match="size is never negative"):
        outbox.has_room(-1)
    with pytest.raises(ValueError, match="max_events must be at least 1"):
        outbox.next_batch(0, 100)
    with pytest.raises(ValueError, match="max_bytes must be at least 1"):
        outbox.next_batch(1, 0)
    with pytest.raises(ValueError, match="never negative"):
        outbox.acked(-1)
    with pytest.raises(ValueError, match="never negative"):
        outbox.reconnected(-1)
    for ticket in (0, 2):
        with pytest.raises(ValueError, match="was never issued"):
            outbox.settled(Ticket(ticket))
    assert outbox.held == 1


# -- bounds and policies --------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["block", "raise"])
def test_full_by_count_refuses_at_exactly_max_events(policy: OutboxPolicy) -> None:
    outbox = filled(2, policy=policy, max_events=3, max_bytes=100)
    assert outbox.has_room(1)
    assert outbox.add(event("e3"), 1) == 3
    assert not outbox.has_room(0)
    with pytest.raises(OutboxFullError, match=r"holding 3 of max_events=3 events") as caught:
        outbox.add(event("e4"), 1)
    assert "3 of max_bytes=100 bytes" in str(caught.value)
    assert ("has_room" in str(caught.value)) == (policy == "block")
    assert not isinstance(caught.value, EventTooLargeError)
    assert (outbox.held, outbox.last_ticket, outbox.dropped_total) == (3, 3, 0)
    outbox.next_batch(1, 100)
    assert outbox.acked(1) == [1]
    assert outbox.has_room(1)
    assert outbox.add(event("e4"), 1) == 4


@pytest.mark.parametrize("policy", ["block", "raise"])
def test_full_by_bytes_refuses_past_exactly_max_bytes(policy: OutboxPolicy) -> None:
    outbox = Outbox(policy=policy, max_events=10, max_bytes=10)
    outbox.add(event("e1"), 6)
    assert not outbox.has_room(5)
    assert outbox.has_room(4)
    outbox.add(event("e2"), 4)  # exactly max_bytes
    assert outbox.held_bytes == 10
    assert outbox.has_room(0)
    assert not outbox.has_room(1)
    with pytest.raises(OutboxFullError, match=r"10 of max_bytes=10 bytes; an event of 1 bytes"):
        outbox.add(event("e3"), 1)
    assert (outbox.held, outbox.held_bytes, outbox.last_ticket) == (2, 10, 2)


@pytest.mark.parametrize("policy", POLICIES)
def test_an_event_larger_than_max_bytes_is_refused_by_every_policy(policy: OutboxPolicy) -> None:
    outbox = Outbox(policy=policy, max_bytes=10)
    assert not outbox.has_room(11)
    with pytest.raises(EventTooLargeError, match="larger than the outbox's max_bytes") as caught:
        outbox.add(event("big"), 11)
    assert isinstance(caught.value, OutboxFullError)
    assert (outbox.held, outbox.last_ticket, outbox.dropped_total) == (0, 0, 0)
    assert outbox.add(event("fits"), 10) == 1  # max_bytes itself is allowed
    with pytest.raises(EventTooLargeError):
        outbox.add(event("big"), 11)
    assert outbox.held == 1  # not even drop_oldest discards anything for it
    assert outbox.take_dropped() == []


def test_drop_oldest_by_count_drops_exactly_one_per_event() -> None:
    outbox = filled(3, policy="drop_oldest", max_events=3)
    assert not outbox.has_room(1)  # has_room answers without dropping
    assert outbox.add(event("e4"), 1) == 4
    assert outbox.add(event("e5"), 1) == 5
    assert outbox.take_dropped() == [1, 2]
    assert outbox.take_dropped() == []
    assert (outbox.held, outbox.dropped_total, outbox.last_ticket) == (3, 2, 5)
    assert [outbox.settled(Ticket(t)) for t in range(1, 6)] == [True, True, False, False, False]
    assert names(outbox.next_batch(10, 100)) == ["e3", "e4", "e5"]


def test_drop_oldest_by_bytes_drops_only_what_is_needed() -> None:
    outbox = Outbox(policy="drop_oldest", max_events=10, max_bytes=12)
    for i in range(1, 4):
        outbox.add(event(f"e{i}"), 4)
    outbox.add(event("e4"), 8)  # 12 - 4 - 4 + 8 = 12: exactly two go
    assert outbox.take_dropped() == [1, 2]
    assert (outbox.held, outbox.held_bytes, outbox.dropped_total) == (2, 12, 2)
    outbox.add(event("e5"), 12)  # a whole-outbox event empties it
    assert outbox.take_dropped() == [3, 4]
    assert (outbox.held, outbox.held_bytes, outbox.dropped_total) == (1, 12, 4)
    assert outbox.last_ticket == outbox.acked_total + outbox.dropped_total + outbox.held


def test_drop_oldest_drops_sent_events_too_and_their_acks_are_harmless() -> None:
    outbox = filled(3, policy="drop_oldest", max_events=3)
    batch = outbox.next_batch(2, 100)
    assert batch is not None
    assert (batch.seq, names(batch)) == (1, ["e1", "e2"])
    outbox.add(event("e4"), 1)
    assert outbox.take_dropped() == [1]  # the oldest, though in flight
    assert (outbox.in_flight, outbox.queued) == (1, 2)
    assert outbox.acked(1) == []  # seq 1 was the dropped one
    assert outbox.acked(2) == [2]
    assert (outbox.acked_total, outbox.dropped_total, outbox.held) == (1, 1, 2)
    batch = outbox.next_batch(10, 100)
    assert batch is not None
    assert (batch.seq, names(batch)) == (3, ["e3", "e4"])


# -- seqs and batches -----------------------------------------------------------------------------


def test_tickets_and_seqs_are_separate_and_seqs_are_assigned_lazily() -> None:
    outbox = filled(3)
    assert outbox.last_ticket == 3
    assert outbox.next_seq == 1  # nothing is numbered until it is sent
    assert outbox.reconnected(40) == []  # e.g. a restarted process reusing its run_id
    assert outbox.next_seq == 41
    batch = outbox.next_batch(2, 100)
    assert batch is not None
    assert (batch.seq, names(batch)) == (41, ["e1", "e2"])
    assert outbox.next_seq == 43
    batch = outbox.next_batch(2, 100)
    assert batch is not None
    assert (batch.seq, names(batch)) == (43, ["e3"])
    assert outbox.acked(43) == [1, 2, 3]


def test_reconnect_below_next_seq_does_not_lower_it() -> None:
    outbox = filled(3)
    outbox.next_batch(3, 100)
    assert outbox.reconnected(0) == []
    assert outbox.next_seq == 4
    batch = outbox.next_batch(10, 100)
    assert batch is not None
    assert (batch.seq, names(batch)) == (1, ["e1", "e2", "e3"])  # same seqs on resend


def test_batches_respect_limits_and_continue_the_seqs() -> None:
    outbox = Outbox()
    for i, size in enumerate([3, 3, 3, 3, 1, 20, 1], start=1):
        outbox.add(event(f"e{i}"), size)
    first = outbox.next_batch(2, 100)
    assert first is not None
    assert (first.seq, names(first)) == (1, ["e1", "e2"])  # by count
    second = outbox.next_batch(10, 6)
    assert second is not None
    assert (second.seq, names(second)) == (3, ["e3", "e4"])  # by bytes: 6 fits, 7 does not
    third = outbox.next_batch(10, 5)
    assert third is not None
    assert (third.seq, names(third)) == (5, ["e5"])  # the next one does not fit
    fourth = outbox.next_batch(10, 5)
    assert fourth is not None
    assert (fourth.seq, names(fourth)) == (6, ["e6"])  # larger than the batch: alone
    fifth = outbox.next_batch(10, 5)
    assert fifth is not None
    assert (fifth.seq, names(fifth)) == (7, ["e7"])
    assert outbox.next_batch(10, 100) is None
    assert (outbox.queued, outbox.in_flight, outbox.next_seq) == (0, 7, 8)


def test_an_oversize_event_ends_a_batch_before_it() -> None:
    outbox = Outbox()
    outbox.add(event("small"), 2)
    outbox.add(event("big"), 50)
    assert names(outbox.next_batch(10, 10)) == ["small"]
    assert names(outbox.next_batch(10, 10)) == ["big"]


def test_acks_are_cumulative_idempotent_and_old_ones_are_harmless() -> None:
    outbox = filled(4, size=5)
    outbox.next_batch(10, 100)
    assert outbox.acked(2) == [1, 2]
    assert (outbox.in_flight, outbox.held_bytes, outbox.acked_total) == (2, 10, 2)
    assert outbox.acked(2) == []
    assert outbox.acked(1) == []
    assert outbox.acked(0) == []
    assert outbox.settled(Ticket(2))
    assert not outbox.settled(Ticket(3))
    assert outbox.acked(4) == [3, 4]
    assert (outbox.held, outbox.held_bytes, outbox.acked_total) == (0, 0, 4)
    assert outbox.settled(Ticket(4))


def test_an_ack_never_settles_an_unsent_event() -> None:
    outbox = filled(3)
    outbox.next_batch(1, 100)
    assert outbox.acked(1) == [1]
    assert outbox.acked(1) == []
    assert (outbox.queued, outbox.held) == (2, 2)


def test_an_ack_beyond_anything_sent_raises_next_seq() -> None:
    # Only another process using this run_id can make the broker store seqs we never sent;
    # numbering new events at or below them would have them discarded as duplicates.
    outbox = filled(2)
    outbox.next_batch(1, 100)
    assert outbox.acked(9) == [1]
    assert outbox.next_seq == 10
    batch = outbox.next_batch(10, 100)
    assert batch is not None
    assert (batch.seq, names(batch)) == (10, ["e2"])


def test_reconnect_settles_what_is_durable_and_resends_the_rest_in_order() -> None:
    outbox = filled(6, size=2)
    assert names(outbox.next_batch(2, 100)) == ["e1", "e2"]
    assert names(outbox.next_batch(2, 100)) == ["e3", "e4"]
    assert (outbox.in_flight, outbox.queued) == (4, 2)
    assert outbox.next_batch(10, 100) is not None  # e5, e6: seqs 5 and 6
    # The connection drops; the broker made seqs up to 2 durable.
    assert outbox.reconnected(2) == [1, 2]
    assert (outbox.in_flight, outbox.queued, outbox.held_bytes) == (0, 4, 8)
    outbox.add(event("e7"), 2)
    batch = outbox.next_batch(3, 100)
    assert batch is not None
    assert (batch.seq, names(batch)) == (3, ["e3", "e4", "e5"])
    batch = outbox.next_batch(3, 100)
    assert batch is not None
    assert (batch.seq, names(batch)) == (6, ["e6", "e7"])  # e7 gets its first seq: 7
    assert outbox.next_seq == 8
    assert outbox.acked(7) == [3, 4, 5, 6, 7]
    assert outbox.acked_total == 7


def test_reconnect_past_everything_sent_settles_it_and_renumbers_after() -> None:
    outbox = filled(3)
    outbox.next_batch(2, 100)
    assert outbox.reconnected(7) == [1, 2]
    assert outbox.next_seq == 8
    batch = outbox.next_batch(10, 100)
    assert batch is not None
    assert (batch.seq, names(batch)) == (8, ["e3"])


def test_an_ack_between_reconnect_and_resend_settles_unsent_held_events() -> None:
    outbox = filled(3)
    outbox.next_batch(3, 100)
    outbox.reconnected(0)
    assert outbox.acked(2) == [1, 2]
    batch = outbox.next_batch(10, 100)
    assert batch is not None
    assert (batch.seq, names(batch)) == (3, ["e3"])


def test_settled_follows_acks_and_drops() -> None:
    outbox = filled(3, policy="drop_oldest", max_events=3)
    outbox.next_batch(10, 100)
    assert not any(outbox.settled(Ticket(t)) for t in (1, 2, 3))
    outbox.acked(1)
    assert [outbox.settled(Ticket(t)) for t in (1, 2, 3)] == [True, False, False]
    outbox.add(event("e4"), 1)  # fits beside e2 and e3
    outbox.add(event("e5"), 1)  # drops e2, in flight
    assert [outbox.settled(Ticket(t)) for t in range(1, 6)] == [True, True, False, False, False]
    outbox.reconnected(3)
    assert [outbox.settled(Ticket(t)) for t in range(1, 6)] == [True, True, True, False, False]
    outbox.next_batch(10, 100)
    outbox.acked(5)
    assert all(outbox.settled(Ticket(t)) for t in range(1, 6))
    assert (outbox.acked_total, outbox.dropped_total, outbox.held) == (4, 1, 0)


# -- a worker, a flaky connection and a broker ----------------------------------------------------


class OutboxMachine(RuleBasedStateMachine):
    """A worker's outbox publishing to a model broker over a connection that fails at random.

    The broker keeps the run's stored events by seq and ``high``, its highest stored seq; it
    stores a seq above ``high``, acknowledges one at or below it without storing (protocol §10)
    and acks ``high`` after every frame. Frames and acks travel in order; a disconnect loses
    whatever is still on the way. A restart replaces the outbox (the worker process died with
    whatever it held) while the run, and so the broker's seqs, go on.
    """

    def __init__(self) -> None:
        super().__init__()
        self.max_events = 4
        self.max_bytes = 20
        self.policy: OutboxPolicy = "block"
        self.outbox = Outbox(max_events=self.max_events, max_bytes=self.max_bytes)
        # The broker.
        self.stored: dict[int, str] = {}
        self.seq_stored_for: dict[str, int] = {}
        self.high = 0
        # The connection.
        self.connected = True
        self.to_broker: deque[schema.Publish] = deque()
        self.to_worker: deque[int] = deque()
        # The current worker process.
        self.generation = 0
        self.name_for: dict[Ticket, str] = {}
        self.size_for: dict[Ticket, int] = {}
        self.seq_sent_for: dict[str, int] = {}
        self.name_sent_as: dict[int, str] = {}
        self.acked: set[Ticket] = set()
        self.dropped: set[Ticket] = set()
        # Every process of the run.
        self.added: list[str] = []
        self.may_be_lost: set[str] = set()  # dropped, or held by a process that died

    @initialize(
        max_events=st.integers(1, 6),
        max_bytes=st.integers(8, 40),
        policy=st.sampled_from(POLICIES),
    )
    def configure(self, max_events: int, max_bytes: int, policy: OutboxPolicy) -> None:
        self.max_events, self.max_bytes, self.policy = max_events, max_bytes, policy
        self.outbox = self.new_outbox()

    def new_outbox(self) -> Outbox:
        return Outbox(max_events=self.max_events, max_bytes=self.max_bytes, policy=self.policy)

    def held_tickets(self) -> list[Ticket]:
        return [t for t in self.name_for if t not in self.acked and t not in self.dropped]

    # -- the worker

    @rule(size=st.integers(1, 12))
    def add(self, size: int) -> None:
        name = f"g{self.generation}-e{len(self.added)}"
        if size > self.max_bytes:
            with pytest.raises(EventTooLargeError):
                self.outbox.add(event(name), size)
            return
        held = self.held_tickets()
        count, total = len(held), sum(self.size_for[t] for t in held)
        fits = count < self.max_events and total + size <= self.max_bytes
        assert self.outbox.has_room(size) == fits
        if not fits and self.policy != "drop_oldest":
            with pytest.raises(OutboxFullError):
                self.outbox.add(event(name), size)
            return
        expected_drops: list[Ticket] = []
        while count >= self.max_events or total + size > self.max_bytes:
            oldest = held[len(expected_drops)]
            expected_drops.append(oldest)
            count, total = count - 1, total - self.size_for[oldest]
        ticket = self.outbox.add(event(name), size)
        assert ticket == len(self.name_for) + 1
        self.name_for[ticket], self.size_for[ticket] = name, size
        self.added.append(name)
        assert self.outbox.take_dropped() == expected_drops
        self.dropped.update(expected_drops)
        self.may_be_lost.update(self.name_for[t] for t in expected_drops)

    @precondition(lambda self: self.connected)
    @rule(max_events=st.integers(1, 4), max_bytes=st.integers(1, 16))
    def send(self, max_events: int, max_bytes: int) -> None:
        queued = self.outbox.queued
        batch = self.outbox.next_batch(max_events, max_bytes)
        if batch is None:
            assert queued == 0
            return
        assert 1 <= len(batch.events) <= max_events
        sizes = [self.size_for[self.ticket_of(name_of(ev))] for ev in batch.events]
        assert len(sizes) == 1 or sum(sizes) <= max_bytes
        for seq, ev in enumerate(batch.events, start=batch.seq):
            name = name_of(ev)
            # An event keeps its seq on every resend; a seq names one event of this process.
            assert self.seq_sent_for.setdefault(name, seq) == seq
            assert self.name_sent_as.setdefault(seq, name) == name
        self.to_broker.append(batch)

    def ticket_of(self, name: str) -> Ticket:
        return next(t for t, n in self.name_for.items() if n == name)

    @precondition(lambda self: bool(self.to_worker))
    @rule()
    def receive_ack(self) -> None:
        seq = self.to_worker.popleft()
        self.settle(self.outbox.acked(seq), seq)

    @precondition(lambda self: not self.connected)
    @rule()
    def reconnect(self) -> None:
        self.settle(self.outbox.reconnected(self.high), self.high)
        assert self.outbox.in_flight == 0
        assert self.outbox.next_seq > self.high
        self.connected = True

    @rule()
    def restart(self) -> None:
        self.disconnect_now()
        self.may_be_lost.update(self.name_for[t] for t in self.held_tickets())
        self.generation += 1
        self.outbox = self.new_outbox()
        self.name_for, self.size_for = {}, {}
        self.seq_sent_for, self.name_sent_as = {}, {}
        self.acked, self.dropped = set(), set()

    def settle(self, tickets: list[Ticket], seq: int) -> None:
        for ticket in tickets:
            assert ticket not in self.acked
            assert ticket not in self.dropped
            name = self.name_for[ticket]
            sent_as = self.seq_sent_for[name]  # never settled unless sent
            assert sent_as <= seq
            assert self.stored.get(sent_as) == name  # ... and stored under its seq
            self.acked.add(ticket)

    # -- the connection and the broker

    @precondition(lambda self: bool(self.to_broker))
    @rule()
    def deliver(self) -> None:
        batch = self.to_broker.popleft()
        for seq, ev in enumerate(batch.events, start=batch.seq):
            name = name_of(ev)
            if seq <= self.high:
                # Taken for a resend: it must be one, or a new event is silently lost.
                assert self.stored.get(seq) == name
            else:
                assert name not in self.seq_stored_for  # one event, one seq
                self.stored[seq] = name
                self.seq_stored_for[name] = seq
                self.high = seq
        self.to_worker.append(self.high)

    @precondition(lambda self: self.connected)
    @rule(data=st.data())
    def repeat_an_old_ack(self, data: st.DataObject) -> None:
        self.to_worker.append(data.draw(st.integers(0, self.high), label="old ack"))

    @precondition(lambda self: self.connected)
    @rule()
    def disconnect(self) -> None:
        self.disconnect_now()

    def disconnect_now(self) -> None:
        self.connected = False
        self.to_broker.clear()
        self.to_worker.clear()

    @rule()
    def drain_over_a_good_connection(self) -> None:
        """With a connection that holds, everything held ends up stored and acknowledged."""
        if not self.connected:
            self.reconnect()
        while self.to_broker or self.to_worker or self.outbox.queued:
            if self.to_broker:
                self.deliver()
            elif self.to_worker:
                self.receive_ack()
            else:
                self.send(3, 25)
        assert self.outbox.held == 0
        for name in self.added:
            assert name in self.seq_stored_for or name in self.may_be_lost

    def teardown(self) -> None:
        self.drain_over_a_good_connection()

    # -- invariants

    @invariant()
    def counters_add_up(self) -> None:
        outbox = self.outbox
        held = self.held_tickets()
        assert outbox.last_ticket == len(self.name_for)
        assert outbox.last_ticket == outbox.acked_total + outbox.dropped_total + outbox.held
        assert (outbox.acked_total, outbox.dropped_total) == (len(self.acked), len(self.dropped))
        assert outbox.held == outbox.queued + outbox.in_flight == len(held)
        assert outbox.held_bytes == sum(self.size_for[t] for t in held)
        assert outbox.held <= self.max_events
        assert outbox.held_bytes <= self.max_bytes

    @invariant()
    def settled_means_stored_or_dropped(self) -> None:
        for ticket in self.name_for:
            assert self.outbox.settled(ticket) == (ticket in self.acked or ticket in self.dropped)


OutboxMachine.TestCase.settings = settings(max_examples=250, stateful_step_count=50, deadline=None)
test_outbox_state_machine = OutboxMachine.TestCase
