"""The broker's routing core: workspaces, sessions, the writer and what happens on commit.

Sessions call in here with decoded frames; the core decides, hands writes to the group-commit
writer, and answers, acks and fans out from ``_on_commit`` once the writes are durable. All of
it runs on the event loop; only the store runs in a thread.
"""

from __future__ import annotations

import asyncio
import datetime
import fnmatch
import time
from collections import defaultdict
from collections.abc import Collection, Coroutine, Iterable, Sequence
from operator import attrgetter
from typing import Any

import structlog

from schema import (
    ActionCall,
    DeleteWorkspace,
    DetailsChange,
    ErrorCode,
    ErrorReply,
    EventMsg,
    HistoryPage,
    HistoryQuery,
    Joined,
    ListWorkspaces,
    MutexAcquire,
    MutexBreak,
    MutexGranted,
    MutexLost,
    MutexRelease,
    Payload,
    Presence,
    Publish,
    Removed,
    SemaphoresChange,
    SemaphoresPush,
    StatsReport,
    StatsRequest,
    Subscribe,
    Subscribed,
    Unsubscribe,
    WorkspaceDetails,
    Workspaces,
    semaphores_of,
)

from . import _mutex as mutex
from ._access import Grant
from ._actions import ActionCalls
from ._config import BrokerConfig
from ._followers import Followers
from ._mutex import MutexLease
from ._store import Commit, HistoryFilter, Store
from ._subscription import start_cursor
from ._tail import TailBudget
from ._threads import StoreThreads
from ._watcher_session import WatcherSession
from ._worker_session import WorkerSession
from ._workspace import Workspace, WorkspaceClosedError
from ._writer import GroupCommitWriter

log = structlog.get_logger("pierhead.broker")

_payload_of = attrgetter("payload")


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Broker:
    def __init__(self, config: BrokerConfig, store: Store, *, server: str) -> None:
        self.config = config
        self.store = store
        self.server = server
        self.workspaces: dict[str, Workspace] = {}
        self.leases: dict[str, MutexLease] = {}
        self.workers: dict[str, dict[str, WorkerSession]] = defaultdict(dict)
        """Live worker sessions by workspace, then run id."""
        self.followers = Followers()
        self.calls = ActionCalls()
        self.threads = StoreThreads()
        self.tails = TailBudget(config.tail_events)
        self.writer = GroupCommitWriter(
            store, self._on_commit, max_events=config.commit_max_events, threads=self.threads
        )
        self._lease_timers: dict[str, asyncio.TimerHandle] = {}
        self._expiry_timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started = time.monotonic()
        self._last_epoch = 0
        self.counters: dict[str, int] = defaultdict(int)

    # Lifecycle ----------------------------------------------------------------------------

    def restore(self) -> None:
        """Bring back every stored workspace; workers that were connected are now offline."""
        loop = asyncio.get_running_loop()
        now = utcnow()
        for stored in self.store.load():
            workspace = Workspace(
                stored.state,
                first_offset=stored.first_offset,
                run_seqs=dict(stored.run_seqs),
            )
            self.workspaces[workspace.name] = workspace
            self._last_epoch = max(self._last_epoch, workspace.epoch)
            state = stored.state
            cut_off = [
                Presence(run_id=worker.run_id, state="disconnected", client=worker.client)
                for worker in state.workers
                if worker.connected
            ]
            if cut_off:
                self._emit(workspace, cut_off, now=now)
            for worker in state.workers:
                self._expire_later(workspace, worker.run_id)
            semaphores = state.semaphores
            holder = semaphores.holder if semaphores.has_mutex else None
            self.leases[workspace.name] = MutexLease.restored(
                holder, semaphores.fence, now=loop.time(), grace_s=self.config.mutex_grace_s
            )
            self._schedule_lease(workspace)
        log.info("restored", workspaces=len(self.workspaces))

    async def run_writer(self) -> None:
        await self.writer.run()

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
        for (name, epoch), first_offset in trimmed.items():
            workspace = self.workspaces.get(name)
            if workspace is not None and workspace.epoch == epoch:
                workspace.first_offset = max(workspace.first_offset, first_offset)
        if trimmed:
            log.info("retention_applied", workspaces=len(trimmed))
        await self.forget_idle_runs()

    async def forget_idle_runs(self) -> None:
        """Drop the dedupe positions of runs gone for ``forget_runs_after`` with no event left.

        A run connected now is never forgotten, nor for ``forget_runs_after`` after the last
        pass that saw it connected.
        """
        live = [
            (name, session.workspace.epoch, run_id)
            for name, runs in self.workers.items()
            for run_id, session in runs.items()
        ]
        idle_for = self.config.forget_runs_after
        forgotten = await self.writer.in_writer(
            lambda: self.store.forget_runs(idle_for=idle_for, live=live, now=utcnow())
        )
        for name, epoch, run_id in forgotten:
            workspace = self.workspaces.get(name)
            if workspace is None or workspace.epoch != epoch:
                continue
            if run_id in self.workers.get(name, {}):
                continue  # came back meanwhile: its session keeps the position it was given
            workspace.acked_seqs.pop(run_id, None)
            workspace.assigned_seqs.pop(run_id, None)
        if forgotten:
            log.info("runs_forgotten", runs=len(forgotten))

    def keep(self, task: asyncio.Task[Any]) -> None:
        """Hold a reference to a fire-and-forget task until it ends."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def cancel_tasks(self) -> None:
        """End the request handlers still running (at shutdown)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        self.keep(asyncio.get_running_loop().create_task(coroutine))

    # Sessions -----------------------------------------------------------------------------

    def workspace(self, name: str) -> Workspace:
        """The live workspace of that name, created (with a new epoch) if there is none.

        Raises WorkspaceClosedError while the name's current epoch is being deleted.
        """
        workspace = self.workspaces.get(name)
        if workspace is not None and workspace.closed:
            raise WorkspaceClosedError(f"workspace {name!r} is being deleted; connect again")
        if workspace is None:
            now = utcnow()
            self._last_epoch = max(self._last_epoch + 1, int(now.timestamp() * 1_000_000))
            workspace = Workspace.create(name, epoch=self._last_epoch, created=now)
            self.workspaces[name] = workspace
            self.leases[name] = MutexLease()
            self.writer.submit(states={workspace.key: workspace.pending})
            for peer, sub in self.followers.join(name, workspace.epoch):
                peer.send(Joined(sub=sub.sub, snapshot=workspace.initial_state))
            log.info("workspace_created", workspace=name, epoch=workspace.epoch)
        return workspace

    def worker_started(self, session: WorkerSession, details: WorkspaceDetails | None) -> None:
        workspace = session.workspace
        runs = self.workers[workspace.name]
        previous = runs.get(session.run_id)
        if previous is not None:
            # The older connection of the same run is replaced; its end must not look like a
            # disconnect of the run, so it is forgotten first.
            previous.replaced = True
            self.calls.worker_gone(previous)
            previous.abort(4009, "replaced by a newer connection of the same run")
        runs[session.run_id] = session
        timer = self._expiry_timers.pop((workspace.name, session.run_id), None)
        if timer is not None:
            timer.cancel()
        payloads: list[Payload] = [
            Presence(
                run_id=session.run_id,
                state="connected",
                client=session.client,
                actions=list(session.actions.values()),
            )
        ]
        if details is not None and details != workspace.pending.details:
            payloads.append(DetailsChange(details=details))
        self._emit(workspace, payloads)
        self._mutex_effects(workspace, self.leases[workspace.name].reconnected(session.run_id))
        self.counters["worker_sessions"] += 1

    def worker_ended(self, session: WorkerSession) -> None:
        workspace = session.workspace
        runs = self.workers.get(workspace.name, {})
        if session.replaced or runs.get(session.run_id) is not session:
            return
        del runs[session.run_id]
        self.calls.worker_gone(session)
        if self.workspaces.get(workspace.name) is not workspace:
            return  # deleted meanwhile
        self._emit(
            workspace,
            [Presence(run_id=session.run_id, state="disconnected", client=session.client)],
        )
        lease = self.leases[workspace.name]
        loop = asyncio.get_running_loop()
        self._mutex_effects(
            workspace, lease.disconnected(session.run_id, loop.time(), self.config.mutex_grace_s)
        )
        self._expire_later(workspace, session.run_id)

    @property
    def watchers(self) -> Collection[WatcherSession]:
        """The live watcher sessions (read-only)."""
        return self.followers.watchers  # type: ignore[return-value]

    def sessions(self) -> list[WorkerSession | WatcherSession]:
        """Every live session."""
        workers = [session for runs in self.workers.values() for session in runs.values()]
        return [*workers, *self.watchers]

    def watcher_started(self, session: WatcherSession) -> None:
        self.followers.add_watcher(session, session.grant)
        self.counters["watcher_sessions"] += 1

    def watcher_ended(self, session: WatcherSession) -> None:
        self.followers.remove_watcher(session)
        self.calls.caller_gone(session)

    def _expire_later(self, workspace: Workspace, run_id: str) -> None:
        key = (workspace.name, run_id)
        loop = asyncio.get_running_loop()
        self._expiry_timers[key] = loop.call_later(
            self.config.mutex_grace_s, self._expire_run, workspace, run_id
        )

    def _expire_run(self, workspace: Workspace, run_id: str) -> None:
        self._expiry_timers.pop((workspace.name, run_id), None)
        if self.workspaces.get(workspace.name) is not workspace:
            return
        if run_id in self.workers.get(workspace.name, {}):
            return
        self._emit(workspace, [Presence(run_id=run_id, state="expired")])

    # Writes -------------------------------------------------------------------------------

    def _emit(
        self,
        workspace: Workspace,
        payloads: Iterable[Payload],
        *,
        now: datetime.datetime | None = None,
    ) -> asyncio.Future[None]:
        try:
            events = workspace.append_made(payloads, now=now or utcnow())
        except WorkspaceClosedError as exc:
            refused: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            refused.set_exception(exc)
            refused.exception()  # most callers do not wait on presence or semaphore events
            return refused
        return self.writer.submit(events=events, states={workspace.key: workspace.pending})

    def publish(self, session: WorkerSession, frame: Publish) -> None:
        workspace, run_id = session.workspace, session.run_id
        if workspace.closed:
            return  # deleted with force: the session is being closed with 4003
        assigned = workspace.assigned_seqs.get(run_id, 0)
        skip = max(0, assigned - frame.seq + 1)
        fresh = frame.events[skip:]
        if not fresh:
            # A resend of what is already stored: acknowledge what is durable now; anything
            # still in flight is acknowledged when its commit lands.
            acked = workspace.acked_seqs.get(run_id, 0)
            if acked >= frame.seq + len(frame.events) - 1:
                session.send_ack(acked)
            return
        first_seq = frame.seq + skip
        events = workspace.append_published(fresh, run_id=run_id, first_seq=first_seq, now=utcnow())
        self.writer.submit(
            events=events,
            states={workspace.key: workspace.pending},
            run_seqs={(workspace.name, workspace.epoch, run_id): events[-1].seq or 0},
        )

    def set_details(self, workspace: Workspace, details: WorkspaceDetails) -> asyncio.Future[None]:
        return self._emit(workspace, [DetailsChange(details=details)])

    def set_caught(
        self, workspace: Workspace, caught: bool, *, by: str, reason: str | None
    ) -> asyncio.Future[None]:
        semaphores = workspace.semaphores
        change = SemaphoresChange(
            caught=caught,
            has_mutex=semaphores.has_mutex,
            holder=semaphores.holder,
            fence=semaphores.fence,
            by=by,
            reason=reason,
        )
        log.info("caught" if caught else "released", workspace=workspace.name, by=by)
        return self._emit(workspace, [change])

    # Commit -------------------------------------------------------------------------------

    def _on_commit(self, commit: Commit) -> None:
        by_workspace = commit.by_workspace
        for (name, epoch), state in commit.states.items():
            workspace = self.workspaces.get(name)
            if workspace is None or workspace.epoch != epoch:
                continue
            events = by_workspace.get(name, [])
            workspace.committed(events, state)
            self.tails.added(workspace.tail, len(events))
            self._push_semaphores(workspace, events)
        for (name, epoch, run_id), seq in commit.run_seqs.items():
            workspace = self.workspaces.get(name)
            if workspace is None or workspace.epoch != epoch:
                continue
            acked = max(seq, workspace.acked_seqs.get(run_id, 0))
            workspace.acked_seqs[run_id] = acked
            session = self.workers.get(name, {}).get(run_id)
            if session is not None:
                session.send_ack(acked)
        for watcher in self.followers.of(by_workspace):
            watcher.wake()

    def _push_semaphores(self, workspace: Workspace, events: Sequence[EventMsg]) -> None:
        # Most commits hold no change at all: ask in C before looking at any event in Python.
        if SemaphoresChange not in set(map(type, map(_payload_of, events))):
            return
        changes = [event.payload for event in events if isinstance(event.payload, SemaphoresChange)]
        push = SemaphoresPush(workspace=workspace.name, **_fields(semaphores_of(changes[-1])))
        for session in self.workers.get(workspace.name, {}).values():
            session.send(push)

    # Mutex --------------------------------------------------------------------------------

    def mutex_acquire(self, session: WorkerSession, frame: MutexAcquire) -> None:
        lease = self.leases[session.workspace.name]
        effects = lease.acquire(
            session.run_id,
            frame.id,
            wait=frame.wait,
            timeout_s=frame.timeout_s,
            now=asyncio.get_running_loop().time(),
        )
        self._mutex_effects(session.workspace, effects)

    def mutex_release(self, session: WorkerSession, frame: MutexRelease) -> None:
        lease = self.leases[session.workspace.name]
        self._mutex_effects(session.workspace, lease.release(session.run_id, frame.id))

    def mutex_break(self, workspace: Workspace, session: WatcherSession, frame: MutexBreak) -> None:
        effects = self.leases[workspace.name].break_lease(session.label)
        if any(isinstance(effect, mutex.NotHeld) for effect in effects):
            session.error(ErrorCode.NOT_FOUND, "the mutex is not held", request_id=frame.id)
            return
        log.info("mutex_broken", workspace=workspace.name, by=session.label)
        done = self._mutex_effects(workspace, effects)
        session.reply_when_durable(done, frame.id) if done else session.ok(frame.id)

    def _mutex_effects(
        self, workspace: Workspace, effects: list[mutex.MutexEffect]
    ) -> asyncio.Future[None] | None:
        """Carry out a lease's decisions; grants are answered once the new fence is durable."""
        runs = self.workers.get(workspace.name, {})
        grants: list[mutex.Granted] = []
        done: asyncio.Future[None] | None = None
        for effect in effects:
            session = runs.get(getattr(effect, "run_id", ""))
            match effect:
                case mutex.Granted():
                    grants.append(effect)
                case mutex.Conflict(request_id=request_id, holder=holder) if session:
                    session.error(
                        ErrorCode.CONFLICT,
                        f"the mutex is held by {holder}",
                        request_id=request_id,
                        detail={"holder": holder},
                    )
                case mutex.Superseded(request_id=request_id) if session:
                    session.error(
                        ErrorCode.CONFLICT, "superseded by a newer request", request_id=request_id
                    )
                case mutex.WaitTimedOut(request_id=request_id) if session:
                    session.error(
                        ErrorCode.TIMEOUT, "timed out waiting for the mutex", request_id=request_id
                    )
                case mutex.Released(request_id=request_id) if session:
                    session.ok(request_id)
                case mutex.NotHolder(request_id=request_id) if session:
                    session.error(
                        ErrorCode.CONFLICT,
                        "this run does not hold the mutex",
                        request_id=request_id,
                    )
                case mutex.Lost(fence=fence, reason=reason) if session:
                    session.send(MutexLost(fence=fence, reason=reason))
                case mutex.HolderChanged(holder=holder, fence=fence):
                    done = self._set_holder(workspace, holder, fence)
        if grants and done is None:
            self._answer_grants(workspace, grants)
        elif grants and done is not None:
            done.add_done_callback(lambda _: self._answer_grants(workspace, grants))
        self._schedule_lease(workspace)
        return done

    def _answer_grants(self, workspace: Workspace, grants: list[mutex.Granted]) -> None:
        runs = self.workers.get(workspace.name, {})
        for grant in grants:
            session = runs.get(grant.run_id)
            if session is not None:
                session.send(MutexGranted(id=grant.request_id, fence=grant.fence))

    def _set_holder(
        self, workspace: Workspace, holder: str | None, fence: int
    ) -> asyncio.Future[None]:
        semaphores = workspace.semaphores
        change = SemaphoresChange(
            caught=semaphores.caught,
            has_mutex=holder is not None,
            holder=holder,
            fence=fence,
            by=semaphores.by,
            reason=semaphores.reason,
        )
        log.info("mutex_holder", workspace=workspace.name, holder=holder, fence=fence)
        return self._emit(workspace, [change])

    def _schedule_lease(self, workspace: Workspace) -> None:
        timer = self._lease_timers.pop(workspace.name, None)
        if timer is not None:
            timer.cancel()
        deadline = self.leases[workspace.name].next_deadline()
        if deadline is not None:
            loop = asyncio.get_running_loop()
            self._lease_timers[workspace.name] = loop.call_at(deadline, self._lease_due, workspace)

    def _lease_due(self, workspace: Workspace) -> None:
        self._lease_timers.pop(workspace.name, None)
        if self.workspaces.get(workspace.name) is workspace:
            lease = self.leases[workspace.name]
            self._mutex_effects(workspace, lease.expire(asyncio.get_running_loop().time()))

    # Watchers -----------------------------------------------------------------------------

    def matching(self, pattern: str) -> list[Workspace]:
        return [
            ws for name, ws in sorted(self.workspaces.items()) if fnmatch.fnmatchcase(name, pattern)
        ]

    def subscribe(self, session: WatcherSession, frame: Subscribe) -> None:
        followers = self.followers
        limit = self.config.max_subscriptions_per_session
        if len(followers.subscriptions(session)) >= limit:
            session.error(
                ErrorCode.RATE_LIMITED,
                f"at most {limit} subscriptions per session",
                request_id=frame.id,
            )
            return
        grant = followers.grant_of(session)
        sub = followers.new_subscription(session, frame.pattern, frame.kinds)
        recovered = True
        snapshot = []
        for workspace in self.workspaces.values():
            if not sub.matches(workspace.name) or not grant.covers(workspace.name):
                continue
            cursor, exact = start_cursor(
                frame.from_,
                workspace=workspace.name,
                epoch=workspace.epoch,
                first_offset=workspace.first_offset,
                last_offset=workspace.state.last_offset,
            )
            recovered = recovered and exact
            sub.cursors[workspace.name] = cursor
            snapshot.append(workspace.state)
        if isinstance(frame.from_, dict) and not frame.from_.keys() <= sub.cursors.keys():
            recovered = False  # a workspace the reader followed is gone
        session.send(Subscribed(id=frame.id, sub=sub.sub, snapshot=snapshot, recovered=recovered))
        followers.add(session, sub)
        session.wake()

    def unsubscribe(self, session: WatcherSession, frame: Unsubscribe) -> None:
        if self.followers.remove(session, frame.sub) is None:
            session.error(ErrorCode.NOT_FOUND, f"no subscription {frame.sub}", request_id=frame.id)
        else:
            session.ok(frame.id)

    def list_workspaces(self, frame: ListWorkspaces, grant: Grant) -> Workspaces:
        items = [ws.state for ws in self.matching(frame.pattern) if grant.covers(ws.name)]
        return Workspaces(id=frame.id, items=items)

    async def read(self, workspace: Workspace, after: int, limit: int) -> list[EventMsg]:
        name, epoch = workspace.key
        return await self.threads.run(lambda: self.store.read(name, epoch, after, limit))

    async def history(self, frame: HistoryQuery) -> HistoryPage | ErrorReply:
        workspace = self.workspaces.get(frame.workspace)
        if workspace is None:
            return _error(ErrorCode.NOT_FOUND, f"no workspace {frame.workspace!r}", frame.id)
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
        events, more = await self.threads.run(lambda: self.store.history(query))
        return HistoryPage(id=frame.id, events=events, more=more)

    def call(self, session: WatcherSession, frame: ActionCall) -> None:
        worker = self.workers.get(frame.workspace, {}).get(frame.run_id)
        if worker is None:
            session.error(
                ErrorCode.NOT_FOUND,
                f"run {frame.run_id} is not connected to workspace {frame.workspace!r}",
                request_id=frame.id,
            )
            return
        self.calls.start(session, frame, worker, limit=self.config.max_pending_calls_per_session)

    async def delete_workspace(self, session: WatcherSession, frame: DeleteWorkspace) -> None:
        workspace = self.workspaces.get(frame.workspace)
        if workspace is None:
            session.error(
                ErrorCode.NOT_FOUND, f"no workspace {frame.workspace!r}", request_id=frame.id
            )
            return
        runs = self.workers.get(workspace.name, {})
        if runs and not frame.force:
            session.error(
                ErrorCode.CONFLICT,
                f"{len(runs)} worker(s) connected; delete with force to disconnect them",
                request_id=frame.id,
            )
            return
        workspace.closed = True
        for worker in list(runs.values()):
            worker.abort(4003, "workspace deleted")
        # Everything of this epoch that is on its way to the store lands before it is deleted.
        await self.writer.flush()
        if self.workspaces.get(workspace.name) is not workspace:
            session.ok(frame.id)
            return
        del self.workspaces[workspace.name]
        self.tails.released(workspace.tail)
        self.leases.pop(workspace.name, None)
        self.workers.pop(workspace.name, None)
        timer = self._lease_timers.pop(workspace.name, None)
        if timer is not None:
            timer.cancel()
        for key in [key for key in self._expiry_timers if key[0] == workspace.name]:
            self._expiry_timers.pop(key).cancel()
        for peer, sub in self.followers.leave(workspace.name, workspace.epoch):
            peer.send(Removed(sub=sub.sub, workspace=workspace.name, epoch=workspace.epoch))
        log.info(
            "workspace_deleted", workspace=workspace.name, epoch=workspace.epoch, by=session.label
        )
        session.reply_when_durable(self.writer.submit(deleted=[workspace.key]), frame.id)

    def stats(self, frame: StatsRequest, grant: Grant) -> StatsReport:
        counters = self._counters() if grant.scope == "*" else self._scoped_counters(grant)
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
        return {
            "workspaces": len(names),
            "workers": sum(len(self.workers.get(name, {})) for name in names),
        }

    def _counters(self) -> dict[str, int | float]:
        return {
            "workspaces": len(self.workspaces),
            "workers": sum(len(runs) for runs in self.workers.values()),
            "watchers": len(self.watchers),
            "subscriptions": self.followers.subscription_count(),
            "pending_calls": len(self.calls),
            "commits": self.writer.commits,
            "events_committed": self.writer.committed_events,
            "writer_backlog": self.writer.backlog,
            # Queue depths and bounded caches, so a soak can tell a leak from a steady state;
            # a walk over sessions and cursors, no store access.
            "outbox_bytes": sum(session.outbox.queued_bytes for session in self.sessions()),
            "watcher_lag_events": self._watcher_lag(),
            "tail_events": self.tails.size,
            "request_tasks": len(self._tasks),
            **self.counters,
        }

    def _watcher_lag(self) -> int:
        """Committed events not yet handed to a watcher's outbox, over every subscription."""
        lag = 0
        for name, cursor in self.followers.cursors():
            workspace = self.workspaces.get(name)
            if workspace is not None and workspace.epoch == cursor.epoch:
                lag += max(0, workspace.state.last_offset - cursor.offset)
        return lag


def _fields(value: Any) -> dict[str, Any]:
    return {name: getattr(value, name) for name in value.__struct_fields__}


def _error(code: ErrorCode, message: str, request_id: int) -> ErrorReply:
    return ErrorReply(code=code, message=message, id=request_id)
