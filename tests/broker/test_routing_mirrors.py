"""The routing core's side of several nodes: a workspace another node writes is followed
(mirrored) from what the store holds, and taken over when its writer is gone. Pure logic: the
writing node is a second router, its commits read back as a follower would read them."""

from __future__ import annotations

import msgspec

import schema
from broker._access import OPEN
from broker._coordinator import CallForward
from broker._effects import Effect, Reply, Send, Tell, Wake, Write
from broker._routing import Router, RoutingLimits
from broker._store import StoredWorkspace
from tests.broker.routing_support import (
    FakePeer,
    at,
    call,
    commit,
    events,
    frames,
    of,
    start_worker,
)


def writer_and_follower() -> tuple[Router, Router]:
    return Router(RoutingLimits(), node="writer"), Router(RoutingLimits(), node="follower")


def written(effects: list[Effect]) -> list[schema.EventMsg]:
    return [event for write in of(Write, effects) for event in write.events]


def follow(writer: Router, follower: Router, name: str, new: list[schema.EventMsg]) -> list[Effect]:
    """What the follower does when it reads ``new`` events of ``name`` from the store."""
    workspace = writer.workspaces[name]
    return follower.mirrored(workspace.state, workspace.first_offset, new)


def test_a_followed_workspace_is_joined_from_its_start_and_grows_with_what_is_read() -> None:
    writer, follower = writer_and_follower()
    watcher = FakePeer("watcher")
    follower.watcher_started(watcher, OPEN)
    follower.subscribe(watcher, schema.Subscribe(id=1, pattern="ws", from_="earliest"))
    _, run, _ = start_worker(writer, "ws", "r")
    appeared = follow(writer, follower, "ws", [])
    (joined,) = frames(watcher, appeared)
    assert isinstance(joined, schema.Joined)
    assert joined.snapshot.last_offset == 0  # from its start: the events are read from the store
    assert Wake({watcher}) in appeared
    mirror = follower.workspaces["ws"]
    assert mirror.mirror
    assert mirror.state == writer.workspaces["ws"].state

    published = writer.publish(run, schema.Publish(seq=1, events=events("a", "b")), at(1))
    commit(writer, published)
    grown = follow(writer, follower, "ws", written(published))
    assert Wake({watcher}) in grown
    assert mirror.state == writer.workspaces["ws"].state
    tail = mirror.tail.after(mirror.state.last_offset - 2, 10)
    assert tail == written(published)


def test_a_follower_far_behind_jumps_to_the_stored_state_and_reads_the_rest_from_the_store() -> (
    None
):
    writer, follower = writer_and_follower()
    _, run, _ = start_worker(writer, "ws", "r")
    follow(writer, follower, "ws", [])
    before = follower.workspaces["ws"].state.last_offset
    commit(writer, writer.publish(run, schema.Publish(seq=1, events=events("a", "b")), at(1)))
    follow(writer, follower, "ws", [])  # too far behind to read what it missed
    mirror = follower.workspaces["ws"]
    assert mirror.state == writer.workspaces["ws"].state
    assert mirror.tail.after(before, 10) is None  # not in memory: watchers read the store


def test_a_call_to_a_run_of_a_followed_workspace_goes_to_its_writer() -> None:
    writer, follower = writer_and_follower()
    start_worker(writer, "ws", "r")
    follow(writer, follower, "ws", [])
    caller = FakePeer("caller")
    follower.watcher_started(caller, OPEN)
    effects = follower.call(caller, call("r"), label="ops", now=at(1))
    (forward,) = [effect.notice for effect in of(Tell, effects)]
    assert isinstance(forward, CallForward)
    assert (forward.origin, forward.workspace, forward.run_id) == ("follower", "ws", "r")


def test_a_workspace_deleted_elsewhere_is_removed_from_its_followers() -> None:
    writer, follower = writer_and_follower()
    start_worker(writer, "ws", "r")
    watcher = FakePeer("watcher")
    follower.watcher_started(watcher, OPEN)
    follower.subscribe(watcher, schema.Subscribe(id=1, pattern="*", from_="earliest"))
    follow(writer, follower, "ws", [])
    epoch = follower.workspaces["ws"].epoch
    removed = follower.mirror_removed("ws", epoch)
    assert frames(watcher, removed) == [schema.Removed(sub=1, workspace="ws", epoch=epoch)]
    assert "ws" not in follower.workspaces


def test_a_store_read_from_before_a_delete_does_not_bring_the_epoch_back() -> None:
    # A follow reads the store, the workspace is deleted meanwhile (here, where it was
    # written, or elsewhere), and the read arrives after: it is ignored. A later epoch is not.
    writer, follower = writer_and_follower()
    start_worker(writer, "ws", "r")
    follow(writer, follower, "ws", [])
    stale = writer.workspaces["ws"].state
    follower.mirror_removed("ws", stale.epoch)
    assert follower.mirrored(stale, 1, []) == []
    assert "ws" not in follower.workspaces

    admin = FakePeer("admin")
    workspace, _ = writer.delete_begin(Reply(admin, 1), "ws", force=True)
    assert workspace is not None
    writer.delete_end(Reply(admin, 1), workspace, by="admin")
    assert writer.mirrored(stale, 1, []) == []
    assert "ws" not in writer.workspaces

    # Made again, on a node whose clock gave it an epoch lower or higher: followed.
    for epoch in (stale.epoch - 1, stale.epoch + 1):
        again = msgspec.structs.replace(stale, epoch=epoch)
        follower.mirrored(again, 1, [])
        assert follower.workspaces["ws"].epoch == epoch


def test_taking_over_a_followed_workspace_restores_it_as_after_a_restart() -> None:
    """Its writer died: what was connected to it is offline, the holder's mutex in grace."""
    writer, follower = writer_and_follower()
    _, run, _ = start_worker(writer, "ws", "holder")
    commit(writer, writer.mutex_acquire(run, schema.MutexAcquire(id=1), at(1)))
    follow(writer, follower, "ws", [])
    watcher = FakePeer("watcher")
    follower.watcher_started(watcher, OPEN)
    follower.subscribe(watcher, schema.Subscribe(id=2, pattern="ws", from_="earliest"))
    stored = writer.workspaces["ws"]
    saved = StoredWorkspace(stored.state, stored.first_offset, dict(stored.acked_seqs))
    taken = follower.claimed(saved, "ws", at(2))
    workspace = follower.workspaces["ws"]
    assert not workspace.mirror
    made = [event.payload for event in written(taken)]
    assert schema.Presence(run_id="holder", state="disconnected", client="test") in made
    grace = [p for p in made if isinstance(p, schema.SemaphoresChange)]
    assert [change.mutex_change for change in grace] == ["holder_left"]
    assert workspace.acked_seqs == stored.acked_seqs
    assert Wake({watcher}) in taken
    assert not [frame for frame in frames(watcher, taken) if isinstance(frame, schema.Joined)]
    # Taken over once: a second claim changes nothing.
    assert follower.claimed(saved, "ws", at(3)) == []
    assert not of(Send, follower.mirrored(stored.state, 1, []))


def test_a_resume_names_a_workspace_not_read_here_yet_and_goes_on_from_its_cursor() -> None:
    writer = Router(RoutingLimits(), node="writer")
    follower = Router(RoutingLimits(), node="follower", several_nodes=True)
    _, run, _ = start_worker(writer, "ws", "r")
    commit(writer, writer.publish(run, schema.Publish(seq=1, events=events("a", "b")), at(1)))
    epoch = writer.workspaces["ws"].epoch
    watcher = FakePeer("watcher")
    follower.watcher_started(watcher, OPEN)
    resume = {"ws": schema.Cursor(epoch=epoch, offset=2)}
    (subscribed,) = frames(
        watcher, follower.subscribe(watcher, schema.Subscribe(id=1, pattern="*", from_=resume))
    )
    assert isinstance(subscribed, schema.Subscribed)
    assert subscribed.recovered
    follow(writer, follower, "ws", [])
    (sub,) = follower.followers.subscriptions(watcher).values()
    assert (sub.cursors["ws"].epoch, sub.cursors["ws"].offset) == (epoch, 2)


def test_a_resume_ahead_of_a_copy_that_lags_is_exact_and_waits_for_it() -> None:
    writer, follower = writer_and_follower()
    _, run, _ = start_worker(writer, "ws", "r")
    follow(writer, follower, "ws", [])
    behind = follower.workspaces["ws"].state.last_offset
    commit(writer, writer.publish(run, schema.Publish(seq=1, events=events("a", "b")), at(1)))
    ahead = schema.Cursor(epoch=writer.workspaces["ws"].epoch, offset=behind + 2)
    watcher = FakePeer("watcher")
    follower.watcher_started(watcher, OPEN)
    subscribe = schema.Subscribe(id=1, pattern="ws", from_={"ws": ahead})
    (subscribed,) = frames(watcher, follower.subscribe(watcher, subscribe))
    assert isinstance(subscribed, schema.Subscribed)
    assert subscribed.recovered
    (sub,) = follower.followers.subscriptions(watcher).values()
    assert sub.cursors["ws"].offset == behind + 2
