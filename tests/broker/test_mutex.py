"""The mutex lease: grants and fences, the wait queue, grace after disconnect, expiry, break."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

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

from broker._mutex import (
    Conflict,
    Granted,
    HolderChanged,
    Lost,
    MutexEffect,
    MutexLease,
    NotHeld,
    NotHolder,
    Queued,
    Released,
    Superseded,
    WaitTimedOut,
)

GRACE = 30.0


def held_by(run_id: str, *, fence: int = 0) -> MutexLease:
    lease = MutexLease(fence)
    lease.acquire(run_id, 1, wait=False, timeout_s=None, now=0.0)
    return lease


def wait_for(
    lease: MutexLease, run_id: str, request_id: int, *, timeout_s: float | None = None, now: float
) -> list[MutexEffect]:
    return lease.acquire(run_id, request_id, wait=True, timeout_s=timeout_s, now=now)


# Construction and restore


def test_a_new_lease_is_free_with_the_given_fence() -> None:
    lease = MutexLease(7)
    assert (lease.holder, lease.fence, lease.waiting, lease.in_grace) == (None, 7, (), False)
    assert lease.next_deadline() is None
    assert MutexLease().fence == 0


def test_a_negative_fence_is_refused() -> None:
    with pytest.raises(ValueError, match="fence"):
        MutexLease(-1)


def test_a_restored_holder_is_in_grace_from_boot() -> None:
    lease = MutexLease.restored("a", 12, now=500.0, grace_s=GRACE)
    assert (lease.holder, lease.fence, lease.in_grace) == ("a", 12, True)
    assert lease.next_deadline() == 530.0
    assert lease.expire(529.9) == []
    assert lease.expire(530.0) == [Lost("a", 12, "expired"), HolderChanged(None, 12)]


def test_a_restored_holder_that_reconnects_keeps_the_lease() -> None:
    lease = MutexLease.restored("a", 12, now=500.0, grace_s=GRACE)
    assert lease.reconnected("a") == []
    assert not lease.in_grace
    assert lease.next_deadline() is None
    assert lease.expire(10_000.0) == []
    assert lease.holder == "a"


def test_restoring_a_free_lease_keeps_only_the_fence() -> None:
    lease = MutexLease.restored(None, 4, now=0.0, grace_s=GRACE)
    assert (lease.holder, lease.fence, lease.in_grace) == (None, 4, False)


# Acquire


def test_acquiring_a_free_lease_grants_the_next_fence() -> None:
    lease = MutexLease(3)
    effects = lease.acquire("a", 10, wait=False, timeout_s=None, now=0.0)
    assert effects == [Granted("a", 10, 4), HolderChanged("a", 4)]
    assert (lease.holder, lease.fence) == ("a", 4)


def test_reacquiring_by_the_holder_returns_the_current_fence_without_a_change() -> None:
    lease = held_by("a")
    assert lease.acquire("a", 2, wait=False, timeout_s=None, now=1.0) == [Granted("a", 2, 1)]
    assert lease.acquire("a", 3, wait=True, timeout_s=5.0, now=1.0) == [Granted("a", 3, 1)]
    assert lease.waiting == ()


def test_reacquiring_by_the_holder_in_grace_ends_the_grace() -> None:
    lease = held_by("a")
    lease.disconnected("a", now=1.0, grace_s=GRACE)
    assert lease.acquire("a", 2, wait=False, timeout_s=None, now=2.0) == [Granted("a", 2, 1)]
    assert not lease.in_grace
    assert lease.next_deadline() is None


def test_a_held_lease_without_wait_is_a_conflict_naming_the_holder() -> None:
    lease = held_by("a")
    assert lease.acquire("b", 5, wait=False, timeout_s=None, now=1.0) == [Conflict("b", 5, "a")]
    assert (lease.holder, lease.fence, lease.waiting) == ("a", 1, ())


def test_a_held_lease_with_wait_queues_in_arrival_order() -> None:
    lease = held_by("a")
    assert wait_for(lease, "b", 5, now=1.0) == [Queued("b", 5)]
    assert wait_for(lease, "c", 6, now=2.0) == [Queued("c", 6)]
    assert lease.waiting == ("b", "c")
    assert lease.holder == "a"


def test_asking_again_while_waiting_keeps_the_place_and_supersedes_the_old_request() -> None:
    lease = held_by("a")
    wait_for(lease, "b", 5, timeout_s=10.0, now=1.0)
    wait_for(lease, "c", 6, now=1.0)
    assert wait_for(lease, "b", 7, timeout_s=10.0, now=4.0) == [Superseded("b", 5), Queued("b", 7)]
    assert lease.waiting == ("b", "c")
    assert lease.next_deadline() == 14.0  # the new request's deadline replaced the old one
    assert lease.release("a", 8) == [
        Released("a", 8, 1),
        Granted("b", 7, 2),
        HolderChanged("b", 2),
    ]


def test_resending_the_same_waiting_request_is_not_superseded() -> None:
    lease = held_by("a")
    wait_for(lease, "b", 5, now=1.0)
    assert wait_for(lease, "b", 5, now=2.0) == [Queued("b", 5)]
    assert lease.waiting == ("b",)


def test_a_try_from_a_waiting_run_is_a_conflict_and_leaves_it_waiting() -> None:
    lease = held_by("a")
    wait_for(lease, "b", 5, now=1.0)
    assert lease.acquire("b", 6, wait=False, timeout_s=None, now=2.0) == [Conflict("b", 6, "a")]
    assert lease.waiting == ("b",)


@pytest.mark.parametrize("timeout_s", [0.0, -1.0, float("nan")])
def test_a_timeout_must_be_positive(timeout_s: float) -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        MutexLease().acquire("a", 1, wait=True, timeout_s=timeout_s, now=0.0)


# Release


def test_releasing_with_nobody_waiting_frees_the_lease_and_keeps_the_fence() -> None:
    lease = held_by("a", fence=4)
    assert lease.release("a", 9) == [Released("a", 9, 5), HolderChanged(None, 5)]
    assert (lease.holder, lease.fence) == (None, 5)


def test_releasing_grants_the_first_waiter_with_a_new_fence() -> None:
    lease = held_by("a")
    wait_for(lease, "b", 5, now=1.0)
    wait_for(lease, "c", 6, now=2.0)
    assert lease.release("a", 7) == [Released("a", 7, 1), Granted("b", 5, 2), HolderChanged("b", 2)]
    assert lease.release("b", 8) == [Released("b", 8, 2), Granted("c", 6, 3), HolderChanged("c", 3)]
    assert lease.waiting == ()


def test_only_the_holder_may_release() -> None:
    lease = held_by("a")
    wait_for(lease, "b", 5, now=1.0)
    assert lease.release("b", 6) == [NotHolder("b", 6)]
    assert lease.release("c", 7) == [NotHolder("c", 7)]
    assert (lease.holder, lease.waiting) == ("a", ("b",))
    assert MutexLease().release("a", 1) == [NotHolder("a", 1)]


def test_a_new_grant_after_release_gets_a_new_fence() -> None:
    lease = held_by("a")
    lease.release("a", 2)
    assert lease.acquire("a", 3, wait=False, timeout_s=None, now=1.0)[0] == Granted("a", 3, 2)


# Disconnect, reconnect, grace


def test_a_disconnected_holder_keeps_the_lease_in_grace() -> None:
    lease = held_by("a")
    assert lease.disconnected("a", now=10.0, grace_s=GRACE) == []
    assert (lease.holder, lease.in_grace, lease.next_deadline()) == ("a", True, 40.0)
    assert lease.acquire("b", 2, wait=False, timeout_s=None, now=11.0) == [Conflict("b", 2, "a")]


def test_a_second_disconnect_does_not_extend_the_grace() -> None:
    lease = held_by("a")
    lease.disconnected("a", now=10.0, grace_s=GRACE)
    lease.disconnected("a", now=20.0, grace_s=GRACE)
    assert lease.next_deadline() == 40.0


def test_reconnecting_in_grace_cancels_the_deadline() -> None:
    lease = held_by("a")
    lease.disconnected("a", now=10.0, grace_s=GRACE)
    assert lease.reconnected("a") == []
    assert (lease.holder, lease.in_grace, lease.next_deadline()) == ("a", False, None)
    assert lease.expire(100.0) == []


def test_reconnecting_a_run_that_holds_nothing_changes_nothing() -> None:
    lease = held_by("a")
    lease.disconnected("a", now=10.0, grace_s=GRACE)
    assert lease.reconnected("b") == []
    assert lease.in_grace


def test_a_disconnected_waiter_leaves_the_queue_unanswered() -> None:
    lease = held_by("a")
    wait_for(lease, "b", 5, timeout_s=3.0, now=1.0)
    wait_for(lease, "c", 6, now=1.0)
    assert lease.disconnected("b", now=2.0, grace_s=GRACE) == []
    assert lease.waiting == ("c",)
    assert lease.next_deadline() is None


def test_a_negative_grace_is_refused() -> None:
    with pytest.raises(ValueError, match="grace_s"):
        held_by("a").disconnected("a", now=0.0, grace_s=-1.0)


# Expire


def test_the_grace_running_out_loses_the_lease_and_grants_the_next_waiter() -> None:
    lease = held_by("a")
    wait_for(lease, "b", 5, now=1.0)
    lease.disconnected("a", now=10.0, grace_s=GRACE)
    assert lease.expire(39.9) == []
    assert lease.expire(40.0) == [
        Lost("a", 1, "expired"),
        Granted("b", 5, 2),
        HolderChanged("b", 2),
    ]
    assert (lease.holder, lease.in_grace, lease.waiting) == ("b", False, ())


def test_a_zero_grace_expires_at_the_next_timer() -> None:
    lease = held_by("a")
    lease.disconnected("a", now=10.0, grace_s=0.0)
    assert lease.next_deadline() == 10.0
    assert lease.expire(10.0) == [Lost("a", 1, "expired"), HolderChanged(None, 1)]


def test_a_waiter_whose_timeout_passed_is_answered_and_removed() -> None:
    lease = held_by("a")
    wait_for(lease, "b", 5, timeout_s=5.0, now=1.0)
    wait_for(lease, "c", 6, timeout_s=2.0, now=1.0)
    wait_for(lease, "d", 7, now=1.0)
    assert lease.next_deadline() == 3.0
    assert lease.expire(3.0) == [WaitTimedOut("c", 6)]
    assert lease.next_deadline() == 6.0
    assert lease.expire(100.0) == [WaitTimedOut("b", 5)]
    assert (lease.holder, lease.waiting, lease.next_deadline()) == ("a", ("d",), None)


def test_a_late_timer_handles_deadlines_in_order() -> None:
    lease = held_by("a")
    wait_for(lease, "b", 5, timeout_s=5.0, now=0.0)  # times out at 5, before the grace ends
    wait_for(lease, "c", 6, timeout_s=20.0, now=0.0)  # still waiting when the grace ends at 10
    wait_for(lease, "d", 7, timeout_s=15.0, now=0.0)
    lease.disconnected("a", now=0.0, grace_s=10.0)
    assert lease.expire(50.0) == [
        WaitTimedOut("b", 5),
        Lost("a", 1, "expired"),
        Granted("c", 6, 2),
        WaitTimedOut("d", 7),
        HolderChanged("c", 2),
    ]
    assert lease.next_deadline() is None


def test_a_waiter_timing_out_with_the_grace_is_not_granted() -> None:
    lease = held_by("a")
    wait_for(lease, "b", 5, timeout_s=10.0, now=0.0)
    lease.disconnected("a", now=0.0, grace_s=10.0)
    assert lease.expire(10.0) == [
        WaitTimedOut("b", 5),
        Lost("a", 1, "expired"),
        HolderChanged(None, 1),
    ]


# Break


def test_breaking_tells_the_holder_and_grants_the_next_waiter() -> None:
    lease = held_by("a")
    wait_for(lease, "b", 5, now=1.0)
    assert lease.break_lease("admin") == [
        Lost("a", 1, "broken"),
        Granted("b", 5, 2),
        HolderChanged("b", 2),
    ]


def test_breaking_a_lease_in_grace_drops_the_grace() -> None:
    lease = held_by("a")
    lease.disconnected("a", now=1.0, grace_s=GRACE)
    assert lease.break_lease("admin") == [Lost("a", 1, "broken"), HolderChanged(None, 1)]
    assert (lease.in_grace, lease.next_deadline()) == (False, None)


def test_breaking_a_free_lease_is_an_error() -> None:
    lease = MutexLease(3)
    assert lease.break_lease("admin") == [NotHeld("admin")]
    assert (lease.holder, lease.fence) == (None, 3)


# Deadlines and effects


def test_next_deadline_is_the_earliest_of_grace_and_timeouts() -> None:
    lease = held_by("a")
    wait_for(lease, "b", 5, timeout_s=50.0, now=0.0)
    assert lease.next_deadline() == 50.0
    lease.disconnected("a", now=0.0, grace_s=GRACE)
    assert lease.next_deadline() == 30.0
    wait_for(lease, "c", 6, timeout_s=1.0, now=0.0)
    assert lease.next_deadline() == 1.0


def test_effects_are_immutable_values() -> None:
    effect = Granted("a", 1, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        effect.fence = 2  # type: ignore[misc]
    assert not hasattr(effect, "__dict__")
    assert effect == Granted("a", 1, 1)
    assert len({effect, Granted("a", 1, 1)}) == 1


# A random walk over every operation, checking the invariants after each step

RUNS = ("a", "b", "c", "d")
runs = st.sampled_from(RUNS)
timeouts = st.none() | st.floats(min_value=0.5, max_value=60.0)
graces = st.floats(min_value=0.0, max_value=40.0)
steps = st.floats(min_value=0.0, max_value=25.0)


class MutexMachine(RuleBasedStateMachine):
    """Drives one lease the way the broker does and replays its effects against a model."""

    def __init__(self) -> None:
        super().__init__()
        self.lease = MutexLease()
        self.now = 0.0
        self.last_request = 0
        self.last_fence = 0
        self.connected = set(RUNS)
        # The model of the queue: run -> request id of its queued acquire, in line order.
        self.queue: dict[str, int] = {}

    @initialize(holder=st.none() | runs, fence=st.integers(0, 1000), grace_s=graces)
    def boot(self, holder: str | None, fence: int, grace_s: float) -> None:
        self.lease = MutexLease.restored(holder, fence, now=self.now, grace_s=grace_s)
        self.last_fence = fence
        if holder is not None:
            self.connected.discard(holder)  # its session did not survive the restart

    def next_request(self) -> int:
        self.last_request += 1
        return self.last_request

    def check(self, call: Callable[[], list[MutexEffect]]) -> None:
        """Makes the call and replays its effects against the model, checking each on the way."""
        before = holder = self.lease.holder
        effects = call()
        answered: set[int] = set()
        for index, effect in enumerate(effects):
            match effect:
                case Granted(run_id, request_id, fence) if holder == run_id:
                    assert fence == self.last_fence  # idempotent re-acquire
                    assert request_id not in answered
                    answered.add(request_id)
                case Granted(run_id, request_id, fence):
                    assert holder is None, "granted only when free"
                    assert fence == self.last_fence + 1, "fences go up by one per grant"
                    if self.queue:  # a free lease with waiters goes to the first in line
                        assert next(iter(self.queue.items())) == (run_id, request_id)
                        del self.queue[run_id]
                    assert request_id not in answered
                    answered.add(request_id)
                    self.last_fence = fence
                    holder = run_id
                case Released(run_id, _, fence) | Lost(run_id, fence, _):
                    assert (holder, fence) == (run_id, self.last_fence)
                    holder = None
                case Queued(run_id, request_id):
                    assert holder not in (None, run_id)
                    self.queue[run_id] = request_id  # an existing entry keeps its place
                case Superseded(run_id, request_id):
                    assert self.queue[run_id] == request_id
                case WaitTimedOut(run_id, request_id):
                    assert self.queue.pop(run_id) == request_id
                case Conflict(run_id, _, named):
                    assert named == holder != run_id
                case NotHolder(run_id, _):
                    assert holder != run_id
                case NotHeld(_):
                    assert holder is None
                case HolderChanged(new_holder, fence):
                    assert index == len(effects) - 1, "HolderChanged comes last"
                    assert (new_holder, fence) == (holder, self.last_fence)
        signalled = bool(effects) and isinstance(effects[-1], HolderChanged)
        assert signalled == (holder != before)
        assert (self.lease.holder, self.lease.fence) == (holder, self.last_fence)

    @precondition(lambda self: self.connected)
    @rule(data=st.data(), wait=st.booleans(), timeout_s=timeouts)
    def acquire(self, data: st.DataObject, wait: bool, timeout_s: float | None) -> None:
        run_id = data.draw(st.sampled_from(sorted(self.connected)))  # only live sessions send
        request_id = self.next_request()
        self.check(
            lambda: self.lease.acquire(
                run_id, request_id, wait=wait, timeout_s=timeout_s, now=self.now
            )
        )

    @precondition(lambda self: self.connected)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        run_id = data.draw(st.sampled_from(sorted(self.connected)))
        request_id = self.next_request()
        self.check(lambda: self.lease.release(run_id, request_id))

    @precondition(lambda self: self.connected)
    @rule(data=st.data(), grace_s=graces)
    def disconnect(self, data: st.DataObject, grace_s: float) -> None:
        run_id = data.draw(st.sampled_from(sorted(self.connected)))
        self.connected.discard(run_id)
        self.queue.pop(run_id, None)  # dropped unanswered: its session is gone
        self.check(lambda: self.lease.disconnected(run_id, self.now, grace_s))

    @precondition(lambda self: len(self.connected) < len(RUNS))
    @rule(data=st.data())
    def reconnect(self, data: st.DataObject) -> None:
        run_id = data.draw(st.sampled_from(sorted(set(RUNS) - self.connected)))
        self.connected.add(run_id)
        self.check(lambda: self.lease.reconnected(run_id))

    @rule(step=steps)
    def expire_later(self, step: float) -> None:
        self.now += step
        self.check(lambda: self.lease.expire(self.now))
        self.no_deadline_at_or_before_now()

    @precondition(lambda self: self.lease.next_deadline() is not None)
    @rule()
    def expire_at_the_deadline(self) -> None:
        deadline = self.lease.next_deadline()
        assert deadline is not None
        self.now = max(self.now, deadline)
        self.check(lambda: self.lease.expire(self.now))
        self.no_deadline_at_or_before_now()

    @rule()
    def break_lease(self) -> None:
        self.check(lambda: self.lease.break_lease("admin"))

    def no_deadline_at_or_before_now(self) -> None:
        deadline = self.lease.next_deadline()
        assert deadline is None or deadline > self.now

    @invariant()
    def the_holder_is_not_waiting(self) -> None:
        assert self.lease.holder not in self.lease.waiting

    @invariant()
    def the_queue_is_the_model_queue_without_duplicates(self) -> None:
        assert self.lease.waiting == tuple(self.queue)
        assert len(set(self.lease.waiting)) == len(self.lease.waiting)

    @invariant()
    def nobody_waits_for_a_free_lease(self) -> None:
        assert self.lease.holder is not None or not self.lease.waiting

    @invariant()
    def only_live_sessions_wait(self) -> None:
        assert set(self.lease.waiting) <= self.connected

    @invariant()
    def in_grace_exactly_while_the_holder_is_away(self) -> None:
        away = self.lease.holder is not None and self.lease.holder not in self.connected
        assert self.lease.in_grace == away

    @invariant()
    def no_deadline_is_in_the_past(self) -> None:
        # Time only moves on through expire(), which leaves nothing due behind.
        deadline = self.lease.next_deadline()
        assert deadline is None or deadline >= self.now


MutexMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=60, deadline=None)
test_mutex_state_machine = MutexMachine.TestCase
