"""The broker on asyncio: a thin adapter around the routing core.

Sessions call in here with decoded frames; the adapter reads the clocks, asks the routing core
(``broker/_routing.py``) what to do, and carries out the effects it returns: frames to peers,
closes, writes handed to the group-commit writer (answered once durable), timers on the event
loop, notices to the coordinator of the other nodes. It decides nothing itself. Reads (lists,
history, stats) are answered from the core's state and the store.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections import defaultdict
from collections.abc import Collection, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Final

import structlog

from schema import (
    ActionCall,
    ActionResult,
    ActionSpec,
    DeleteWorkspace,
    ErrorCode,
    ErrorReply,
    EventMsg,
    HistoryPage,
    HistoryQuery,
    ListWorkspaces,
    MutexAcquire,
    MutexRelease,
    Ok,
    Publish,
    StatsReport,
    StatsRequest,
    Subscribe,
    Unsubscribe,
    WorkspaceDetails,
    Workspaces,
    WorkspaceState,
)

from ._access import Grant
from ._cluster import RedisCoordinator
from ._config import BrokerConfig
from ._coordinator import (
    Coordinator,
    Forwarded,
    ForwardedOp,
    LocalCoordinator,
    Notice,
)
from ._effects import (
    Ack,
    CancelTimer,
    Close,
    Effect,
    Log,
    Now,
    Reply,
    Send,
    StartTimer,
    Tell,
    TimerKey,
    Wake,
    Write,
)
from ._followers import Followers
from ._forwarding import ForwardedRequester
from ._limits import CappedCounts
from ._notifier import NOTHING_TO_QUEUE, Notifier
from ._page import StoredEvents
from ._peer import Peer, WatcherPeer, WorkerPeer
from ._routing import Router, RoutingLimits, Run
from ._store import Commit, HistoryFilter, Store, StoreUnavailableError
from ._subscription import Subscription
from ._threads import StoreThreads
from ._workspace import Workspace
from ._writer import GroupCommitWriter

if TYPE_CHECKING:
    from collections.abc import Sequence

log = structlog.get_logger("pierhead.broker")

_GLOB_CHARACTERS: Final = frozenset("*?[")
"""A workspace pattern without any of these names one workspace."""


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Broker:
    def __init__(
        self,
        config: BrokerConfig,
        store: Store,
        *,
        server: str,
        coordinator: Coordinator | None = None,
        cluster: RedisCoordinator | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.server = server
        self.cluster = cluster
        """The nodes this one shares its Redis store with; ``None`` for a single node."""
        self.coordinator: Coordinator = cluster or coordinator or LocalCoordinator()
        self.router = Router(
            RoutingLimits(
                mutex_grace_s=config.mutex_grace_s,
                max_subscriptions_per_session=config.max_subscriptions_per_session,
                max_pending_calls_per_session=config.max_pending_calls_per_session,
                tail_events=config.tail_events,
            ),
            node=self.coordinator.node,
            several_nodes=cluster is not None,
        )
        self.threads = StoreThreads()
        self.writer = GroupCommitWriter(
            store, self._on_commit, max_events=config.commit_max_events, threads=self.threads
        )
        self._timers: dict[TimerKey, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._waiting = CappedCounts[Peer](config.max_waiting_requests_per_session)
        self._started = time.monotonic()
        self.counters: dict[str, int] = defaultdict(int)
        self._claiming: dict[str, asyncio.Lock] = {}
        notify, lease_s = config.notify, config.cluster_claim_s
        self.notifier = (
            Notifier(notify, store, self.writer, self.threads, lease_s=lease_s, excused=self._waits)
            if notify is not None
            else None
        )
        """Notifications to Slack and webhooks (``--notify``); ``None`` without a file."""

    # Read-only views of the core's state ---------------------------------------------------

    @property
    def workspaces(self) -> Mapping[str, Workspace]:
        return self.router.workspaces

    @property
    def followers(self) -> Followers:
        return self.router.followers

    @property
    def watchers(self) -> Collection[WatcherPeer]:
        """The live watchers' sessions."""
        return self.router.followers.watchers

    @property
    def workers(self) -> Mapping[str, Mapping[str, WorkerPeer]]:
        """The live workers' sessions by workspace, then run id (a copy)."""
        return {
            name: {run_id: run.peer for run_id, run in runs.items()}
            for name, runs in self.router.runs.items()
        }

    def subscriptions(self, peer: WatcherPeer) -> Mapping[int, Subscription]:
        return self.router.followers.subscriptions(peer)

    # Carrying out ---------------------------------------------------------------------------

    def _now(self) -> Now:
        return Now(asyncio.get_running_loop().time(), utcnow())

    def carry_out(self, effects: Sequence[Effect]) -> None:
        for effect in effects:
            match effect:
                case Send(peer=peer, frame=frame):
                    peer.send(frame)
                case Write():
                    self._write(effect)
                case Ack(peer=peer, seq=seq):
                    peer.send_ack(seq)
                case Wake(peers=peers):
                    for watcher in peers:
                        watcher.wake()
                case Tell(notice=notice):
                    self.coordinator.tell(notice)
                case StartTimer(key=key, at=at):
                    previous = self._timers.pop(key, None)
                    if previous is not None:
                        previous.cancel()
                    loop = asyncio.get_running_loop()
                    self._timers[key] = loop.call_at(at, self._timer_due, key)
                case CancelTimer(key=key):
                    timer = self._timers.pop(key, None)
                    if timer is not None:
                        timer.cancel()
                case Close(peer=peer, code=code, reason=reason):
                    peer.abort(code, reason)
                case Log(event=event, fields=fields):
                    log.info(event, **fields)

    def _write(self, write: Write) -> None:
        notifier = self.notifier
        to_queue = NOTHING_TO_QUEUE
        if notifier is not None and write.deleted:
            notifier.forget(name for name, _ in write.deleted)
        if notifier is not None and (write.events or write.deleted):
            mono = asyncio.get_running_loop().time()
            to_queue = notifier.on_write(
                write.events,
                write.changes,
                self._epoch_of,
                mono,
                # What waits for a deleted workspace goes with its delete, before its mark.
                queue_now=bool(write.deleted),
            )
        done = self.writer.submit(
            events=write.events,
            states=write.states,
            run_seqs=write.run_seqs,
            deleted=write.deleted,
            notifications=to_queue.notifications,
            notify_marks=to_queue.marks,
            notify_unmarked=to_queue.unmarked,
        )
        if write.reply is not None:
            _answer_when_durable(done, write.reply)
        if write.then:
            then = write.then
            done.add_done_callback(lambda _: self.carry_out(then))

    def _waits(self, name: str, run_id: str) -> bool:
        """Whether a run of ``name`` is silent by design: the workspace is caught, or the run
        waits in the mutex's queue."""
        workspace = self.router.workspaces.get(name)
        if workspace is None:
            return False
        lease = self.router.leases.get(name)
        return workspace.semaphores.caught or (lease is not None and run_id in lease.waiting)

    def _epoch_of(self, name: str) -> int:
        return self.router.workspaces[name].epoch

    def _timer_due(self, key: TimerKey) -> None:
        self._timers.pop(key, None)
        self.carry_out(self.router.timer_due(key, self._now()))

    def _on_commit(self, commit: Commit) -> None:
        self.carry_out(self.router.committed(commit))
        if commit.notifications and self.notifier is not None:
            # Once a commit, not once a write: a flood's writes are many to a commit.
            self.notifier.committed(commit.notifications)

    def remote(self, notice: Notice) -> None:
        """A notice from another node (the coordinator's inbox)."""
        if isinstance(notice, Forwarded):
            self.spawn(self._carry_forwarded(notice))
            return
        self.carry_out(self.router.remote(notice, self._now()))

    # Workspaces other nodes write (a Redis store) -------------------------------------------

    def writes(self, name: str) -> bool:
        workspace = self.router.workspaces.get(name)
        return workspace is not None and not workspace.mirror

    def mirror_position(self, name: str) -> tuple[int, int] | None:
        workspace = self.router.workspaces.get(name)
        if workspace is None or not workspace.mirror:
            return None
        return workspace.epoch, workspace.state.last_offset

    def watched(self, name: str) -> bool:
        return self.router.followers.following(name) > 0

    def mirrors(self) -> list[tuple[str, int]]:
        return [(ws.name, ws.epoch) for ws in self.router.workspaces.values() if ws.mirror]

    def mirrors_with_connected_runs(self) -> list[str]:
        return [
            ws.name
            for ws in self.router.workspaces.values()
            if ws.mirror and any(worker.connected for worker in ws.state.workers)
        ]

    def adopt(self, name: str) -> None:
        self.spawn(self._adopt(name))

    async def _adopt(self, name: str) -> None:
        try:
            await self.written_here(name)
        except StoreUnavailableError as exc:
            # The next position check finds it again.
            log.warning("workspace_not_adopted", workspace=name, error=str(exc))

    def mirrored(
        self, state: WorkspaceState, first_offset: int, events: Sequence[EventMsg]
    ) -> None:
        self.carry_out(self.router.mirrored(state, first_offset, events))

    def mirror_removed(self, name: str, epoch: int) -> None:
        self.carry_out(self.router.mirror_removed(name, epoch))

    async def written_here(self, name: str) -> str | None:
        """Make this node the writer of ``name`` unless another live node is: ``None`` when
        this node writes it now, else the node that does."""
        cluster = self.cluster
        if cluster is None or self.writes(name):
            return None
        lock = self._claiming.setdefault(name, asyncio.Lock())
        try:
            async with lock:
                if self.writes(name):
                    return None
                holder = await cluster.claim(name)
                if holder is not None:
                    return holder
                saved = await cluster.stored(name)
                self.carry_out(self.router.claimed(saved, name, self._now()))
                if self.notifier is not None and saved is not None:
                    state = saved.state
                    runs = [(name, state.epoch, worker.run_id) for worker in state.workers]
                    if runs:
                        self.spawn(self.notifier.remember_final_statuses(runs))
                return None
        finally:
            # A caller still waiting holds the lock object; one arriving later makes a new one
            # and finds the workspace written here already.
            if not lock.locked():
                self._claiming.pop(name, None)

    def _written_elsewhere(self, name: str) -> bool:
        """Whether a request about ``name`` needs another node: it follows the workspace, or
        does not know it yet (created elsewhere a moment ago, or not at all)."""
        workspace = self.router.workspaces.get(name)
        if workspace is None:
            return self._unknown_here(name)
        return workspace.mirror

    def _unknown_here(self, name: str) -> bool:
        return self.cluster is not None and name not in self.router.workspaces

    async def _known(self, name: str) -> bool:
        """Whether this node knows the workspace ``name``, once it has looked in the store
        for one created on another node and not heard of here yet."""
        if self._unknown_here(name):
            assert self.cluster is not None
            await self.cluster.follow_now(name)
        return name in self.router.workspaces

    async def _elsewhere(
        self, peer: Peer, request_id: int, op: ForwardedOp, name: str, **fields: Any
    ) -> None:
        """A watcher's request about a workspace another node writes: carried out here if
        this node can claim it, else by the node that writes it."""
        if not await self._known(name):
            self._carry_here(peer, request_id, op, name, **fields)  # not found
            return
        holder = await self.written_here(name)
        cluster = self.cluster
        if holder is None or cluster is None:
            self._carry_here(peer, request_id, op, name, **fields)
            return
        answer = await cluster.forward(
            lambda request: Forwarded(cluster.node, request, holder, op, name, **fields)
        )
        if answer.code is None:
            peer.send(Ok(id=request_id))
        else:
            peer.send(ErrorReply(code=answer.code, message=answer.message, id=request_id))

    def _carry_here(
        self,
        peer: Peer,
        request_id: int,
        op: ForwardedOp,
        name: str,
        *,
        by: str,
        reason: str | None = None,
        force: bool = False,
    ) -> None:
        # The ``_here`` forms: the public ones would ask again whether the workspace is
        # written elsewhere, and for one that exists nowhere they would never stop asking.
        if op in ("catch", "release"):
            self._set_caught_here(peer, request_id, name, op == "catch", by=by, reason=reason)
        elif op == "break":
            self._mutex_break_here(peer, request_id, name, by=by)
        else:
            frame = DeleteWorkspace(id=request_id, workspace=name, force=force)
            self.answer_later(peer, request_id, self._delete_here(peer, frame, by=by))

    async def _carry_forwarded(self, notice: Forwarded) -> None:
        """Another node's request about a workspace this node writes."""
        peer = ForwardedRequester(self.coordinator, notice)
        if not self.writes(notice.workspace):
            message = f"workspace {notice.workspace!r} is not written by node {notice.target}"
            peer.send(ErrorReply(code=ErrorCode.CONFLICT, message=message, id=0))
            return
        self._carry_here(
            peer,
            0,
            notice.op,
            notice.workspace,
            by=notice.by,
            reason=notice.reason,
            force=notice.force,
        )

    # Lifecycle ----------------------------------------------------------------------------

    def restore(self) -> None:
        """Bring back every stored workspace; workers that were connected are now offline.
        Notifications a stopped broker left unqueued are queued first."""
        self.coordinator.start(self)
        self._queue_marked()
        self.carry_out(self.router.restore(self.store.load(), self._now()))

    def _queue_marked(self) -> None:
        marked = self.store.notify_marked()
        if not marked:
            return
        if self.notifier is None:
            # Nothing to send them to; their events need not outlive retention any more.
            log.warning(
                "notifications_not_made_again", workspaces=len(marked), reason="no --notify"
            )
            self.writer.submit(notify_unmarked=sorted(marked))
            return
        made = self.notifier.made_again(marked)
        log.info("notifications_made_again", workspaces=len(marked), notifications=len(made))
        self.writer.submit(notifications=made, notify_unmarked=sorted(marked))

    async def run_writer(self) -> None:
        await self.writer.run()

    async def run_notifier(self) -> None:
        """Send notifications and look for stalled runs until cancelled (with ``--notify``)."""
        if self.notifier is None:
            return
        runs_at_boot = [
            (workspace.name, workspace.epoch, worker.run_id)
            for workspace in self.router.workspaces.values()
            if not workspace.mirror
            for worker in workspace.state.workers
        ]
        await self.notifier.run(runs_at_boot)

    async def run_retention(self) -> None:
        while True:
            await asyncio.sleep(self.config.retention_interval_s)
            await self.apply_retention()

    async def apply_retention(self) -> None:
        trimmed = await self.writer.in_writer(
            lambda: self.store.trim(
                max_events=self.config.retention_events,
                max_age=self.config.retention_age,
                now=utcnow(),
            )
        )
        self.router.trimmed(trimmed)
        if trimmed:
            log.info("retention_applied", workspaces=len(trimmed))
        await self.forget_idle_runs()

    async def forget_idle_runs(self) -> None:
        """Drop the dedupe positions of runs gone for ``forget_runs_after`` with no event left.

        A run connected now is never forgotten, nor for ``forget_runs_after`` after the last
        pass that saw it connected.
        """
        live = self.router.live_runs()
        idle_for = self.config.forget_runs_after
        forgotten = await self.writer.in_writer(
            lambda: self.store.forget_runs(idle_for=idle_for, live=live, now=utcnow())
        )
        self.router.forgotten(forgotten)
        if forgotten:
            log.info("runs_forgotten", runs=len(forgotten))

    def keep(self, task: asyncio.Task[Any]) -> None:
        """Hold a reference to a fire-and-forget task until it ends."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def cancel_tasks(self) -> None:
        """End the request handlers still running (at shutdown); stop the timers."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self.coordinator.close()
        if self.cluster is not None:
            await self.cluster.aclose()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        self.keep(asyncio.get_running_loop().create_task(coroutine))

    def answer_later(
        self, peer: Peer, request_id: int | None, request: Coroutine[Any, Any, None]
    ) -> None:
        """Carry out a request that waits (for the store, or for another node) beside the
        session's receive loop, and answer it whatever happens. A session has at most
        ``max_waiting_requests_per_session`` such requests at a time; the next one is refused
        with ``rate_limited``."""
        if not self._waiting.acquire(peer):
            request.close()
            limit = self._waiting.cap
            message = f"at most {limit} requests waiting for the store or another node per session"
            peer.send(ErrorReply(code=ErrorCode.RATE_LIMITED, message=message, id=request_id))
            return
        self.spawn(self._answered(peer, request_id, request))

    async def _answered(
        self, peer: Peer, request_id: int | None, request: Coroutine[Any, Any, None]
    ) -> None:
        try:
            await request
        except StoreUnavailableError as exc:
            peer.send(store_unreachable(exc, request_id))
        except Exception:
            # A fault here must not leave the client waiting for an answer that never comes.
            log.exception("request_failed", request=request_id)
            message = "the broker failed to carry out the request; it may be retried"
            peer.send(ErrorReply(code=ErrorCode.INTERNAL, message=message, id=request_id))
        finally:
            self._waiting.release(peer)

    # Workers ------------------------------------------------------------------------------

    def workspace(self, name: str) -> Workspace:
        """The live workspace of that name, created (with a new epoch) if there is none.

        Raises WorkspaceClosedError while the name's current epoch is being deleted.
        """
        workspace, effects = self.router.workspace(name, self._now())
        self.carry_out(effects)
        return workspace

    def worker_started(
        self,
        peer: WorkerPeer,
        workspace: Workspace,
        run_id: str,
        *,
        client: str,
        actions: Sequence[ActionSpec],
        details: WorkspaceDetails | None,
    ) -> Run:
        run, effects = self.router.worker_started(
            peer,
            workspace,
            run_id,
            client=client,
            actions=actions,
            details=details,
            now=self._now(),
        )
        self.carry_out(effects)
        self.counters["worker_sessions"] += 1
        return run

    def worker_ended(self, run: Run) -> None:
        self.carry_out(self.router.worker_ended(run, self._now()))

    def publish(self, run: Run, frame: Publish) -> None:
        self.carry_out(self.router.publish(run, frame, self._now()))

    def set_details(self, run: Run, details: WorkspaceDetails, request_id: int) -> None:
        self.carry_out(self.router.set_details(run, details, request_id, self._now()))

    def set_caught(
        self,
        peer: Peer,
        request_id: int,
        workspace: Workspace | str,
        caught: bool,
        *,
        by: str,
        reason: str | None,
    ) -> None:
        if isinstance(workspace, str) and self._written_elsewhere(workspace):
            op: ForwardedOp = "catch" if caught else "release"
            elsewhere = self._elsewhere(peer, request_id, op, workspace, by=by, reason=reason)
            self.answer_later(peer, request_id, elsewhere)
            return
        self._set_caught_here(peer, request_id, workspace, caught, by=by, reason=reason)

    def _set_caught_here(
        self,
        peer: Peer,
        request_id: int,
        workspace: Workspace | str,
        caught: bool,
        *,
        by: str,
        reason: str | None,
    ) -> None:
        reply = Reply(peer, request_id)
        now = self._now()
        self.carry_out(
            self.router.set_caught(reply, workspace, caught, by=by, reason=reason, now=now)
        )

    def mutex_acquire(self, run: Run, frame: MutexAcquire) -> None:
        self.carry_out(self.router.mutex_acquire(run, frame, self._now()))

    def mutex_release(self, run: Run, frame: MutexRelease) -> None:
        self.carry_out(self.router.mutex_release(run, frame, self._now()))

    def action_result(self, run: Run, frame: ActionResult) -> None:
        self.carry_out(self.router.action_result(run, frame, self._now()))

    # Watchers -----------------------------------------------------------------------------

    def watcher_started(self, peer: WatcherPeer, grant: Grant) -> None:
        self.router.watcher_started(peer, grant)
        self.counters["watcher_sessions"] += 1

    def watcher_ended(self, peer: WatcherPeer) -> None:
        self.carry_out(self.router.watcher_ended(peer))

    def subscribe(self, peer: WatcherPeer, frame: Subscribe) -> None:
        self.carry_out(self.router.subscribe(peer, frame))

    def unsubscribe(self, peer: WatcherPeer, frame: Unsubscribe) -> None:
        self.carry_out(self.router.unsubscribe(peer, frame))

    def call(self, peer: Peer, frame: ActionCall, *, label: str) -> None:
        if self._unknown_here(frame.workspace):
            self.answer_later(peer, frame.id, self._call_when_known(peer, frame, label=label))
            return
        self.carry_out(self.router.call(peer, frame, label=label, now=self._now()))

    async def _call_when_known(self, peer: Peer, frame: ActionCall, *, label: str) -> None:
        await self._known(frame.workspace)
        self.carry_out(self.router.call(peer, frame, label=label, now=self._now()))

    def mutex_break(self, peer: Peer, request_id: int, name: str, *, by: str) -> None:
        if self._written_elsewhere(name):
            self.answer_later(
                peer, request_id, self._elsewhere(peer, request_id, "break", name, by=by)
            )
            return
        self._mutex_break_here(peer, request_id, name, by=by)

    def _mutex_break_here(self, peer: Peer, request_id: int, name: str, *, by: str) -> None:
        reply = Reply(peer, request_id)
        self.carry_out(self.router.mutex_break(reply, name, by=by, now=self._now()))

    async def delete_workspace(self, peer: Peer, frame: DeleteWorkspace, *, by: str) -> None:
        if self._written_elsewhere(frame.workspace):
            fields = {"by": by, "force": frame.force}
            await self._elsewhere(peer, frame.id, "delete", frame.workspace, **fields)
            return
        await self._delete_here(peer, frame, by=by)

    async def _delete_here(self, peer: Peer, frame: DeleteWorkspace, *, by: str) -> None:
        reply = Reply(peer, frame.id)
        workspace, effects = self.router.delete_begin(reply, frame.workspace, force=frame.force)
        self.carry_out(effects)
        if workspace is None:
            return
        # Everything of this epoch that is on its way to the store lands before it is deleted.
        await self.writer.flush()
        self.carry_out(self.router.delete_end(reply, workspace, by=by))

    def list_workspaces(self, frame: ListWorkspaces, grant: Grant) -> Workspaces:
        items = [ws.state for ws in self.router.matching(frame.pattern) if grant.covers(ws.name)]
        return Workspaces(id=frame.id, items=items)

    def list_looks_in_store(self, frame: ListWorkspaces, grant: Grant) -> bool:
        """Whether a list waits for a look in the store first: it names one workspace (no
        wildcard) that this node has not heard of, though another node may have created it
        a moment ago. A pattern lists what this node knows, as it knows it."""
        name = frame.pattern
        return (
            self._unknown_here(name)
            and not _GLOB_CHARACTERS.intersection(name)
            and grant.covers(name)
        )

    async def list_once_looked_up(self, frame: ListWorkspaces, grant: Grant) -> Workspaces:
        await self._known(frame.pattern)
        return self.list_workspaces(frame, grant)

    async def read(self, workspace: Workspace, after: int, limit: int) -> StoredEvents:
        """Up to ``limit`` stored events after ``after``, for a watcher the in-memory tail no
        longer serves. Watchers asking for the same events while they are read share that
        read (watchers resuming together from one cursor, or joining a workspace another
        node created)."""
        name, epoch = workspace.key
        key = (name, epoch, after, limit)
        self.counters["store_reads_shared" if self.threads.sharing(key) else "store_reads"] += 1
        return await self.threads.run_shared(
            key, lambda: StoredEvents(self.store.read(name, epoch, after, limit))
        )

    async def history(self, frame: HistoryQuery) -> HistoryPage | ErrorReply:
        if not await self._known(frame.workspace):
            message = f"no workspace {frame.workspace!r}"
            return ErrorReply(code=ErrorCode.NOT_FOUND, message=message, id=frame.id)
        workspace = self.workspaces.get(frame.workspace)
        if workspace is None:
            message = f"no workspace {frame.workspace!r}"
            return ErrorReply(code=ErrorCode.NOT_FOUND, message=message, id=frame.id)
        query = HistoryFilter(
            workspace=workspace.name,
            epoch=workspace.epoch,
            before=frame.before,
            after=frame.after,
            limit=frame.limit,
            kinds=frame.kinds,
            series=frame.series,
            run_id=frame.run_id,
        )
        try:
            events, more = await self.threads.run(lambda: self.store.history(query))
        except StoreUnavailableError as exc:
            return store_unreachable(exc, frame.id)
        return HistoryPage(id=frame.id, events=events, more=more)

    # Figures ------------------------------------------------------------------------------

    def stats(self, frame: StatsRequest, grant: Grant) -> StatsReport:
        """This node's figures (a session adds the other nodes' from Redis)."""
        counters = self.counters_now() if grant.scope == "*" else self._scoped_counters(grant)
        return StatsReport(
            id=frame.id,
            server=self.server,
            uptime_s=time.monotonic() - self._started,
            counters=counters,
        )

    def _scoped_counters(self, grant: Grant) -> dict[str, int | float]:
        """Counters of the workspaces inside a token's scope only.

        Broker-wide figures (commits, sessions, queues) would tell an admin of some workspaces
        how busy the others are, so they are left out.
        """
        names = [name for name in self.workspaces if grant.covers(name)]
        return {"workspaces": len(names), "workers": self.router.worker_count(names)}

    def counters_now(self) -> dict[str, int | float]:
        """This node's counters (every workspace it has, written here or followed)."""
        router = self.router
        peers: list[Peer] = [run.peer for runs in router.runs.values() for run in runs.values()]
        peers += router.followers.watchers
        return {
            "workspaces": len(router.workspaces),
            "workers": router.worker_count(),
            "watchers": len(router.followers.watchers),
            "subscriptions": router.followers.subscription_count(),
            "pending_calls": len(router.calls),
            "commits": self.writer.commits,
            "events_committed": self.writer.committed_events,
            "writer_backlog": self.writer.backlog,
            # Queue depths and bounded caches, so a soak can tell a leak from a steady state;
            # a walk over sessions and cursors, no store access.
            "outbox_bytes": sum(peer.queued_bytes for peer in peers),
            "watcher_lag_events": router.watcher_lag(),
            "tail_events": router.tails.size,
            "request_tasks": len(self._tasks),
            **self._cluster_counters(),
            **(self.notifier.counters() if self.notifier is not None else {}),
            **self.counters,
        }

    def _cluster_counters(self) -> dict[str, int | float]:
        if self.cluster is None:
            return {}
        mirrors = sum(1 for workspace in self.router.workspaces.values() if workspace.mirror)
        return {
            "workspaces_written": len(self.router.workspaces) - mirrors,
            "workspaces_followed": mirrors,
            **self.cluster.counters,
        }


def _answer_when_durable(done: asyncio.Future[None], reply: Reply) -> None:
    """Answer ``ok`` once the writes behind ``done`` are committed; an error if they fail."""
    peer, request_id = reply.peer, reply.request_id

    def answer(future: asyncio.Future[None]) -> None:
        failure = future.exception() if not future.cancelled() else None
        if isinstance(failure, LookupError):
            peer.send(ErrorReply(code=ErrorCode.NOT_FOUND, message=str(failure), id=request_id))
        elif failure is not None or future.cancelled():
            message = "the store failed"
            peer.send(ErrorReply(code=ErrorCode.INTERNAL, message=message, id=request_id))
        else:
            peer.send(Ok(id=request_id))

    done.add_done_callback(answer)


def store_unreachable(exc: StoreUnavailableError, request_id: int | None) -> ErrorReply:
    """The answer to a request the store could not serve: it may be retried."""
    message = f"the store cannot be reached; try again ({exc})"
    return ErrorReply(code=ErrorCode.INTERNAL, message=message, id=request_id)
