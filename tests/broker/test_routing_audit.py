"""The routing core names every mutex change in the semaphores it emits, with who made it and
the grace deadline, and records every action call to a run here, however it ends."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

import schema
from broker._access import OPEN
from broker._effects import CallTimeout, Effect, LeaseDue, Now, Reply, Send, Write
from broker._routing import Router
from broker._store import StoredWorkspace
from tests.broker.routing_support import (
    GRACE,
    T0,
    FakePeer,
    acquire,
    at,
    call,
    commit,
    frames,
    of,
    router,
    start_worker,
)


def written(effects: Sequence[Effect]) -> list[schema.Payload]:
    """The payloads of the events the effects write, durable-first order."""
    return [event.payload for write in of(Write, effects) for event in write.events]


def semaphores(effects: Sequence[Effect]) -> list[tuple[object, ...]]:
    """(mutex_change, mutex_by, holder, fence, grace_until) of each semaphores change written."""
    return [
        (p.mutex_change, p.mutex_by, p.holder, p.fence, p.grace_until)
        for p in written(effects)
        if isinstance(p, schema.SemaphoresChange)
    ]


def records(effects: Sequence[Effect]) -> list[schema.CallRecord]:
    return [p for p in written(effects) if isinstance(p, schema.CallRecord)]


def utc(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def test_grants_releases_breaks_and_handoffs_name_the_change_and_who_made_it() -> None:
    core = router()
    holder_peer, holder, _ = start_worker(core, "ws", "holder")
    _, waiter, _ = start_worker(core, "ws", "waiter")
    granted = core.mutex_acquire(holder, acquire(1), at(1))
    assert semaphores(granted) == [("granted", "holder", "holder", 1, None)]
    commit(core, granted)
    commit(core, core.mutex_acquire(waiter, acquire(2, wait=True), at(2)))
    admin = FakePeer("admin")
    broken = core.mutex_break(Reply(admin, 9), "ws", by="alice", now=at(3))
    # A break with a run waiting is two changes in one write: the break, then the grant.
    (write,) = of(Write, broken)
    assert write.reply == Reply(admin, 9)  # answered once the break is durable
    assert semaphores(broken) == [
        ("broken", "alice", None, 1, None),
        ("granted", "waiter", "waiter", 2, None),
    ]
    assert schema.MutexLost(fence=1, reason="broken") in frames(holder_peer, broken)
    # The workers are pushed the semaphores as they end up, the grant with its attribution.
    after = commit(core, broken)
    (push,) = frames(holder_peer, after)[:1]
    assert isinstance(push, schema.SemaphoresPush)
    assert (push.mutex_change, push.mutex_by, push.holder) == ("granted", "waiter", "waiter")
    released = core.mutex_release(waiter, schema.MutexRelease(id=3), at(4))
    assert semaphores(released) == [("released", "waiter", None, 2, None)]
    commit(core, released)
    state = core.workspaces["ws"].state.semaphores
    assert (state.mutex_change, state.mutex_by, state.has_mutex) == ("released", "waiter", False)


def test_the_holder_leaving_sets_grace_until_and_its_return_or_expiry_says_so() -> None:
    core = router()
    _, holder, _ = start_worker(core, "ws", "holder")
    commit(core, core.mutex_acquire(holder, acquire(1), at(1)))
    left = core.worker_ended(holder, at(10))
    assert semaphores(left) == [("holder_left", "holder", "holder", 1, utc(10 + GRACE))]
    commit(core, left)
    # A catch while the holder is gone keeps the deadline and names no mutex change.
    operator = FakePeer("operator")
    caught = core.set_caught(Reply(operator, 4), "ws", True, by="bob", reason="look", now=at(12))
    (catch,) = written(caught)
    assert isinstance(catch, schema.SemaphoresChange)
    assert (catch.caught, catch.by, catch.mutex_change, catch.mutex_by) == (
        True,
        "bob",
        None,
        None,
    )
    assert catch.grace_until == utc(10 + GRACE)
    commit(core, caught)
    _, back, returned = start_worker(core, "ws", "holder", now=at(20))
    assert semaphores(returned) == [("holder_back", "holder", "holder", 1, None)]
    left_again = core.worker_ended(back, at(30))
    assert semaphores(left_again) == [("holder_left", "holder", "holder", 1, utc(30 + GRACE))]
    commit(core, left_again)
    epoch = core.workspaces["ws"].epoch
    expired = core.timer_due(LeaseDue("ws", epoch), at(30 + GRACE))
    assert semaphores(expired) == [("expired", "holder", None, 1, None)]
    (change,) = written(expired)
    assert isinstance(change, schema.SemaphoresChange)
    assert (change.caught, change.by) == (True, "bob")  # the catch stays as it was


def test_a_restart_restores_a_held_mutex_in_a_new_grace_and_says_until_when() -> None:
    core = router()
    _, holder, _ = start_worker(core, "ws", "holder")
    commit(core, core.mutex_acquire(holder, acquire(1), at(1)))
    commit(core, core.worker_ended(holder, at(2)))
    state = core.workspaces["ws"].state
    assert state.semaphores.grace_until == utc(2 + GRACE)
    restarted = Router(core.limits, node="a")
    stored = StoredWorkspace(state=state, first_offset=1, run_seqs={})
    restored = restarted.restore([stored], Now(500.0, utc(600)))
    assert semaphores(restored) == [("holder_left", "holder", "holder", 1, utc(600 + GRACE))]


def started_call(core: Router, request_id: int, now: Now) -> tuple[FakePeer, int]:
    caller = FakePeer(f"caller-{request_id}")
    core.watcher_started(caller, OPEN)
    effects = core.call(caller, call(request_id=request_id), label="ops", now=now)
    (request,) = [send.frame for send in of(Send, effects)]
    assert isinstance(request, schema.ActionRequest)
    return caller, request.call


def test_every_ending_of_a_call_is_recorded_once_in_the_runs_workspace() -> None:
    core = router()
    _, run, _ = start_worker(core, "ws", "r", actions=["restart"])
    endings: list[schema.CallRecord] = []
    for request_id, (ok, error) in enumerate(
        [
            (True, None),
            (False, schema.ActionFailure(type="KeyError", message="'x'")),
            (False, schema.ActionFailure(type="pierhead.bad_call", message="bad arguments")),
        ],
        start=1,
    ):
        _, number = started_call(core, request_id, at(request_id))
        result = schema.ActionResult(call=number, ok=ok, error=error)
        answered = core.action_result(run, result, at(request_id + 0.5))
        endings += records(answered)
        assert records(core.action_result(run, result, at(9))) == []  # a second answer
    _, number = started_call(core, 4, at(4))
    endings += records(core.timer_due(CallTimeout(number), at(6)))
    assert records(core.timer_due(CallTimeout(number), at(7))) == []
    started_call(core, 5, at(8))
    endings += records(core.worker_ended(run, at(9)))
    assert [(r.call > 0, r.outcome, r.action, r.run_id, r.caller, r.args) for r in endings] == [
        (True, outcome, "restart", "r", "ops", {"n": 1})
        for outcome in ("ok", "failed", "bad_call", "timeout", "worker_gone")
    ]
    assert [r.error.type if r.error else None for r in endings] == [
        None,
        "KeyError",
        "pierhead.bad_call",
        None,
        None,
    ]
    assert [r.started for r in endings] == [utc(1), utc(2), utc(3), utc(4), utc(8)]
    assert len({r.call for r in endings}) == 5


def test_a_call_whose_caller_left_is_still_recorded_and_answers_nobody() -> None:
    core = router()
    worker, run, _ = start_worker(core, "ws", "r", actions=["restart"])
    caller, number = started_call(core, 1, at(1))
    core.watcher_ended(caller)
    answered = core.action_result(run, schema.ActionResult(call=number, ok=True), at(2))
    assert [r.outcome for r in records(answered)] == ["ok"]
    assert frames(caller, answered) == []
    # Refused calls never reached a worker: nothing to record.
    refused = core.call(caller, call(action="nope"), label="ops", now=at(3))
    assert records(refused) == []
    assert of(Send, refused) != []
    assert frames(worker, refused) == []
