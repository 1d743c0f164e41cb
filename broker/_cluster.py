"""Several broker nodes on one Redis store: the :class:`~broker._coordinator.Coordinator` they
share workspaces through.

Each workspace is written by one node at a time, the one holding its claim in Redis
(``RedisStore.claim``): that node's routing core numbers its events, keeps its mutex lease and
holds every worker connection of it (a worker that reaches another node is relayed there,
``broker/_relay.py``). Every other node *follows* the workspace for its own watchers: it
keeps a mirror of it (its state, its recent events) read from the store.

What this module does, on asyncio:

* follows: the commit script publishes ``<epoch> <last offset>`` on the workspace's channel;
  a node reads the stream from its own position when it hears one. Pub/sub is only a hint:
  a lost message is repaired by the periodic position check (every ``check_s``), and a
  subscription that has heard nothing, not even its own probe, for ``probe_s`` is opened
  again (redis-py does not resubscribe by itself);
* carries notices: to one node through its inbox channel (``ph:node:<name>``): action calls to
  the node that writes the run's workspace, answers back to the caller's node, requests a
  watcher made about a workspace another node writes (catch, release, break, delete);
* keeps this node in the node list (``ph:nodes``, with a lease per node), which is where a
  relaying node finds the writer's address.

Notices go over pub/sub, which may lose them; every request that travels so is bounded by a
timeout on the asking side, so a lost one costs a ``timeout`` error, never a wait for ever.
Every other call on the asyncio client waits at most ``REPLY_TIMEOUT_S`` for Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Final, Protocol

import msgspec
import structlog

from schema import ErrorCode, EventMsg, WorkspaceState

from ._coordinator import (
    CallAnswered,
    CallFailed,
    CallForward,
    CommitNotice,
    ForwardAnswered,
    Forwarded,
    NodeInbox,
    Notice,
    RunClaimed,
    SemaphoresNotice,
)
from ._redis_store import (
    FollowedInPart,
    RedisStore,
    StoreUnavailableError,
    WorkspaceHead,
    open_client,
)
from ._redis_url import RedisTarget
from ._store import StoredWorkspace

try:
    import redis
except ImportError:  # pragma: no cover - the redis extra is not installed
    redis = None  # type: ignore[assignment]

__all__ = ["ClusterMember", "RedisCoordinator"]

log = structlog.get_logger("pierhead.cluster")

FOLLOW_READ_EVENTS: Final = 20_000
"""A mirror this far behind or less reads the missing events; further behind, it jumps to the
stored state, and its watchers read what they miss from the store."""
IDLE_FOLLOW_S: Final = 0.25
"""How often at most a node reads a workspace that none of its watchers follows, once it
mirrors it: its state serves lists and requests here, and reading it at every commit
elsewhere cost every node CPU for every busy workspace (0.3 to 0.8 ms a commit)."""
_MIRRORED_AT_ONCE: Final = 256
"""Workspaces a starting node reads per round trip (:meth:`RedisCoordinator.mirror_stored`)."""
REPLY_TIMEOUT_S: Final = 5.0
"""Most the node waits for a reply on its asyncio client (as the blocking client's socket
timeout): that client's socket has none, because the subscription on it waits for as long as
nothing is published, so a server that stops answering without closing the connection (paused,
or cut off by the network) would hold a request for ever."""
_PROBE: Final = b"probe"
_NOTICES: Final[dict[str, type[Any]]] = {
    kind.__name__: kind
    for kind in (
        CommitNotice,
        SemaphoresNotice,
        RunClaimed,
        CallForward,
        CallAnswered,
        CallFailed,
        Forwarded,
        ForwardAnswered,
    )
}
_ENCODER: Final = msgspec.msgpack.Encoder()
_COUNTERS_DECODER: Final = msgspec.msgpack.Decoder(dict[str, int | float])
_NODE_COUNTERS: Final = (
    "workers",
    "watchers",
    "subscriptions",
    "workspaces_written",
    "events_committed",
    "commits",
    "worker_sessions",
    "watcher_sessions",
)
"""The counters ``stats`` shows per node and sums for the cluster."""
_DECODER: Final = msgspec.msgpack.Decoder(tuple[str, dict[str, Any]])


def encode_notice(notice: Notice) -> bytes:
    return _ENCODER.encode((type(notice).__name__, msgspec.to_builtins(notice)))


def decode_notice(data: bytes) -> Notice:
    kind, fields = _DECODER.decode(data)
    notice: Notice = msgspec.convert(fields, _NOTICES[kind])
    return notice


class ClusterMember(NodeInbox, Protocol):
    """What the coordinator follows workspaces for (the broker's adapter)."""

    def mirror_position(self, name: str) -> tuple[int, int] | None:
        """(epoch, last offset) of the mirror of ``name``; ``None`` when there is none."""
        ...

    def writes(self, name: str) -> bool:
        """Whether this node writes ``name``."""
        ...

    def mirrored(
        self, state: WorkspaceState, first_offset: int, events: Sequence[EventMsg]
    ) -> None: ...

    def mirror_removed(self, name: str, epoch: int) -> None: ...

    def mirrors(self) -> list[tuple[str, int]]:
        """(name, epoch) of every mirror."""
        ...

    def watched(self, name: str) -> bool:
        """Whether a watcher here follows ``name``."""
        ...

    def mirrors_with_connected_runs(self) -> list[str]:
        """The mirrors whose state shows a run connected (to the node that writes it)."""
        ...

    def adopt(self, name: str) -> None:
        """Claim ``name``, which no live node writes, in the background: its runs go
        offline, and expire after their grace, as after a restart."""
        ...

    def counters_now(self) -> dict[str, int | float]:
        """This node's stats counters."""
        ...


class RedisCoordinator:
    """The nodes sharing one Redis store (see the module docstring)."""

    def __init__(
        self,
        store: RedisStore,
        target: RedisTarget,
        *,
        node: str,
        prefix: str = "ph",
        check_s: float = 5.0,
        probe_s: float = 10.0,
        request_timeout_s: float = 10.0,
        adopt_after_s: float = 30.0,
    ) -> None:
        self.store = store
        self.url = ""
        """Where other nodes relay workers to this node (set by :meth:`advertise`)."""
        self._advertised = asyncio.Event()
        self._node = node
        self._prefix = prefix
        self._check_s = check_s
        self._lease_ms = store.lease_ms
        self._probe_s = probe_s
        self.request_timeout_s = request_timeout_s
        self._adopt_after_s = adopt_after_s
        """How long a workspace stays without a writer, runs shown connected, before this node
        claims it: the grace in which its workers are expected back, each on some node."""
        self._unwritten_since: dict[str, float] = {}
        self._client: Any = open_client(
            target, asynchronous=True, socket_connect_timeout=2.0, socket_timeout=None
        )
        self._follow_script: Any = self._client.register_script(store.follow_script_source)
        self._member: ClusterMember | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dirty: set[str] = set()
        self._dirty_event = asyncio.Event()
        self._idle: set[str] = set()
        """Marked workspaces that no watcher here follows: read together, every
        ``IDLE_FOLLOW_S``."""
        self._idle_event = asyncio.Event()
        self._check_now = asyncio.Event()
        self._pending: dict[int, asyncio.Future[ForwardAnswered]] = {}
        self._next_request = 0
        self._listening = asyncio.Event()
        self.listening = False
        """Whether the subscription to the other nodes is open (``/healthz`` says not ready
        while it is not)."""
        self.counters: dict[str, int] = {
            "cluster_follows": 0,
            "cluster_hints": 0,
            "cluster_repairs": 0,
            "cluster_adoptions": 0,
            "cluster_resubscribes": 0,
        }

    @property
    def node(self) -> str:
        return self._node

    def _inbox_of(self, node: str) -> str:
        return f"{self._prefix}:node:{node}"

    @property
    def _commits_pattern(self) -> str:
        return f"{self._prefix}:{{*}}:commits"

    def _workspace_of(self, channel: str) -> str | None:
        head, tail = f"{self._prefix}:{{", "}:commits"
        if channel.startswith(head) and channel.endswith(tail):
            return channel[len(head) : -len(tail)]
        return None

    # Coordinator ----------------------------------------------------------------------------

    def start(self, inbox: NodeInbox) -> None:
        if not hasattr(inbox, "mirrored"):
            raise TypeError("a node on a Redis store follows workspaces: its inbox must too")
        self._member = inbox  # type: ignore[assignment]
        jobs = (
            self._listen(),
            self._follow(),
            self._follow_idle(),
            self._check(),
            self._register(),
        )
        for job in jobs:
            self._spawn(job)

    async def wait_listening(self) -> None:
        """Until the subscription to the other nodes is first open."""
        await self._listening.wait()

    async def mirror_stored(self) -> None:
        """Mirror here every workspace stored now that another node writes: a watcher that
        subscribes as soon as this node listens finds them (the position check that the
        subscription starts would, a moment later). :class:`StoreUnavailableError` when the
        store cannot be read."""
        member = self._member
        if member is None:
            return
        names = [
            name
            for name in await asyncio.to_thread(self.store.heads)
            if member.mirror_position(name) is None
        ]
        # A few hundred to a round trip (a follow each held the start of a node on a store of
        # 20,000 workspaces for seconds). No watcher follows any yet: their state is all to read.
        for start in range(0, len(names), _MIRRORED_AT_ONCE):
            batch = names[start : start + _MIRRORED_AT_ONCE]
            saved = await asyncio.to_thread(self.store.stored_many, batch)
            for name, found in zip(batch, saved, strict=True):
                # Written here, or mirrored by a hint's follow meanwhile: nothing to add.
                taken = member.writes(name) or member.mirror_position(name) is not None
                if found is not None and not taken:
                    member.mirrored(found.state, found.first_offset, [])

    def tell(self, notice: Notice) -> None:
        match notice:
            case CommitNotice() | SemaphoresNotice() | RunClaimed():
                # The commit script publishes commits itself; a workspace's workers are all on
                # the node that writes it, which pushes and replaces them there.
                return
            case CallForward(workspace=name):
                self._spawn(self._to_writer(name, notice))
            case CallAnswered(origin=origin) | CallFailed(origin=origin):
                self._spawn(self._publish(origin, notice))
            case ForwardAnswered(origin=origin):
                self._spawn(self._publish(origin, notice))
            case Forwarded(target=target):
                self._spawn(self._publish(target, notice))

    def close(self) -> None:
        """Stop at once; :meth:`aclose` then waits for every task and connection to end."""
        for task in list(self._tasks):
            task.cancel()
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()

    async def aclose(self) -> None:
        self.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._client.aclose()

    def _spawn(self, job: Any) -> None:
        task = asyncio.get_running_loop().create_task(job)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, node: str, notice: Notice) -> None:
        try:
            await self._send(node, notice)
        except StoreUnavailableError as exc:
            log.warning("cluster_notice_lost", notice=type(notice).__name__, error=str(exc))

    async def _send(self, node: str, notice: Notice) -> None:
        async with self._replied():
            await self._client.publish(self._inbox_of(node), encode_notice(notice))

    @contextlib.asynccontextmanager
    async def _replied(self) -> AsyncIterator[None]:
        """Around a call on the asyncio client: Redis unreachable, or no reply within
        ``REPLY_TIMEOUT_S``, raises :class:`StoreUnavailableError` (and ``/healthz`` says not
        ready until the store's next good read); so does any other failure of the call."""
        try:
            with self.store.reading():
                async with asyncio.timeout(REPLY_TIMEOUT_S):
                    yield
        except StoreUnavailableError:
            raise
        except (redis.RedisError, OSError) as exc:
            raise StoreUnavailableError(f"Redis did not carry out the call: {exc}") from exc

    async def _to_writer(self, name: str, notice: CallForward) -> None:
        code = ErrorCode.NOT_FOUND
        reason = f"run {notice.run_id} is not connected to workspace {name!r}"
        try:
            writer = await asyncio.to_thread(self.store.writer_of, name)
        except StoreUnavailableError as exc:
            writer, code, reason = None, ErrorCode.INTERNAL, str(exc)
        if writer is None or writer == self._node:
            if self._member is not None:
                self._member.remote(CallFailed(notice.origin, notice.call, code, reason))
            return
        await self._publish(writer, notice)

    # Writers --------------------------------------------------------------------------------

    async def claim(self, name: str) -> str | None:
        """``None`` once this node writes ``name`` (claimed now if it was free), else the
        node that does."""
        holder: str | None = ""
        for _ in range(3):
            # "": the claim lapsed between taking it and reading who holds it: try again.
            holder = await asyncio.to_thread(self.store.claim, name)
            if holder != "":
                break
        return holder

    async def stored(self, name: str) -> StoredWorkspace | None:
        """``name`` as stored, for this node that just claimed it. If the store went back
        behind this node's mirror of it (a failover its position check has not seen yet),
        the workspace moves to a new epoch first: writing on from the store's end in the same
        epoch would give again offsets this node's watchers have read."""
        saved = await asyncio.to_thread(self.store.stored, name)
        position = None if self._member is None else self._member.mirror_position(name)
        if saved is None or position is None:
            return saved
        epoch, seen_last = position
        if saved.state.epoch == epoch and saved.state.last_offset < seen_last:
            await asyncio.to_thread(self.store.new_epoch_after_rollback, name, epoch, seen_last)
            saved = await asyncio.to_thread(self.store.stored, name)
        return saved

    async def node_url(self, node: str) -> str | None:
        """The address of ``node`` while it is alive."""
        async with self._replied():
            url = await self._client.get(f"{self._prefix}:node:{node}:url")
        return None if url is None else str(url.decode())

    async def forward(self, notice: Callable[[int], Forwarded]) -> ForwardAnswered:
        """Send a request to the node that writes its workspace; its answer, or a timeout."""
        self._next_request += 1
        request = self._next_request
        forwarded = notice(request)
        future: asyncio.Future[ForwardAnswered] = asyncio.get_running_loop().create_future()
        self._pending[request] = future
        try:
            async with asyncio.timeout(self.request_timeout_s):
                await self._send(forwarded.target, forwarded)
                return await future
        except TimeoutError:
            message = f"node {forwarded.target} did not answer in {self.request_timeout_s:g} s"
            return ForwardAnswered(self._node, request, ErrorCode.TIMEOUT, message)
        except StoreUnavailableError as exc:
            message = f"the request cannot reach node {forwarded.target}: {exc}"
            return ForwardAnswered(self._node, request, ErrorCode.INTERNAL, message)
        finally:
            self._pending.pop(request, None)

    def answered(self, answer: ForwardAnswered) -> None:
        future = self._pending.get(answer.request)
        if future is not None and not future.done():
            future.set_result(answer)

    # Following ------------------------------------------------------------------------------

    async def _listen(self) -> None:
        """Hear commit hints and notices; open the subscription again when it goes quiet."""
        loop = asyncio.get_running_loop()
        backoff = 0.1
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.psubscribe(self._commits_pattern)
                await pubsub.subscribe(self._inbox_of(self._node))
                self.listening = True
                self._listening.set()
                backoff = 0.1
                # Whatever was committed while not subscribed is found by a check now.
                self._check_now.set()
                heard = loop.time()
                probed: float | None = None
                while True:
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=self._probe_s / 4
                    )
                    now = loop.time()
                    if message is not None:
                        heard, probed = now, None
                        self._heard(message)
                        continue
                    if now - heard < self._probe_s:
                        continue
                    if probed is None:
                        probed = now
                        async with asyncio.timeout(REPLY_TIMEOUT_S):
                            await self._client.publish(self._inbox_of(self._node), _PROBE)
                    elif now - probed >= self._probe_s:
                        raise ConnectionError("the subscription heard not even its own probe")
            except (redis.RedisError, OSError) as exc:
                self.listening = False
                self.counters["cluster_resubscribes"] += 1
                log.warning("cluster_subscription_lost", error=str(exc))
                await asyncio.sleep(backoff)
                backoff = min(2.0, backoff * 2)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _heard(self, message: dict[str, Any]) -> None:
        channel = message["channel"].decode()
        data: bytes = message["data"]
        name = self._workspace_of(channel)
        if name is not None:
            self.counters["cluster_hints"] += 1
            self._mark(name)
            return
        if data == _PROBE or self._member is None:
            return
        try:
            notice = decode_notice(data)
        except (msgspec.DecodeError, msgspec.ValidationError, KeyError) as exc:
            log.warning("cluster_notice_unreadable", error=str(exc))
            return
        if isinstance(notice, ForwardAnswered):
            self.answered(notice)
        else:
            self._member.remote(notice)

    def _mark(self, name: str) -> None:
        self._dirty.add(name)
        self._dirty_event.set()

    async def _follow(self) -> None:
        """Bring the mirrors marked by hints and checks up to the store, one at a time."""
        while True:
            await self._dirty_event.wait()
            self._dirty_event.clear()
            while self._dirty:
                name = self._dirty.pop()
                if self._idle_now(name):
                    self._idle.add(name)
                    self._idle_event.set()
                    continue
                try:
                    await self._follow_one(name)
                except StoreUnavailableError as exc:
                    log.warning("cluster_follow_failed", workspace=name, error=str(exc))
                    self._dirty.add(name)
                    await asyncio.sleep(0.5)

    def _idle_now(self, name: str) -> bool:
        """Whether ``name`` waits for the next idle round: mirrored here, written elsewhere
        and followed by no watcher here (a workspace new here is read at once, so that
        lists show it)."""
        member = self._member
        return (
            member is not None
            and not member.watched(name)
            and not member.writes(name)
            and member.mirror_position(name) is not None
        )

    async def _follow_idle(self) -> None:
        """Every ``IDLE_FOLLOW_S`` while any wait, read the workspaces that no watcher here
        follows (their state only)."""
        while True:
            await self._idle_event.wait()
            await asyncio.sleep(IDLE_FOLLOW_S)
            self._idle_event.clear()
            names, self._idle = list(self._idle), set()
            for index, name in enumerate(names):
                try:
                    await self._follow_one(name)
                except StoreUnavailableError as exc:
                    # The rest wait for the next round: a warning per round, not one per
                    # workspace, while the store is away.
                    log.warning(
                        "cluster_follow_failed",
                        workspace=name,
                        waiting=len(names) - index,
                        error=str(exc),
                    )
                    self._idle.update(names[index:])
                    self._idle_event.set()
                    break

    async def follow_now(self, name: str) -> None:
        """Look at ``name`` in the store now (a request names a workspace this node has not
        heard of yet)."""
        try:
            await self._follow_one(name)
        except StoreUnavailableError as exc:
            log.warning("cluster_follow_failed", workspace=name, error=str(exc))

    async def _follow_one(self, name: str) -> None:
        member = self._member
        if member is None or member.writes(name):
            return
        position = member.mirror_position(name)
        # Events are read only for watchers of the workspace here; without any, its state is
        # all this node keeps (for subscriptions to come, lists and calls).
        reading = position if member.watched(name) else None
        self.counters["cluster_follows"] += 1
        # On the asyncio client: through a thread, a follow cost twice the CPU, once per commit
        # elsewhere.
        keys, args = self.store.follow_call(name, reading, FOLLOW_READ_EVENTS)
        async with self._replied():
            reply = await self._follow_script(keys=keys, args=args)
        found = self.store.followed(reading, reply)
        if isinstance(found, FollowedInPart):
            found = await asyncio.to_thread(self.store.follow, name, reading, FOLLOW_READ_EVENTS)
        if member.writes(name):
            return  # claimed here meanwhile
        if member.mirror_position(name) != position:
            self._mark(name)  # moved meanwhile: look again
            return
        if found is None:
            if position is not None:
                member.mirror_removed(name, position[0])
            return
        head, state = found.head, found.state
        if position is not None and position[0] == head.epoch and head.last_offset < position[1]:
            # The store went back behind what this node had read: a new epoch, so that no
            # reader skips the offsets that will be given again.
            await asyncio.to_thread(
                self.store.new_epoch_after_rollback, name, head.epoch, position[1]
            )
            self._mark(name)
            return
        if position is None or position[0] != head.epoch:
            member.mirrored(state, head.first_offset, [])
            return
        member.mirrored(state, head.first_offset, found.events or [])

    async def _check(self) -> None:
        """Compare every mirror with the store: repairs hints that were lost, finds
        workspaces created or deleted elsewhere."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._check_s):
                    await self._check_now.wait()
            self._check_now.clear()
            member = self._member
            if member is None:
                continue
            try:
                heads = await asyncio.to_thread(self.store.heads)
            except StoreUnavailableError as exc:
                log.warning("cluster_check_failed", error=str(exc))
                continue
            for name, head in heads.items():
                if member.writes(name) or name in self._idle:
                    continue  # read in the next idle round anyway
                if _differs(member.mirror_position(name), head):
                    self.counters["cluster_repairs"] += 1
                    self._mark(name)
            for name, _epoch in member.mirrors():
                if name not in heads:
                    self._mark(name)
            await self._adopt_orphans(member, heads)

    async def _adopt_orphans(self, member: ClusterMember, heads: dict[str, WorkspaceHead]) -> None:
        """Claim the workspaces whose writer died with runs connected to it, once they have
        been without a writer for the grace. Nothing else would: a claim is made when a
        worker or a request comes, and until then every node would show those runs connected,
        and never expire them. Within the grace, a worker that comes back claims the
        workspace on the node it reaches."""
        shown = [name for name in member.mirrors_with_connected_runs() if name in heads]
        orphans: list[str] = []
        if shown:
            try:
                orphans = await asyncio.to_thread(self.store.unwritten, shown)
            except StoreUnavailableError as exc:
                log.warning("cluster_check_failed", error=str(exc))
                return
        now = asyncio.get_running_loop().time()
        since = {name: self._unwritten_since.get(name, now) for name in orphans}
        self._unwritten_since = since
        for name, first_seen in list(since.items()):
            if now - first_seen >= self._adopt_after_s:
                del self._unwritten_since[name]
                self.counters["cluster_adoptions"] += 1
                member.adopt(name)

    def advertise(self, url: str) -> None:
        """This node listens now, reachable at ``url``: enter the node list."""
        self.url = url
        self._advertised.set()

    async def _register(self) -> None:
        """Keep this node in the node list with its address."""
        await self._advertised.wait()
        while True:
            counters = {} if self._member is None else self._member.counters_now()
            try:
                async with self._replied(), self._client.pipeline(transaction=False) as pipe:
                    pipe.hset(f"{self._prefix}:nodes", self._node, self.url)
                    pipe.set(f"{self._prefix}:node:{self._node}:url", self.url, px=self._lease_ms)
                    pipe.set(
                        self._stats_key(self._node), _ENCODER.encode(counters), px=self._lease_ms
                    )
                    await pipe.execute()
            except StoreUnavailableError as exc:
                log.warning("cluster_register_failed", error=str(exc))
            await asyncio.sleep(self._lease_ms / 3000)

    def _stats_key(self, node: str) -> str:
        return f"{self._prefix}:node:{node}:stats"

    async def cluster_counters(self, mine: dict[str, int | float]) -> dict[str, int | float]:
        """Counters of every live node: ``node.<name>.<counter>`` each (the others' as they
        last reported them, at most a third of ``--claim-lease`` ago: ``report_age_s`` says
        how long ago), and ``cluster.<counter>`` their sums for the counters that add up."""
        try:
            async with self._replied():
                names = sorted(
                    key.decode() for key in await self._client.hkeys(f"{self._prefix}:nodes")
                )
                others = [name for name in names if name != self._node]
                reports: list[bytes | None] = []
                remaining_ms: list[int] = []
                if others:
                    async with self._client.pipeline(transaction=False) as pipe:
                        pipe.mget([self._stats_key(name) for name in others])
                        for name in others:
                            pipe.pttl(self._stats_key(name))
                        reports, *remaining_ms = await pipe.execute()
        except StoreUnavailableError as exc:
            log.warning("cluster_stats_unavailable", error=str(exc))
            return {"cluster.nodes_reporting": 1}
        by_node: dict[str, dict[str, int | float]] = {self._node: mine}
        ages_s: dict[str, float] = {self._node: 0.0}
        for name, report, ttl_ms in zip(others, reports, remaining_ms, strict=True):
            if report is not None:
                by_node[name] = _COUNTERS_DECODER.decode(report)
                ages_s[name] = _report_age_s(self._lease_ms, ttl_ms)
        counters: dict[str, int | float] = {"cluster.nodes_reporting": len(by_node)}
        for name, values in sorted(by_node.items()):
            counters[f"node.{name}.report_age_s"] = ages_s[name]
            for key in _NODE_COUNTERS:
                if key in values:
                    counters[f"node.{name}.{key}"] = values[key]
                    counters[f"cluster.{key}"] = counters.get(f"cluster.{key}", 0) + values[key]
        return counters


def _report_age_s(lease_ms: int, ttl_ms: int) -> float:
    """How long ago a node wrote its report, from the time its key has left to live: on the
    server's clock, as the nodes' own clocks may differ. Each report is written with the whole
    lease to live (the same ``--claim-lease`` on every node); a key that expired between the
    read and its time to live (negative) lived all of it."""
    return (max(0, lease_ms - ttl_ms) if ttl_ms >= 0 else lease_ms) / 1000


def _differs(position: tuple[int, int] | None, head: WorkspaceHead) -> bool:
    """Whether a mirror differs from the store's head (ahead of it too: the store went back)."""
    return position is None or position[0] != head.epoch or position[1] != head.last_offset
