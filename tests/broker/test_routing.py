"""The routing core without sockets: frames, commits and timers in, effects out.

Peers are recorders; the writer is played by :func:`commit`, which turns the ``Write`` effects
into the ``Commit`` the group-commit writer would hand back once durable. Time is passed in.
"""

from __future__ import annotations

import schema
from broker._access import OPEN
from broker._coordinator import (
    CallAnswered,
    CallFailed,
    CallForward,
    CommitNotice,
    LocalCoordinator,
    Notice,
    RunClaimed,
    SemaphoresNotice,
)
from broker._effects import (
    Ack,
    CallTimeout,
    CancelTimer,
    Close,
    LeaseDue,
    Log,
    Reply,
    RunExpiry,
    Send,
    StartTimer,
    Tell,
    Wake,
    Write,
)
from broker._routing import Router, RoutingLimits
from tests.broker.routing_support import (
    GRACE,
    T0,
    FakePeer,
    acquire,
    at,
    call,
    commit,
    events,
    frames,
    of,
    published,
    router,
    start_worker,
)


def test_a_batch_is_acknowledged_once_durable_and_its_resend_at_once_without_a_write() -> None:
    core = router()
    peer, run, _ = start_worker(core, "ws", "r")
    first = core.publish(run, schema.Publish(seq=1, events=events("a", "b", "c")), at(1))
    assert [seq for seq, _ in published(first)] == [1, 2, 3]
    assert of(Ack, first) == []  # nothing is acknowledged before it is durable
    assert of(Ack, commit(core, first)) == [Ack(peer, 3)]
    resend = core.publish(run, schema.Publish(seq=1, events=events("a", "b", "c")), at(2))
    assert resend == [Ack(peer, 3)]


def test_a_write_names_the_events_that_change_more_than_the_position() -> None:
    # The notification rules look at these alone: most writes are logs and scalars only.
    core = router()
    _, run, _ = start_worker(core, "ws", "r")
    error = schema.Event(
        payload=schema.WorkspaceEvent(message="disk full", severity="error"), create_time=T0
    )
    batch = [*events("a"), error, *events("b")]
    (write,) = of(Write, core.publish(run, schema.Publish(seq=1, events=batch), at(1)))
    assert write.changes is not None
    assert [event.payload for event in write.changes] == [error.payload]
    assert write.changes[0] is write.events[1]
    (quiet,) = of(Write, core.publish(run, schema.Publish(seq=4, events=events("c")), at(2)))
    assert quiet.changes == []
    caught = core.set_caught(Reply(FakePeer("op"), 1), "ws", True, by="op", reason=None, now=at(3))
    (made,) = of(Write, caught)
    assert made.changes is not None
    assert [type(event.payload) for event in made.changes] == [schema.SemaphoresChange]


def test_an_overlapping_resend_stores_only_the_new_events_with_the_next_offsets() -> None:
    core = router()
    _, run, _ = start_worker(core, "ws", "r")
    first = core.publish(run, schema.Publish(seq=1, events=events("a", "b")), at(1))
    offsets = [offset for _, offset in published(first)]
    overlap = core.publish(run, schema.Publish(seq=2, events=events("b", "c", "d")), at(2))
    assert published(overlap) == [(3, offsets[-1] + 1), (4, offsets[-1] + 2)]


def test_a_resend_of_what_is_still_on_its_way_waits_for_its_commit() -> None:
    core = router()
    peer, run, _ = start_worker(core, "ws", "r")
    first = core.publish(run, schema.Publish(seq=1, events=events("a", "b")), at(1))
    assert core.publish(run, schema.Publish(seq=1, events=events("a", "b")), at(2)) == []
    assert of(Ack, commit(core, first)) == [Ack(peer, 2)]


def test_dedupe_positions_belong_to_the_run_not_to_its_connection() -> None:
    core = router()
    _, old, _ = start_worker(core, "ws", "r")
    commit(core, core.publish(old, schema.Publish(seq=1, events=events("a", "b")), at(1)))
    peer, new, _ = start_worker(core, "ws", "r", now=at(2))
    assert core.publish(new, schema.Publish(seq=2, events=events("b")), at(3)) == [Ack(peer, 2)]
    _, other, _ = start_worker(core, "ws", "other", now=at(4))
    fresh = core.publish(other, schema.Publish(seq=1, events=events("x")), at(5))
    assert [seq for seq, _ in published(fresh)] == [1]


# Takeover -----------------------------------------------------------------------------------


def test_a_second_connection_of_a_run_closes_the_first_with_4009_and_claims_it_cluster_wide() -> (
    None
):
    core = router()
    first, old, _ = start_worker(core, "ws", "r")
    _, new, effects = start_worker(core, "ws", "r", now=at(5))
    assert of(Close, effects) == [
        Close(first, 4009, "replaced by a newer connection of the same run")
    ]
    assert Tell(RunClaimed("a", "ws", "r")) in effects
    # The old connection's end is not the run's: no presence, no grace, no timer.
    assert core.worker_ended(old, at(6)) == []
    assert core.runs["ws"]["r"] is new


def test_a_claim_from_another_node_closes_the_run_here_and_our_own_claim_does_nothing() -> None:
    core = router()
    peer, run, _ = start_worker(core, "ws", "r")
    assert core.remote(RunClaimed("a", "ws", "r"), at(1)) == []
    effects = core.remote(RunClaimed("b", "ws", "r"), at(1))
    assert of(Close, effects) == [
        Close(peer, 4009, "replaced by a newer connection of the same run")
    ]
    assert "r" not in core.runs["ws"]
    assert core.worker_ended(run, at(2)) == []


# Followers ----------------------------------------------------------------------------------


def test_a_commit_wakes_the_watchers_of_its_workspace_only() -> None:
    core = router()
    _, run, _ = start_worker(core, "ws-a", "r")
    start_worker(core, "ws-b", "r")
    follower, bystander = FakePeer("follower"), FakePeer("bystander")
    for peer, pattern in ((follower, "ws-a"), (bystander, "ws-b")):
        core.watcher_started(peer, OPEN)
        subscribed = core.subscribe(peer, schema.Subscribe(id=1, pattern=pattern))
        assert of(Wake, subscribed) == [Wake((peer,))]
    after = commit(core, core.publish(run, schema.Publish(seq=1, events=events("a")), at(1)))
    assert of(Wake, after) == [Wake({follower})]
    last = core.workspaces["ws-a"].state.last_offset
    assert Tell(CommitNotice("ws-a", core.workspaces["ws-a"].epoch, last)) in after


def test_a_workspace_created_later_is_joined_from_its_start_and_a_deleted_one_removed() -> None:
    core = router()
    watcher = FakePeer("watcher")
    core.watcher_started(watcher, OPEN)
    core.subscribe(watcher, schema.Subscribe(id=1, pattern="deploy-*", from_="earliest"))
    workspace, created = core.workspace("deploy-1", at(0))
    (joined,) = frames(watcher, created)
    assert isinstance(joined, schema.Joined)
    assert core.followers.of(["deploy-1"]) == {watcher}
    admin = FakePeer("admin")
    found, _ = core.delete_begin(Reply(admin, 7), "deploy-1", force=False)
    assert found is workspace
    ended = core.delete_end(Reply(admin, 7), workspace, by="admin")
    (removed,) = frames(watcher, ended)
    assert removed == schema.Removed(sub=1, workspace="deploy-1", epoch=workspace.epoch)
    assert core.followers.of(["deploy-1"]) == set()


def test_a_resume_that_is_not_exact_says_why_in_the_log() -> None:
    core = router()
    workspace, created = core.workspace("deploy-1", at(0))
    commit(core, created)
    watcher = FakePeer("watcher")
    core.watcher_started(watcher, OPEN)
    exact = {"deploy-1": schema.Cursor(epoch=workspace.epoch, offset=0)}
    resumed = core.subscribe(watcher, schema.Subscribe(id=1, pattern="deploy-*", from_=exact))
    assert of(Log, resumed) == []
    elsewhere = {
        "deploy-1": schema.Cursor(epoch=workspace.epoch - 1, offset=7),
        "deploy-2": schema.Cursor(epoch=3, offset=2),
    }
    resumed = core.subscribe(watcher, schema.Subscribe(id=2, pattern="deploy-*", from_=elsewhere))
    (subscribed,) = frames(watcher, resumed)
    assert isinstance(subscribed, schema.Subscribed)
    assert not subscribed.recovered
    assert of(Log, resumed) == [
        Log(
            "resume_not_exact",
            {
                "workspace": "deploy-1",
                "cursor_epoch": workspace.epoch - 1,
                "cursor_offset": 7,
                "epoch": workspace.epoch,
                "first_offset": 1,
                "last_offset": 0,
                "mirror": False,
            },
        ),
        Log("resume_not_exact", {"workspace": "deploy-2", "cursor_epoch": 3, "cursor_offset": 2}),
    ]


def test_a_reader_ahead_of_the_writers_commit_resumes_where_it_is_once_the_commit_lands() -> None:
    # Another node reads a commit from the store, and delivers it, as soon as it is there; the
    # writer counts it as committed only when the store's answer comes back. A reader that
    # moves to the writer in between is neither told it lost something nor sent it again.
    core = router()
    _, run, _ = start_worker(core, "ws", "r")
    workspace = core.workspaces["ws"]
    on_its_way = core.publish(run, schema.Publish(seq=1, events=events("a", "b")), at(1))
    assigned_end = published(on_its_way)[-1][1]
    assert assigned_end == workspace.state.last_offset + 2
    watcher = FakePeer("watcher")
    core.watcher_started(watcher, OPEN)
    cursor = {"ws": schema.Cursor(epoch=workspace.epoch, offset=assigned_end)}
    resumed = core.subscribe(watcher, schema.Subscribe(id=1, pattern="ws", from_=cursor))
    (subscribed,) = frames(watcher, resumed)
    assert isinstance(subscribed, schema.Subscribed)
    assert subscribed.recovered
    assert of(Log, resumed) == []
    (sub,) = core.followers.subscriptions(watcher).values()
    assert sub.cursors["ws"].offset == assigned_end
    commit(core, on_its_way)
    assert workspace.state.last_offset == assigned_end  # nothing left to deliver to it
    beyond = {"ws": schema.Cursor(epoch=workspace.epoch, offset=assigned_end + 1)}
    confused = core.subscribe(watcher, schema.Subscribe(id=2, pattern="ws", from_=beyond))
    (subscribed,) = frames(watcher, confused)
    assert isinstance(subscribed, schema.Subscribed)
    assert not subscribed.recovered


def test_a_subscription_past_the_limit_is_refused() -> None:
    core = Router(RoutingLimits(max_subscriptions_per_session=1))
    watcher = FakePeer("watcher")
    core.watcher_started(watcher, OPEN)
    core.subscribe(watcher, schema.Subscribe(id=1, pattern="*"))
    (refused,) = frames(watcher, core.subscribe(watcher, schema.Subscribe(id=2, pattern="*")))
    assert isinstance(refused, schema.ErrorReply)
    assert refused.code == schema.ErrorCode.RATE_LIMITED


# Action routing -----------------------------------------------------------------------------


def test_a_call_goes_to_the_runs_session_and_its_result_to_the_caller_only() -> None:
    core = router()
    worker, run, _ = start_worker(core, "ws", "r", actions=["restart"])
    caller, other = FakePeer("caller"), FakePeer("other")
    core.watcher_started(caller, OPEN)
    core.watcher_started(other, OPEN)
    forwarded = core.call(caller, call(), label="ops", now=at(10))
    (request,) = frames(worker, forwarded)
    assert isinstance(request, schema.ActionRequest)
    assert (request.name, request.args, request.caller) == ("restart", {"n": 1}, "ops")
    assert of(StartTimer, forwarded) == [StartTimer(CallTimeout(request.call), 12.0)]
    result = schema.ActionResult(call=request.call, ok=True, result="done")
    answered = core.action_result(run, result, at(11))
    assert frames(caller, answered) == [schema.CallResult(id=5, ok=True, result="done")]
    assert frames(other, answered) == []
    assert frames(worker, answered) == []
    assert of(CancelTimer, answered) == [CancelTimer(CallTimeout(request.call))]
    # A second answer to the same call finds nobody waiting.
    assert of(Send, core.action_result(run, result, at(11))) == []


def test_a_call_that_times_out_or_loses_its_worker_ends_once_with_an_error() -> None:
    core = router()
    _, run, _ = start_worker(core, "ws", "r", actions=["restart"])
    caller = FakePeer("caller")
    core.watcher_started(caller, OPEN)
    (request,) = of(Send, core.call(caller, call(request_id=1), label="ops", now=at(0)))
    assert isinstance(request.frame, schema.ActionRequest)
    (timeout,) = frames(caller, core.timer_due(CallTimeout(request.frame.call), at(2)))
    assert isinstance(timeout, schema.ErrorReply)
    assert (timeout.id, timeout.code) == (1, schema.ErrorCode.TIMEOUT)
    assert core.timer_due(CallTimeout(request.frame.call), at(3)) == []
    core.call(caller, call(request_id=2), label="ops", now=at(4))
    (gone,) = frames(caller, core.worker_ended(run, at(5)))
    assert isinstance(gone, schema.ErrorReply)
    assert (gone.id, gone.code) == (2, schema.ErrorCode.NOT_FOUND)


def test_a_call_to_an_unknown_run_or_action_is_not_found() -> None:
    core = router()
    start_worker(core, "ws", "r", actions=["restart"])
    caller = FakePeer("caller")
    core.watcher_started(caller, OPEN)
    (no_run,) = frames(caller, core.call(caller, call(run_id="x"), label="ops", now=at(0)))
    (no_action,) = frames(caller, core.call(caller, call(action="nope"), label="ops", now=at(0)))
    (nowhere,) = frames(caller, core.call(caller, call(workspace="nope"), label="ops", now=at(0)))
    for refused in (no_run, no_action, nowhere):
        assert isinstance(refused, schema.ErrorReply)
        assert refused.code == schema.ErrorCode.NOT_FOUND
    assert isinstance(no_run, schema.ErrorReply)
    assert no_run.message == "run x is not connected to workspace 'ws'"
    assert isinstance(no_action, schema.ErrorReply)
    assert "offers: restart" in no_action.message
    assert isinstance(nowhere, schema.ErrorReply)
    assert nowhere.message == "no workspace 'nope'"


def test_a_call_to_a_run_held_by_another_node_is_forwarded_and_answered_back() -> None:
    core = router()
    # The run is connected in the workspace's state, but not here: another node holds it.
    start_worker(core, "ws", "r", actions=["restart"])
    core.remote(RunClaimed("b", "ws", "r"), at(1))
    caller = FakePeer("caller")
    core.watcher_started(caller, OPEN)
    effects = core.call(caller, call(), label="ops", now=at(2))
    (forward,) = [tell.notice for tell in of(Tell, effects)]
    assert isinstance(forward, CallForward)
    assert (forward.origin, forward.run_id, forward.caller) == ("a", "r", "ops")
    failure = schema.ActionFailure(type="RuntimeError", message="boom")
    answer = CallAnswered("a", forward.call, ok=False, error=failure)
    assert frames(caller, core.remote(answer, at(3))) == [
        schema.CallResult(id=5, ok=False, error=failure)
    ]


def test_a_call_from_another_node_reaches_the_run_here_and_its_result_goes_back_there() -> None:
    core = router()
    worker, run, _ = start_worker(core, "ws", "r", actions=["restart"])
    notice = CallForward("b", 41, "ws", "r", "restart", {}, "ops@b", 5.0)
    (request,) = frames(worker, core.remote(notice, at(1)))
    assert isinstance(request, schema.ActionRequest)
    assert request.caller == "ops@b"
    answered = core.action_result(run, schema.ActionResult(call=request.call, ok=True), at(2))
    assert of(Tell, answered) == [Tell(CallAnswered("b", 41, ok=True))]
    missing = core.remote(CallForward("b", 42, "ws", "gone", "restart", {}, "x", 5.0), at(2))
    (failed,) = [tell.notice for tell in of(Tell, missing)]
    assert isinstance(failed, CallFailed)
    assert (failed.origin, failed.call, failed.code) == ("b", 42, schema.ErrorCode.NOT_FOUND)


def test_the_single_node_coordinator_fails_a_forwarded_call_at_once() -> None:
    heard: list[Notice] = []

    class Inbox:
        def remote(self, notice: Notice) -> None:
            heard.append(notice)

    local = LocalCoordinator()
    local.start(Inbox())
    local.tell(CommitNotice("ws", 1, 5))
    local.tell(CallForward("local", 3, "ws", "r", "restart", {}, "ops", 1.0))
    assert heard == [
        CallFailed(
            "local", 3, schema.ErrorCode.NOT_FOUND, "run r is not connected to workspace 'ws'"
        )
    ]


# Catch and release --------------------------------------------------------------------------


def test_a_catch_is_answered_once_durable_and_pushed_to_every_worker_of_the_workspace() -> None:
    core = router()
    first, _, _ = start_worker(core, "ws", "r1")
    second, _, _ = start_worker(core, "ws", "r2")
    elsewhere, _, _ = start_worker(core, "other", "r3")
    operator = FakePeer("operator")
    core.watcher_started(operator, OPEN)
    caught = core.set_caught(Reply(operator, 9), "ws", True, by="ops", reason="hold", now=at(1))
    (write,) = of(Write, caught)
    assert write.reply == Reply(operator, 9)
    assert of(Send, caught) == []  # nobody hears of it before it is durable
    after = commit(core, caught)
    for worker in (first, second):
        (push,) = frames(worker, after)
        assert isinstance(push, schema.SemaphoresPush)
        assert (push.workspace, push.caught) == ("ws", True)
    assert frames(elsewhere, after) == []
    (notice,) = [
        tell.notice for tell in of(Tell, after) if isinstance(tell.notice, SemaphoresNotice)
    ]
    assert notice.push.caught
    # Another node's change reaches the workers connected here, pushed.
    remote = core.remote(
        SemaphoresNotice(schema.SemaphoresPush(workspace="other", caught=True)), at(2)
    )
    assert [push.peer for push in of(Send, remote)] == [elsewhere]


def test_catching_an_unknown_workspace_is_not_found() -> None:
    core = router()
    operator = FakePeer("operator")
    (refused,) = frames(
        operator, core.set_caught(Reply(operator, 1), "nope", True, by="x", reason=None, now=at(0))
    )
    assert isinstance(refused, schema.ErrorReply)
    assert refused.code == schema.ErrorCode.NOT_FOUND


# Timers, with the time passed in ------------------------------------------------------------


def test_a_holder_that_disconnects_keeps_the_mutex_for_the_grace_then_the_waiter_gets_it() -> None:
    core = router()
    holder_peer, holder, _ = start_worker(core, "ws", "holder")
    waiter_peer, waiter, _ = start_worker(core, "ws", "waiter")
    granted = commit(core, core.mutex_acquire(holder, acquire(1), at(1)))
    assert schema.MutexGranted(id=1, fence=1) in frames(holder_peer, granted)
    queued = core.mutex_acquire(waiter, acquire(2, wait=True), at(2))
    assert of(Send, queued) == []
    assert of(Write, queued) == []
    epoch = core.workspaces["ws"].epoch
    ended = core.worker_ended(holder, at(10))
    assert StartTimer(LeaseDue("ws", epoch), 10 + GRACE) in ended
    assert StartTimer(RunExpiry("ws", epoch, "holder"), 10 + GRACE) in ended
    commit(core, ended)
    due = core.timer_due(LeaseDue("ws", epoch), at(10 + GRACE))
    (write,) = of(Write, due)
    *_, change = [event.payload for event in write.events]
    assert isinstance(change, schema.SemaphoresChange)
    assert (change.holder, change.fence) == ("waiter", 2)
    # The grant is answered only once the new fence is durable.
    assert frames(waiter_peer, of(Send, due)) == []
    assert schema.MutexGranted(id=2, fence=2) in frames(waiter_peer, commit(core, due))
    assert of(StartTimer, due) == []  # nothing left to wait for: the timer that fired is all
    expired = core.timer_due(RunExpiry("ws", epoch, "holder"), at(10 + GRACE))
    (presence,) = [event.payload for write in of(Write, expired) for event in write.events]
    assert presence == schema.Presence(run_id="holder", state="expired")


def test_a_release_is_answered_and_a_broken_holder_told_only_once_the_change_is_durable() -> None:
    # Told before, a holder whose release was lost with the node would ask again after a
    # restart, find itself the stored holder and be handed the fence it had given up.
    core = router()
    holder_peer, holder, _ = start_worker(core, "ws", "holder")
    waiter_peer, waiter, _ = start_worker(core, "ws", "waiter")
    commit(core, core.mutex_acquire(holder, acquire(1), at(1)))
    core.mutex_acquire(waiter, acquire(2, wait=True), at(2))
    released = core.mutex_release(holder, schema.MutexRelease(id=3), at(3))
    assert of(Send, released) == []
    after = commit(core, released)
    assert schema.Ok(id=3) in frames(holder_peer, of(Send, after))
    assert schema.MutexGranted(id=2, fence=2) in frames(waiter_peer, after)
    admin = FakePeer("admin")
    broken = core.mutex_break(Reply(admin, 4), "ws", by="admin", now=at(4))
    assert of(Send, broken) == []
    after = commit(core, broken)
    assert schema.MutexLost(fence=2, reason="broken") in frames(waiter_peer, of(Send, after))


def test_a_holder_asking_again_is_answered_with_its_fence_once_that_fence_is_durable() -> None:
    core = router()
    holder_peer, holder, _ = start_worker(core, "ws", "holder")
    first = core.mutex_acquire(holder, acquire(1), at(1))
    # Its answer was lost to a reconnect before the grant was stored: the second answer waits.
    again = core.mutex_acquire(holder, acquire(2), at(2))
    assert of(Send, again) == []
    assert schema.MutexGranted(id=2, fence=1) in frames(holder_peer, again)
    after = commit(core, [*first, *again])
    grants = [
        frame for frame in frames(holder_peer, after) if isinstance(frame, schema.MutexGranted)
    ]
    assert grants == [schema.MutexGranted(id=1, fence=1), schema.MutexGranted(id=2, fence=1)]
    # Once the fence is stored, asking again is answered at once.
    stored = core.mutex_acquire(holder, acquire(3), at(3))
    assert frames(holder_peer, of(Send, stored)) == [schema.MutexGranted(id=3, fence=1)]


def test_a_run_back_within_the_grace_keeps_its_place_and_its_expiry_is_cancelled() -> None:
    core = router()
    _, run, _ = start_worker(core, "ws", "r")
    epoch = core.workspaces["ws"].epoch
    commit(core, core.worker_ended(run, at(1)))
    _, _, back = start_worker(core, "ws", "r", now=at(5))
    assert CancelTimer(RunExpiry("ws", epoch, "r")) in back
    # A timer that fires all the same (it raced the cancel) finds the run connected.
    assert core.timer_due(RunExpiry("ws", epoch, "r"), at(1 + GRACE)) == []


def test_a_lease_timer_is_started_only_when_its_deadline_changes() -> None:
    core = router()
    _, holder, _ = start_worker(core, "ws", "holder")
    _, waiter, _ = start_worker(core, "ws", "waiter")
    commit(core, core.mutex_acquire(holder, acquire(1), at(0)))
    first = core.mutex_acquire(waiter, schema.MutexAcquire(id=2, wait=True, timeout_s=5.0), at(1))
    epoch = core.workspaces["ws"].epoch
    assert of(StartTimer, first) == [StartTimer(LeaseDue("ws", epoch), 6.0)]
    again = core.mutex_acquire(holder, acquire(3), at(2))  # idempotent re-acquire
    assert of(StartTimer, again) == []
    assert of(CancelTimer, again) == []
    # The timer fired and nothing else waits: it is neither restarted nor cancelled.
    timed_out = core.timer_due(LeaseDue("ws", epoch), at(6))
    assert of(StartTimer, timed_out) == []
    assert of(CancelTimer, timed_out) == []
    # A new deadline starts it again.
    _, holder_gone, _ = start_worker(core, "ws", "holder")
    assert StartTimer(LeaseDue("ws", epoch), 7 + GRACE) in core.worker_ended(holder_gone, at(7))


def test_timers_of_a_deleted_epoch_do_nothing() -> None:
    core = router()
    _, run, _ = start_worker(core, "ws", "r")
    workspace = core.workspaces["ws"]
    commit(core, core.worker_ended(run, at(1)))
    admin = FakePeer("admin")
    found, _ = core.delete_begin(Reply(admin, 1), "ws", force=True)
    assert found is workspace
    ended = core.delete_end(Reply(admin, 1), workspace, by="admin")
    assert CancelTimer(RunExpiry("ws", workspace.epoch, "r")) in ended
    assert core.timer_due(RunExpiry("ws", workspace.epoch, "r"), at(1 + GRACE)) == []
    assert core.timer_due(LeaseDue("ws", workspace.epoch), at(1 + GRACE)) == []
