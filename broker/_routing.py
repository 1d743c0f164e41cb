"""The broker's routing core: every decision of the broker, and no I/O.

Sessions' frames, commits of the writer, due timers and notices from other nodes come in as
method calls with the time passed in (:class:`Now`); decisions go out as effects
(``broker/_effects.py``) that the asyncio adapter (``broker/_broker.py``) carries out in order:
send a frame to a peer, acknowledge, close with a code, write to the store and answer when
durable, start or cancel a timer, tell the other nodes. Sessions are reached only as peers
(``broker/_peer.py``), so all of this is tested without a socket.

What it decides:

* offsets: events get their workspace offsets here, in arrival order (``Workspace``); nobody
  sees them before the commit that makes them durable comes back through :meth:`committed`;
* dedupe: a run's events at or below the highest seq given an offset are not stored again, and
  a resend of what is durable is acknowledged at once, keyed by (workspace epoch, run, seq);
* followers: a commit wakes the watchers that follow its workspaces (``Followers``);
* takeover: a second connection of a run closes the first with 4009, on this node or, through
  a ``RunClaimed`` notice, on another;
* the mutex lease of each workspace (``MutexLease``) and its timer, and what each change of it
  is called in the stream (``mutex_change``, ``mutex_by``, ``grace_until``);
* catch and release, pushed to the workspace's workers once durable;
* action calls, routed to the run's session and the result back to the caller only; each call
  to a run here ends with a ``call`` record in the run's workspace stream.
"""

from __future__ import annotations

import datetime
import fnmatch
from collections import OrderedDict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Final

from schema import (
    ActionCall,
    ActionResult,
    ActionSpec,
    CallRecord,
    DetailsChange,
    ErrorCode,
    ErrorReply,
    EventMsg,
    Joined,
    MutexAcquire,
    MutexGranted,
    MutexLost,
    MutexRelease,
    Ok,
    Payload,
    Presence,
    Publish,
    Removed,
    SemaphoresChange,
    SemaphoresPush,
    Subscribe,
    Subscribed,
    Unsubscribe,
    WorkspaceDetails,
    WorkspaceSemaphores,
    WorkspaceState,
    semaphores_of,
)

from . import _mutex as mutex
from ._access import Grant
from ._actions import ActionCalls, RemoteCaller
from ._coordinator import (
    CallAnswered,
    CallFailed,
    CallForward,
    CommitNotice,
    Notice,
    RunClaimed,
    SemaphoresNotice,
)
from ._effects import (
    Ack,
    CallTimeout,
    CancelTimer,
    Close,
    Effect,
    LeaseDue,
    Log,
    Now,
    Reply,
    RunExpiry,
    Send,
    StartTimer,
    Tell,
    TimerKey,
    Wake,
    Write,
)
from ._followers import Followers
from ._mutex import MutexLease
from ._peer import Peer, WatcherPeer, WorkerPeer
from ._store import Commit, StoredWorkspace
from ._subscription import ReadCursor, start_cursor
from ._tail import Tail, TailBudget
from ._workspace import Workspace, WorkspaceClosedError

_payload_of = attrgetter("payload")

REPLACED_CODE = 4009
DELETED_CODE = 4003


@dataclass(frozen=True, slots=True)
class RoutingLimits:
    """The settings the routing decisions depend on (a part of ``BrokerConfig``)."""

    mutex_grace_s: float = 30.0
    max_subscriptions_per_session: int = 64
    max_pending_calls_per_session: int = 64
    tail_events: int = 131_072


@dataclass(eq=False, slots=True)
class Run:
    """A run's live connection on this node: what a worker session is to the router."""

    peer: WorkerPeer
    workspace: Workspace
    run_id: str
    client: str
    actions: dict[str, ActionSpec] = field(default_factory=dict)
    replaced: bool = False
    """A newer connection of the same run took over: this one's end is not the run's."""


DELETED_KEPT: Final = 1024
"""How many recently deleted workspace epochs the router remembers (see
:meth:`Router.mirrored`)."""


class Router:
    def __init__(
        self, limits: RoutingLimits, *, node: str = "local", several_nodes: bool = False
    ) -> None:
        self.limits = limits
        self.node = node
        self.several_nodes = several_nodes
        """Other nodes share the store: a workspace unknown here may be written elsewhere."""
        self.workspaces: dict[str, Workspace] = {}
        self.leases: dict[str, MutexLease] = {}
        self.runs: dict[str, dict[str, Run]] = {}
        """Live runs by workspace, then run id."""
        self.followers = Followers()
        self.calls = ActionCalls(node, self._record_call)
        self.tails = TailBudget(limits.tail_events)
        self._lease_deadlines: dict[str, float] = {}
        """The deadline each workspace's lease timer is set for, to restart it only on a
        change."""
        self._last_epoch = 0
        self._deleted: OrderedDict[tuple[str, int], None] = OrderedDict()
        """The workspace epochs deleted lately, here or elsewhere. Each epoch, not the latest
        per name: epochs come from the creating node's clock, so a workspace made again on
        another node may have a lower one."""

    # Workspaces -----------------------------------------------------------------------

    def restore(self, stored: Iterable[StoredWorkspace], now: Now) -> list[Effect]:
        """Bring back stored workspaces; workers that were connected are now offline."""
        effects: list[Effect] = []
        for saved in stored:
            effects += self._restore(saved, now)
        effects.append(Log("restored", {"workspaces": len(self.workspaces)}))
        return effects

    def _restore(self, saved: StoredWorkspace, now: Now) -> list[Effect]:
        effects: list[Effect] = []
        workspace = Workspace(
            saved.state, first_offset=saved.first_offset, run_seqs=dict(saved.run_seqs)
        )
        self.workspaces[workspace.name] = workspace
        self._last_epoch = max(self._last_epoch, workspace.epoch)
        state = saved.state
        cut_off = [
            Presence(run_id=worker.run_id, state="disconnected", client=worker.client)
            for worker in state.workers
            if worker.connected
        ]
        if cut_off:
            effects += self._emit(workspace, cut_off, now.utc)
        for worker in state.workers:
            effects.append(self._expire_later(workspace, worker.run_id, now))
        semaphores = state.semaphores
        holder = semaphores.holder if semaphores.has_mutex else None
        self.leases[workspace.name] = MutexLease.restored(
            holder, semaphores.fence, now=now.mono, grace_s=self.limits.mutex_grace_s
        )
        # The holder's session did not survive the restart: its grace starts again now.
        effects += self._grace_change(workspace, now, restarted=True)
        effects += self._schedule_lease(workspace)
        return effects

    # Workspaces another node writes -----------------------------------------------------

    def mirrored(
        self, state: WorkspaceState, first_offset: int, events: Sequence[EventMsg]
    ) -> list[Effect]:
        """Another node writes this workspace: ``state`` as the store holds it, after
        ``events`` (the ones read since this node's last look, in order; none when the
        workspace is new here or in a new epoch)."""
        name = state.name
        workspace = self.workspaces.get(name)
        if workspace is not None and not workspace.mirror:
            return []  # written here: this node's own commits keep it
        if (name, state.epoch) in self._deleted:
            # Read from the store before a delete of that epoch landed there, and arrived
            # after it was deleted here: it must not come back.
            return []
        effects: list[Effect] = []
        if workspace is not None and workspace.epoch != state.epoch:
            effects += self.mirror_removed(name, workspace.epoch)
            workspace = None
        if workspace is None:
            workspace = Workspace(state, first_offset=first_offset)
            workspace.mirror = True
            self.workspaces[name] = workspace
            self._last_epoch = max(self._last_epoch, workspace.epoch)
            for peer, sub in self.followers.join(name, workspace.epoch):
                effects.append(Send(peer, Joined(sub=sub.sub, snapshot=workspace.initial_state)))
        elif events:
            workspace.pending = state
            workspace.next_offset = state.last_offset + 1
            workspace.committed(events, state)
            self.tails.added(workspace.tail, len(events))
        elif state.last_offset > workspace.state.last_offset:
            # Too far behind to read what it missed: it jumps to the stored state, and its
            # watchers read the events in between from the store.
            self.tails.released(workspace.tail)
            workspace.tail = Tail(next_offset=state.last_offset + 1)
            workspace.pending = state
            workspace.next_offset = state.last_offset + 1
            workspace.committed((), state)
        workspace.first_offset = max(workspace.first_offset, first_offset)
        woken = self.followers.of([name])
        if woken:
            effects.append(Wake(woken))
        return effects

    def mirror_removed(self, name: str, epoch: int) -> list[Effect]:
        """That epoch of a workspace another node writes is gone from the store (deleted)."""
        workspace = self.workspaces.get(name)
        if workspace is None or not workspace.mirror or workspace.epoch != epoch:
            return []
        del self.workspaces[name]
        self._note_deleted(name, epoch)
        self.tails.released(workspace.tail)
        return [
            Send(peer, Removed(sub=sub.sub, workspace=name, epoch=epoch))
            for peer, sub in self.followers.leave(name, epoch)
        ]

    def claimed(self, saved: StoredWorkspace | None, name: str, now: Now) -> list[Effect]:
        """This node now writes the workspace ``name`` (it was free: its node stopped, or it
        is new), as the store holds it (``None``: it holds nothing of it). What was connected
        to it is offline, as after a restart."""
        workspace = self.workspaces.get(name)
        if workspace is not None and not workspace.mirror:
            return []
        effects: list[Effect] = []
        if workspace is not None and (saved is None or saved.state.epoch != workspace.epoch):
            effects += self.mirror_removed(name, workspace.epoch)
            workspace = None
        if saved is None:
            return effects
        if workspace is not None:
            self.tails.released(workspace.tail)
        effects += self._restore(saved, now)
        if workspace is None:
            restored = self.workspaces[name]
            for peer, sub in self.followers.join(name, restored.epoch):
                effects.append(Send(peer, Joined(sub=sub.sub, snapshot=restored.initial_state)))
        effects.append(Log("workspace_claimed", {"workspace": name, "epoch": saved.state.epoch}))
        woken = self.followers.of([name])
        if woken:
            effects.append(Wake(woken))
        return effects

    def workspace(self, name: str, now: Now) -> tuple[Workspace, list[Effect]]:
        """The live workspace of that name, created (with a new epoch) if there is none.

        Raises WorkspaceClosedError while the name's current epoch is being deleted.
        """
        workspace = self.workspaces.get(name)
        if workspace is not None and workspace.closed:
            raise WorkspaceClosedError(f"workspace {name!r} is being deleted; connect again")
        if workspace is not None:
            return workspace, []
        self._last_epoch = max(self._last_epoch + 1, int(now.utc.timestamp() * 1_000_000))
        workspace = Workspace.create(name, epoch=self._last_epoch, created=now.utc)
        self.workspaces[name] = workspace
        self.leases[name] = MutexLease()
        effects: list[Effect] = [Write(states={workspace.key: workspace.pending})]
        for peer, sub in self.followers.join(name, workspace.epoch):
            effects.append(Send(peer, Joined(sub=sub.sub, snapshot=workspace.initial_state)))
        effects.append(Log("workspace_created", {"workspace": name, "epoch": workspace.epoch}))
        return workspace, effects

    def _current(self, workspace: Workspace) -> bool:
        return self.workspaces.get(workspace.name) is workspace

    def _find(self, name: str, reply: Reply) -> Workspace | list[Effect]:
        workspace = self.workspaces.get(name)
        if workspace is None:
            return [_error(reply, ErrorCode.NOT_FOUND, f"no workspace {name!r}")]
        return workspace

    # Workers --------------------------------------------------------------------------

    def worker_started(
        self,
        peer: WorkerPeer,
        workspace: Workspace,
        run_id: str,
        *,
        client: str,
        actions: Sequence[ActionSpec],
        details: WorkspaceDetails | None,
        now: Now,
    ) -> tuple[Run, list[Effect]]:
        """A worker connected (its ``welcome`` is sent); a live older connection of the same
        run on this node closes with 4009, and other nodes are told to close theirs."""
        run = Run(peer, workspace, run_id, client, {action.name: action for action in actions})
        runs = self.runs.setdefault(workspace.name, {})
        effects: list[Effect] = []
        previous = runs.get(run_id)
        if previous is not None:
            effects += self._replace(
                previous, "replaced by a newer connection of the same run", now
            )
        runs[run_id] = run
        effects.append(CancelTimer(RunExpiry(workspace.name, workspace.epoch, run_id)))
        effects.append(Tell(RunClaimed(self.node, workspace.name, run_id)))
        payloads: list[Payload] = [
            Presence(
                run_id=run_id, state="connected", client=client, actions=list(run.actions.values())
            )
        ]
        if details is not None and details != workspace.pending.details:
            payloads.append(DetailsChange(details=details))
        effects += self._emit(workspace, payloads, now.utc)
        lease = self.leases[workspace.name]
        effects += self._mutex(workspace, lease.reconnected(run_id), now)
        return run, effects

    def _replace(self, run: Run, reason: str, now: Now) -> list[Effect]:
        # Its end must not look like a disconnect of the run: it is marked first.
        run.replaced = True
        return [
            *self.calls.worker_gone(run, run.run_id, now),
            Close(run.peer, REPLACED_CODE, reason),
        ]

    def worker_ended(self, run: Run, now: Now) -> list[Effect]:
        workspace = run.workspace
        runs = self.runs.get(workspace.name, {})
        if run.replaced or runs.get(run.run_id) is not run:
            return []
        del runs[run.run_id]
        effects = self.calls.worker_gone(run, run.run_id, now)
        if not self._current(workspace):
            return effects  # deleted meanwhile
        presence = Presence(run_id=run.run_id, state="disconnected", client=run.client)
        effects += self._emit(workspace, [presence], now.utc)
        lease = self.leases[workspace.name]
        grace_s = self.limits.mutex_grace_s
        effects += self._mutex(workspace, lease.disconnected(run.run_id, now.mono, grace_s), now)
        effects.append(self._expire_later(workspace, run.run_id, now))
        return effects

    def live_runs(self) -> list[tuple[str, int, str]]:
        """(workspace, epoch, run id) of every run connected here."""
        return [
            (name, run.workspace.epoch, run_id)
            for name, runs in self.runs.items()
            for run_id, run in runs.items()
        ]

    def forgotten(self, runs: Iterable[tuple[str, int, str]]) -> None:
        """The store dropped these runs' dedupe positions; unless a run came back meanwhile
        (its session keeps the position it was given), drop them here too."""
        for name, epoch, run_id in runs:
            workspace = self.workspaces.get(name)
            if workspace is None or workspace.epoch != epoch:
                continue
            if run_id in self.runs.get(name, {}):
                continue
            workspace.acked_seqs.pop(run_id, None)
            workspace.assigned_seqs.pop(run_id, None)

    def _expire_later(self, workspace: Workspace, run_id: str, now: Now) -> StartTimer:
        key = RunExpiry(workspace.name, workspace.epoch, run_id)
        return StartTimer(key, now.mono + self.limits.mutex_grace_s)

    # Writes ---------------------------------------------------------------------------

    def _emit(
        self,
        workspace: Workspace,
        payloads: Iterable[Payload],
        utc: datetime.datetime,
        *,
        reply: Reply | None = None,
        then: tuple[Effect, ...] = (),
    ) -> list[Effect]:
        """Events the broker makes itself, on their way to the store."""
        try:
            made = workspace.append_made(payloads, now=utc)
        except WorkspaceClosedError as exc:
            refused: list[Effect] = (
                [] if reply is None else [_error(reply, ErrorCode.NOT_FOUND, str(exc))]
            )
            return [*refused, *then]
        return [
            Write(
                events=made.events,
                changes=made.changes,
                states={workspace.key: workspace.pending},
                reply=reply,
                then=then,
            )
        ]

    def publish(self, run: Run, frame: Publish, now: Now) -> list[Effect]:
        """A worker's batch: new events get offsets; what is already stored is not stored
        again, and a resend of what is durable is acknowledged at once."""
        workspace, run_id = run.workspace, run.run_id
        if workspace.closed:
            return []  # deleted with force: the session is being closed with 4003
        assigned = workspace.assigned_seqs.get(run_id, 0)
        skip = max(0, assigned - frame.seq + 1)
        fresh = frame.events[skip:]
        if not fresh:
            # Anything still in flight is acknowledged when its commit lands.
            acked = workspace.acked_seqs.get(run_id, 0)
            if acked >= frame.seq + len(frame.events) - 1:
                return [Ack(run.peer, acked)]
            return []
        first_seq = frame.seq + skip
        published = workspace.append_published(
            fresh, run_id=run_id, first_seq=first_seq, now=now.utc
        )
        return [
            Write(
                events=published.events,
                changes=published.changes,
                states={workspace.key: workspace.pending},
                run_seqs={(workspace.name, workspace.epoch, run_id): published.events[-1].seq or 0},
            )
        ]

    def set_details(
        self, run: Run, details: WorkspaceDetails, request_id: int, now: Now
    ) -> list[Effect]:
        reply = Reply(run.peer, request_id)
        return self._emit(run.workspace, [DetailsChange(details=details)], now.utc, reply=reply)

    def set_caught(
        self,
        reply: Reply,
        workspace: Workspace | str,
        caught: bool,
        *,
        by: str,
        reason: str | None,
        now: Now,
    ) -> list[Effect]:
        """A catch or a release, answered once durable; pushed to the workers on commit."""
        if isinstance(workspace, str):
            found = self._find(workspace, reply)
            if isinstance(found, list):
                return found
            workspace = found
        semaphores = workspace.semaphores
        change = SemaphoresChange(
            caught=caught,
            has_mutex=semaphores.has_mutex,
            holder=semaphores.holder,
            fence=semaphores.fence,
            by=by,
            reason=reason,
            grace_until=semaphores.grace_until,
        )
        log = Log("caught" if caught else "released", {"workspace": workspace.name, "by": by})
        return [log, *self._emit(workspace, [change], now.utc, reply=reply)]

    # Commit ---------------------------------------------------------------------------

    def committed(self, commit: Commit) -> list[Effect]:
        """A commit is durable: acknowledge, push semaphores, wake followers, tell others."""
        effects: list[Effect] = []
        by_workspace = commit.by_workspace
        for (name, epoch), state in commit.states.items():
            workspace = self.workspaces.get(name)
            if workspace is None or workspace.epoch != epoch:
                continue
            events = by_workspace.get(name, [])
            workspace.committed(events, state)
            self.tails.added(workspace.tail, len(events))
            push = _semaphores_push(name, events)
            if push is not None:
                effects += self._push_to_workers(push)
                effects.append(Tell(SemaphoresNotice(push)))
            if events:
                effects.append(Tell(CommitNotice(name, epoch, state.last_offset)))
        for (name, epoch, run_id), seq in commit.run_seqs.items():
            workspace = self.workspaces.get(name)
            if workspace is None or workspace.epoch != epoch:
                continue
            acked = max(seq, workspace.acked_seqs.get(run_id, 0))
            workspace.acked_seqs[run_id] = acked
            run = self.runs.get(name, {}).get(run_id)
            if run is not None:
                effects.append(Ack(run.peer, acked))
        woken = self.followers.of(by_workspace)
        if woken:
            effects.append(Wake(woken))
        return effects

    def _push_to_workers(self, push: SemaphoresPush) -> list[Effect]:
        return [Send(run.peer, push) for run in self.runs.get(push.workspace, {}).values()]

    def trimmed(self, first_offsets: dict[tuple[str, int], int]) -> None:
        """Retention removed events: each trimmed workspace's oldest stored offset."""
        for (name, epoch), first_offset in first_offsets.items():
            workspace = self.workspaces.get(name)
            if workspace is not None and workspace.epoch == epoch:
                workspace.first_offset = max(workspace.first_offset, first_offset)

    # Mutex ----------------------------------------------------------------------------

    def mutex_acquire(self, run: Run, frame: MutexAcquire, now: Now) -> list[Effect]:
        lease = self.leases[run.workspace.name]
        effects = lease.acquire(
            run.run_id, frame.id, wait=frame.wait, timeout_s=frame.timeout_s, now=now.mono
        )
        return self._mutex(run.workspace, effects, now)

    def mutex_release(self, run: Run, frame: MutexRelease, now: Now) -> list[Effect]:
        lease = self.leases[run.workspace.name]
        return self._mutex(run.workspace, lease.release(run.run_id, frame.id), now)

    def mutex_break(self, reply: Reply, name: str, *, by: str, now: Now) -> list[Effect]:
        found = self._find(name, reply)
        if isinstance(found, list):
            return found
        workspace = found
        decided = self.leases[workspace.name].break_lease(by)
        if any(isinstance(effect, mutex.NotHeld) for effect in decided):
            return [_error(reply, ErrorCode.NOT_FOUND, "the mutex is not held")]
        effects: list[Effect] = [Log("mutex_broken", {"workspace": workspace.name, "by": by})]
        return effects + self._mutex(workspace, decided, now, reply=reply, by=by)

    def _mutex(
        self,
        workspace: Workspace,
        decided: list[mutex.MutexEffect],
        now: Now,
        *,
        reply: Reply | None = None,
        by: str | None = None,
    ) -> list[Effect]:
        """A lease's decisions as effects. What tells a run that the holder changed (a grant,
        a release's ``ok``, ``mutex_lost``) and ``reply`` go out once the change is durable:
        told before, a run whose release was lost with this node would ask again after a
        restart and be handed the fence it gave up as its own. ``by`` is who broke the
        lease, for a break."""
        runs = self.runs.get(workspace.name, {})
        effects: list[Effect] = []
        once_durable: list[Effect] = []
        holder_changed: mutex.HolderChanged | None = None
        for decision in decided:
            run = runs.get(getattr(decision, "run_id", ""))
            peer = run.peer if run is not None else None
            match decision:
                case mutex.Granted(request_id=request_id, fence=fence) if peer:
                    once_durable.append(Send(peer, MutexGranted(id=request_id, fence=fence)))
                case mutex.Conflict(request_id=request_id, holder=holder) if peer:
                    conflict = ErrorReply(
                        code=ErrorCode.CONFLICT,
                        message=f"the mutex is held by {holder}",
                        id=request_id,
                        detail={"holder": holder},
                    )
                    effects.append(Send(peer, conflict))
                case mutex.Superseded(request_id=request_id) if peer:
                    message = "superseded by a newer request"
                    effects.append(_error(Reply(peer, request_id), ErrorCode.CONFLICT, message))
                case mutex.WaitTimedOut(request_id=request_id) if peer:
                    message = "timed out waiting for the mutex"
                    effects.append(_error(Reply(peer, request_id), ErrorCode.TIMEOUT, message))
                case mutex.Released(request_id=request_id) if peer:
                    once_durable.append(Send(peer, Ok(id=request_id)))
                case mutex.NotHolder(request_id=request_id) if peer:
                    message = "this run does not hold the mutex"
                    effects.append(_error(Reply(peer, request_id), ErrorCode.CONFLICT, message))
                case mutex.Lost(fence=fence, reason=reason) if peer:
                    once_durable.append(Send(peer, MutexLost(fence=fence, reason=reason)))
                case mutex.HolderChanged():
                    holder_changed = decision
        if holder_changed is not None:
            changes = _holder_changes(workspace.semaphores, decided, holder_changed, by)
            fields = {"holder": holder_changed.holder, "fence": holder_changed.fence}
            effects.append(Log("mutex_holder", {"workspace": workspace.name, **fields}))
            then = tuple(once_durable)
            effects += self._emit(workspace, changes, now.utc, reply=reply, then=then)
        elif once_durable and not _same_holder(workspace.state.semaphores, workspace.semaphores):
            # A holder asking again before its grant is durable: answered after that commit.
            effects.append(Write(then=tuple(once_durable)))
            effects += self._grace_change(workspace, now)
        else:
            effects += once_durable
            if reply is not None:
                effects.append(Send(reply.peer, Ok(id=reply.request_id)))
            effects += self._grace_change(workspace, now)
        effects += self._schedule_lease(workspace)
        return effects

    def _grace_change(
        self, workspace: Workspace, now: Now, *, restarted: bool = False
    ) -> list[Effect]:
        """A ``semaphores`` change when the holder's session left or came back, with the time
        its lease ends while it is gone; nothing when the semaphores already say so (unless
        the broker ``restarted``, which starts the grace again)."""
        semaphores = workspace.semaphores
        deadline = self.leases[workspace.name].grace_deadline
        known = (deadline is None) == (semaphores.grace_until is None)
        if semaphores.holder is None or (known and not (restarted and deadline is not None)):
            return []
        until = (
            None if deadline is None else now.utc + datetime.timedelta(seconds=deadline - now.mono)
        )
        change = _change(
            semaphores,
            mutex_change="holder_back" if until is None else "holder_left",
            mutex_by=semaphores.holder,
            grace_until=until,
        )
        return self._emit(workspace, [change], now.utc)

    def _schedule_lease(self, workspace: Workspace) -> list[Effect]:
        name = workspace.name
        deadline = self.leases[name].next_deadline()
        if deadline == self._lease_deadlines.get(name):
            return []
        key = LeaseDue(name, workspace.epoch)
        if deadline is None:
            del self._lease_deadlines[name]
            return [CancelTimer(key)]
        self._lease_deadlines[name] = deadline
        return [StartTimer(key, deadline)]

    # Timers ---------------------------------------------------------------------------

    def timer_due(self, key: TimerKey, now: Now) -> list[Effect]:
        """A timer the router started is due (at or after its time)."""
        match key:
            case CallTimeout(call=call):
                return self.calls.timed_out(call, now)
            case LeaseDue(workspace=name, epoch=epoch):
                workspace = self.workspaces.get(name)
                if workspace is None or workspace.epoch != epoch:
                    return []
                self._lease_deadlines.pop(name, None)
                return self._mutex(workspace, self.leases[name].expire(now.mono), now)
            case RunExpiry(workspace=name, epoch=epoch, run_id=run_id):
                workspace = self.workspaces.get(name)
                if workspace is None or workspace.epoch != epoch:
                    return []
                if run_id in self.runs.get(name, {}):
                    return []
                return self._emit(workspace, [Presence(run_id=run_id, state="expired")], now.utc)

    # Watchers -------------------------------------------------------------------------

    def watcher_started(self, peer: WatcherPeer, grant: Grant) -> None:
        self.followers.add_watcher(peer, grant)

    def watcher_ended(self, peer: WatcherPeer) -> list[Effect]:
        self.followers.remove_watcher(peer)
        return self.calls.caller_gone(peer)

    def subscribe(self, peer: WatcherPeer, frame: Subscribe) -> list[Effect]:
        followers = self.followers
        limit = self.limits.max_subscriptions_per_session
        if len(followers.subscriptions(peer)) >= limit:
            message = f"at most {limit} subscriptions per session"
            return [_error(Reply(peer, frame.id), ErrorCode.RATE_LIMITED, message)]
        grant = followers.grant_of(peer)
        sub = followers.new_subscription(peer, frame.pattern, frame.kinds)
        snapshot = []
        # Why a resume is not exact, one line per workspace: the reader is told only that.
        inexact: list[Effect] = []
        for workspace in self.workspaces.values():
            if not sub.matches(workspace.name) or not grant.covers(workspace.name):
                continue
            cursor, exact = start_cursor(
                frame.from_,
                workspace=workspace.name,
                epoch=workspace.epoch,
                first_offset=workspace.first_offset,
                last_offset=workspace.state.last_offset,
                assigned_offset=workspace.next_offset - 1,
                may_lag=workspace.mirror,
            )
            if not exact:
                inexact.append(_inexact_resume(workspace.name, frame.from_, workspace))
            sub.cursors[workspace.name] = cursor
            snapshot.append(workspace.state)
        if isinstance(frame.from_, dict):
            for name, given in frame.from_.items():
                if name in sub.cursors:
                    continue
                if self.several_nodes and sub.matches(name) and grant.covers(name):
                    # Perhaps written elsewhere and not read here yet: resumed when it arrives.
                    sub.awaited[name] = ReadCursor(given.epoch, given.offset)
                else:
                    # A workspace the reader followed is gone.
                    inexact.append(_inexact_resume(name, frame.from_, None))
        followers.add(peer, sub)
        recovered = not inexact
        subscribed = Subscribed(id=frame.id, sub=sub.sub, snapshot=snapshot, recovered=recovered)
        return [*inexact, Send(peer, subscribed), Wake((peer,))]

    def unsubscribe(self, peer: WatcherPeer, frame: Unsubscribe) -> list[Effect]:
        if self.followers.remove(peer, frame.sub) is None:
            return [
                _error(Reply(peer, frame.id), ErrorCode.NOT_FOUND, f"no subscription {frame.sub}")
            ]
        return [Send(peer, Ok(id=frame.id))]

    def matching(self, pattern: str) -> list[Workspace]:
        return [
            ws for name, ws in sorted(self.workspaces.items()) if fnmatch.fnmatchcase(name, pattern)
        ]

    # Actions --------------------------------------------------------------------------

    def call(self, peer: Peer, frame: ActionCall, *, label: str, now: Now) -> list[Effect]:
        """An operator's call: to the run's session here, to the node that holds it, or
        ``not_found``."""
        limit = self.limits.max_pending_calls_per_session
        run = self.runs.get(frame.workspace, {}).get(frame.run_id)
        if run is not None:
            return self.calls.start(
                peer,
                frame.id,
                run=run,
                peer=run.peer,
                run_id=run.run_id,
                actions=run.actions,
                action=frame.action,
                args=frame.args,
                label=label,
                timeout_s=frame.timeout_s,
                limit=limit,
                now=now,
            )
        if self._connected_elsewhere(frame.workspace, frame.run_id):
            return self.calls.forward(
                peer,
                frame.id,
                workspace=frame.workspace,
                run_id=frame.run_id,
                action=frame.action,
                args=frame.args,
                label=label,
                timeout_s=frame.timeout_s,
                limit=limit,
                now=now,
            )
        if frame.workspace in self.workspaces:
            message = f"run {frame.run_id} is not connected to workspace {frame.workspace!r}"
        else:
            message = f"no workspace {frame.workspace!r}"
        return [_error(Reply(peer, frame.id), ErrorCode.NOT_FOUND, message)]

    def _connected_elsewhere(self, name: str, run_id: str) -> bool:
        """Whether the workspace's state says the run is connected, though not here: only
        another node sharing the store can hold it then."""
        workspace = self.workspaces.get(name)
        if workspace is None:
            return False
        if workspace.mirror:
            # The node that writes the workspace holds all of its runs, and knows for sure;
            # this node's copy of the state may be a moment behind a reconnect.
            return True
        return any(w.run_id == run_id and w.connected for w in workspace.pending.workers)

    def action_result(self, run: Run, frame: ActionResult, now: Now) -> list[Effect]:
        return self.calls.answered(
            run, frame.call, ok=frame.ok, result=frame.result, error=frame.error, now=now
        )

    def _record_call(self, run: Run, record: CallRecord, utc: datetime.datetime) -> list[Effect]:
        """A call to ``run`` ended: its record goes to the stream of the run's workspace."""
        if not self._current(run.workspace):
            return []  # deleted meanwhile
        return self._emit(run.workspace, [record], utc)

    # Other nodes ----------------------------------------------------------------------

    def remote(self, notice: Notice, now: Now) -> list[Effect]:
        """A notice from another node sharing the store."""
        match notice:
            case CommitNotice(workspace=name):
                woken = self.followers.of([name])
                return [Wake(woken)] if woken else []
            case SemaphoresNotice(push=push):
                return self._push_to_workers(push)
            case RunClaimed(origin=origin, workspace=name, run_id=run_id) if origin != self.node:
                run = self.runs.get(name, {}).pop(run_id, None)
                if run is None:
                    return []
                return self._replace(run, "replaced by a newer connection of the same run", now)
            case CallForward() if notice.origin != self.node:
                return self._remote_call(notice, now)
            case CallAnswered() | CallFailed() if notice.origin == self.node:
                return self.calls.remote_answered(notice)
        return []

    def _remote_call(self, notice: CallForward, now: Now) -> list[Effect]:
        caller = RemoteCaller(notice.origin, notice.call)
        run = self.runs.get(notice.workspace, {}).get(notice.run_id)
        if run is None:
            message = f"run {notice.run_id} is not connected to workspace {notice.workspace!r}"
            return [Tell(CallFailed(notice.origin, notice.call, ErrorCode.NOT_FOUND, message))]
        return self.calls.start(
            caller,
            0,
            run=run,
            peer=run.peer,
            run_id=run.run_id,
            actions=run.actions,
            action=notice.action,
            args=notice.args,
            label=notice.caller,
            timeout_s=notice.timeout_s,
            limit=self.limits.max_pending_calls_per_session,
            now=now,
        )

    # Delete ---------------------------------------------------------------------------

    def delete_begin(
        self, reply: Reply, name: str, *, force: bool
    ) -> tuple[Workspace | None, list[Effect]]:
        """First half of a delete: refuse it, or close the epoch to appends and its workers
        with 4003. The adapter then lets what is on its way to the store land, and calls
        :meth:`delete_end` with the workspace."""
        workspace = self.workspaces.get(name)
        if workspace is None:
            return None, [_error(reply, ErrorCode.NOT_FOUND, f"no workspace {name!r}")]
        runs = self.runs.get(workspace.name, {})
        if runs and not force:
            message = f"{len(runs)} worker(s) connected; delete with force to disconnect them"
            return None, [_error(reply, ErrorCode.CONFLICT, message)]
        workspace.closed = True
        return workspace, [
            Close(run.peer, DELETED_CODE, "workspace deleted") for run in runs.values()
        ]

    def delete_end(self, reply: Reply, workspace: Workspace, *, by: str) -> list[Effect]:
        if not self._current(workspace):
            return [Send(reply.peer, Ok(id=reply.request_id))]
        name, epoch = workspace.key
        del self.workspaces[name]
        self._note_deleted(name, epoch)
        self.tails.released(workspace.tail)
        self.leases.pop(name, None)
        self.runs.pop(name, None)
        effects: list[Effect] = []
        if self._lease_deadlines.pop(name, None) is not None:
            effects.append(CancelTimer(LeaseDue(name, epoch)))
        effects += [
            CancelTimer(RunExpiry(name, epoch, worker.run_id))
            for worker in workspace.pending.workers
        ]
        for peer, sub in self.followers.leave(name, epoch):
            effects.append(Send(peer, Removed(sub=sub.sub, workspace=name, epoch=epoch)))
        effects.append(Log("workspace_deleted", {"workspace": name, "epoch": epoch, "by": by}))
        effects.append(Write(deleted=[workspace.key], reply=reply))
        return effects

    def _note_deleted(self, name: str, epoch: int) -> None:
        """Remember that ``epoch`` of ``name`` is gone; the oldest memory goes past
        :data:`DELETED_KEPT` (a stale read is milliseconds old, not a thousand deletes)."""
        self._deleted[name, epoch] = None
        if len(self._deleted) > DELETED_KEPT:
            self._deleted.popitem(last=False)

    # Figures --------------------------------------------------------------------------

    def watcher_lag(self) -> int:
        """Committed events not yet handed to a watcher's outbox, over every subscription."""
        lag = 0
        for name, cursor in self.followers.cursors():
            workspace = self.workspaces.get(name)
            if workspace is not None and workspace.epoch == cursor.epoch:
                lag += max(0, workspace.state.last_offset - cursor.offset)
        return lag

    def worker_count(self, names: Collection[str] | None = None) -> int:
        if names is None:
            return sum(len(runs) for runs in self.runs.values())
        return sum(len(self.runs.get(name, {})) for name in names)


def _change(semaphores: WorkspaceSemaphores, **fields: Any) -> SemaphoresChange:
    """A ``semaphores`` payload: these semaphores with ``fields`` changed."""
    return SemaphoresChange(**{**_fields(semaphores), **fields})


def _holder_changes(
    before: WorkspaceSemaphores,
    decided: Sequence[mutex.MutexEffect],
    changed: mutex.HolderChanged,
    by: str | None,
) -> list[SemaphoresChange]:
    """The ``semaphores`` changes of a new holder, each named: the mutex freed (released,
    broken, expired), then granted; a lease handed from one run to a waiter is both."""
    plain = _change(before, mutex_change=None, mutex_by=None, grace_until=None)
    changes: list[SemaphoresChange] = []
    free = _change(plain, has_mutex=False, holder=None)
    for decision in decided:
        match decision:
            case mutex.Released(run_id=run_id, fence=fence):
                changes.append(_change(free, fence=fence, mutex_change="released", mutex_by=run_id))
            case mutex.Lost(reason="broken", fence=fence):
                changes.append(_change(free, fence=fence, mutex_change="broken", mutex_by=by))
            case mutex.Lost(reason="expired", run_id=run_id, fence=fence):
                changes.append(_change(free, fence=fence, mutex_change="expired", mutex_by=run_id))
            case mutex.Granted(run_id=run_id, fence=fence) if (
                run_id == changed.holder and fence == changed.fence
            ):
                held = {"has_mutex": True, "holder": run_id, "fence": fence}
                changes.append(_change(plain, **held, mutex_change="granted", mutex_by=run_id))
    return changes


def _inexact_resume(name: str, start: object, workspace: Workspace | None) -> Log:
    """Why a reader's resume cursor for ``name`` does not continue exactly here (``workspace``
    is this node's, ``None`` when it has none)."""
    assert isinstance(start, dict)
    given = start[name]
    fields: dict[str, Any] = {
        "workspace": name,
        "cursor_epoch": given.epoch,
        "cursor_offset": given.offset,
    }
    if workspace is not None:
        fields |= {
            "epoch": workspace.epoch,
            "first_offset": workspace.first_offset,
            "last_offset": workspace.state.last_offset,
            "mirror": workspace.mirror,
        }
    return Log("resume_not_exact", fields)


def _same_holder(a: WorkspaceSemaphores, b: WorkspaceSemaphores) -> bool:
    return (a.holder, a.fence) == (b.holder, b.fence)


def _semaphores_push(name: str, events: Sequence[EventMsg]) -> SemaphoresPush | None:
    # Most commits hold no change at all: ask in C before looking at any event in Python.
    if SemaphoresChange not in set(map(type, map(_payload_of, events))):
        return None
    changes = [event.payload for event in events if isinstance(event.payload, SemaphoresChange)]
    return SemaphoresPush(workspace=name, **_fields(semaphores_of(changes[-1])))


def _fields(value: Any) -> dict[str, Any]:
    return {name: getattr(value, name) for name in value.__struct_fields__}


def _error(reply: Reply, code: ErrorCode, message: str) -> Send:
    return Send(reply.peer, ErrorReply(code=code, message=message, id=reply.request_id))
