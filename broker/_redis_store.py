"""A :class:`~broker._store.Store` in Redis, for broker nodes that share their workspaces.

Key layout and each script's contract: docs/storage.md, "Redis". In short, per workspace (the
``{name}`` hash tag keeps a workspace's keys together): a meta hash (epoch, first and last
offset, the folded state), a stream of chunks keyed by their last offset, the runs' dedupe
positions, and an owner key: the token of the one node that writes the workspace, a lease
the node renews (:meth:`RedisStore.renew`). ``ph:workspaces`` lists every workspace. Per
notification sink (``{sink}`` hash tag, outside every workspace's: no Redis Cluster): its queue,
its counters and its sender lease; ``ph:notify:sinks`` lists the sinks.

Every write is a Lua script (``_redis_commit.lua``, ``_redis_trim.lua``, ``_redis_delete.lua``)
that first checks the owner token: a node that lost a workspace (paused past its lease while
another node took it over) cannot write a byte of it. The commit script also checks that the
chunks continue the stored stream, so offsets stay gapless whatever happens, and recognises a
commit sent again after a lost reply. A commit's notifications are queued by the script call of
their workspace, after its checks: with the events, or not at all.

Durability (``--redis-durability``): ``aof`` acknowledges once the commit is fsynced to the
primary's AOF (``WAITAOF 1 0`` on the commit's connection; on a server without ``WAITAOF``,
only with ``appendfsync always``); ``replica`` once it is fsynced on the primary and on at
least one replica (``WAITAOF 1 1``). :func:`check_server` refuses a server that cannot keep the
promise, and says why.

Redis unreachable: :meth:`RedisStore.commit` retries (with backoff, logging once) until the
commit is stored and fsynced as promised, so the broker holds the acks meanwhile; scripts are
idempotent, so a retry never stores twice. Reads raise :class:`StoreUnavailableError`.

Threading: one client (its connection pool is thread-safe); ``commit``, ``trim`` and
``forget_runs`` run in the writer's thread, the rest anywhere.
"""

from __future__ import annotations

import contextlib
import datetime
import secrets
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final, Literal

import msgspec
import structlog

from schema import EventMsg, WorkspaceState

from ._notify import Notification, QueuedNotification, SinkQueueStats
from ._notify_queue import DEFAULT_BOUND, by_sink
from ._redis_url import RedisTarget
from ._store import Commit, HistoryFilter, StoredWorkspace, StoreUnavailableError

try:
    import redis
    import redis.asyncio
    import redis.asyncio.retry
    import redis.asyncio.sentinel
    import redis.retry
    import redis.sentinel
    from redis.backoff import ExponentialWithJitterBackoff
    from redis.commands.core import Script
except ImportError:  # pragma: no cover - the redis extra is not installed
    redis = None  # type: ignore[assignment]

__all__ = [
    "CHUNK_BYTES",
    "CHUNK_EVENTS",
    "Durability",
    "Followed",
    "FollowedInPart",
    "RedisStore",
    "StoreConflictError",
    "StoreUnavailableError",
    "StoreUnusableError",
    "WorkspaceHead",
    "check_server",
]

log = structlog.get_logger("pierhead.store")

Durability = Literal["aof", "replica"]

CHUNK_EVENTS: Final = 512
"""Most events in one stream entry (as in the SQLite store)."""
CHUNK_BYTES: Final = 1 << 20
"""An entry larger than this is split in two (unless it holds a single event)."""
OWNER_LEASE_MS: Final = 10_000
"""How long a node's claim on a workspace outlives its last renewal or write."""
_WAITAOF_MS: Final = 1_000
"""One ``WAITAOF`` wait; an unsatisfied one is sent again with the commit (which is
idempotent) until it is satisfied."""
_RETRY_MAX_S: Final = 1.0
_RESENDS: Final = 3
"""Times a client sends a call again after its connection failed (a server restarted, a
connection it closed). Not after a timeout: redis-py's default (ten times, after either) held
every call for about a minute, eleven socket timeouts, while a server did not answer."""
_READ_CHUNKS: Final = 64
_LOAD_BATCH: Final = 256
"""Workspaces a starting node claims (in two or three round trips) and reads (in one) at a
time."""
_PAGE_CHUNKS: Final = 32
_INDEX: Final = "workspaces"
_NOTIFY_SINKS: Final = "notify:sinks"


class StoreUnusableError(RuntimeError):
    """The Redis server cannot keep the durability promise asked for (or cannot be reached at
    start); the message says why."""


class StoreConflictError(RuntimeError):
    """A write the node may not make: another node owns the workspace, or the stored stream
    does not continue where the node's does (the server lost data)."""


@dataclass(frozen=True, slots=True)
class ServerTraits:
    """What :func:`check_server` found, for the start-up log line."""

    version: str
    waitaof: bool
    appendfsync: str | None
    replicas: int


def open_client(target: RedisTarget, *, asynchronous: bool, **options: Any) -> Any:
    """A client of the Redis ``target`` names: blocking or asyncio. For ``sentinel://``, a
    client of the primary the Sentinels name, which asks them again after a failover."""
    client_class: Any = redis.asyncio.Redis if asynchronous else redis.Redis
    retry_class: Any = redis.asyncio.retry.Retry if asynchronous else redis.retry.Retry
    retry = retry_class(
        ExponentialWithJitterBackoff(cap=1.0, base=0.01),
        _RESENDS,
        supported_errors=(redis.ConnectionError,),
    )
    options = {"retry": retry, **target.client_options(), **options}
    if target.scheme != "sentinel":
        return client_class(**options)
    module: Any = redis.asyncio.sentinel if asynchronous else redis.sentinel
    sentinels = module.Sentinel(list(target.sentinels), socket_timeout=2.0)
    return sentinels.master_for(target.service, redis_class=client_class, **options)


def _script(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _script_with_chunks(name: str) -> str:
    """A read script with ``_redis_chunks.lua``'s function put after its first line: the
    ``#!lua`` line with the script's flags must stay first."""
    flags, _, body = _script(name).partition("\n")
    return f"{flags}\n{_script('_redis_chunks.lua')}{body}"


def _microseconds(moment: datetime.datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _queue_script(pipe: Any, script: Script, keys: Sequence[str], args: Sequence[Any]) -> None:
    """Queue a call of ``script`` on ``pipe`` as a bare ``EVALSHA``. Queued the way redis-py
    offers (``script(client=pipe)``), the pipeline first asks the server whether it has its
    scripts: a round trip more for every commit. A server that lacks one answers ``NOSCRIPT``
    and writes nothing of that call (:meth:`RedisStore.commit` loads them and sends it again)."""
    pipe.evalsha(script.sha, len(keys), *keys, *args)


def _claim_holder(holder: bytes | None) -> str:
    """The node that holds a claim, from its token; "" when the claim lapsed meanwhile (the
    next claim takes it)."""
    return "" if holder is None else holder.decode().partition("/")[0]


def check_server(client: Any, durability: Durability) -> ServerTraits:
    """The server's traits, or :class:`StoreUnusableError` when it cannot provide
    ``durability``."""
    info = client.info()
    version = str(info.get("valkey_version") or info.get("redis_version") or "unknown")
    if not int(info.get("aof_enabled", 0)):
        raise StoreUnusableError(
            f"--redis-durability {durability} needs the server's append-only file, and it is "
            "off (appendonly no): an acknowledged event would be lost when the server restarts"
        )
    waitaof = True
    try:
        client.execute_command("WAITAOF", 0, 0, 0)
    except redis.ResponseError:
        waitaof = False
    appendfsync: str | None = None
    with contextlib.suppress(redis.ResponseError):
        appendfsync = str(client.config_get("appendfsync").get("appendfsync") or "") or None
    replicas = int(info.get("connected_slaves", 0))
    if durability == "replica":
        if not waitaof:
            raise StoreUnusableError(
                f"--redis-durability replica needs WAITAOF (Redis 7.2 or Valkey 8), and the "
                f"server is {version}"
            )
        if replicas < 1:
            raise StoreUnusableError(
                "--redis-durability replica needs a replica connected to the primary, and none is"
            )
    elif not waitaof and appendfsync != "always":
        said = appendfsync or "unknown (CONFIG GET is not allowed)"
        raise StoreUnusableError(
            f"--redis-durability aof on a server without WAITAOF ({version}) needs "
            f"appendfsync always, and it is {said}"
        )
    return ServerTraits(version, waitaof, appendfsync, replicas)


@dataclass(frozen=True, slots=True)
class WorkspaceHead:
    """Where a stored workspace's stream starts and ends."""

    epoch: int
    first_offset: int
    last_offset: int


@dataclass(frozen=True, slots=True)
class Followed:
    """A workspace as a node that follows it reads it after a commit elsewhere."""

    head: WorkspaceHead
    state: WorkspaceState
    """At ``head``."""
    events: list[EventMsg] | None
    """Every event after the follower's position up to ``head``, in order; ``None`` when
    they were not read (another epoch, nothing new, too far behind, or retention removed some
    of them)."""


@dataclass(frozen=True, slots=True)
class FollowedInPart:
    """A follow reply that held as many chunks as one reply may: its events stop short of the
    head, and the rest is read as a reader reads (:meth:`RedisStore.follow` does)."""

    after: int
    head: WorkspaceHead
    state: WorkspaceState
    events: list[EventMsg]
    """After ``after``, in order; not empty."""


def _followed(
    after: int, head: WorkspaceHead, state: WorkspaceState, events: list[EventMsg]
) -> Followed:
    """The events read after ``after`` when they are every one up to the head, else ``None``
    (retention removed some: the follower jumps)."""
    whole = bool(events) and events[0].offset == after + 1
    whole = whole and len(events) == head.last_offset - after
    return Followed(head, state, events if whole else None)


@dataclass(frozen=True, slots=True)
class _Keys:
    meta: str
    chunks: str
    runs: str
    seen: str
    owner: str
    channel: str

    @classmethod
    def of(cls, prefix: str, workspace: str) -> _Keys:
        base = f"{prefix}:{{{workspace}}}"
        return cls(
            f"{base}:meta",
            f"{base}:chunks",
            f"{base}:runs",
            f"{base}:seen",
            f"{base}:owner",
            f"{base}:commits",
        )


@dataclass(frozen=True, slots=True)
class _SinkKeys:
    queue: str
    meta: str
    queued_keys: str
    lease: str

    @classmethod
    def of(cls, prefix: str, sink: str) -> _SinkKeys:
        base = f"{prefix}:notify:{{{sink}}}"
        return cls(f"{base}:queue", f"{base}:meta", f"{base}:keys", f"{base}:lease")


class RedisStore:
    """Workspace streams in one Redis database (see the module docstring)."""

    def __init__(
        self,
        target: RedisTarget,
        *,
        durability: Durability = "aof",
        node: str = "node",
        prefix: str = "ph",
        owner_lease_ms: int = OWNER_LEASE_MS,
    ) -> None:
        if redis is None:
            raise StoreUnusableError(
                "a Redis store needs the redis client: pip install 'pierhead[redis]'"
            )
        self.target = target
        self.durability: Durability = durability
        if "/" in node or not node:
            raise ValueError(f"a node name is not empty and holds no '/': {node!r}")
        self.node = node
        self.token = f"{node}/{secrets.token_hex(6)}"
        """This store's claim on the workspaces it writes: unique per process."""
        self._prefix = prefix
        self._lease_ms = owner_lease_ms
        # Typed as Any: redis-py's replies are typed as unions of every reply shape.
        self._client: Any = open_client(
            target,
            asynchronous=False,
            socket_timeout=max(5.0, 2 * _WAITAOF_MS / 1000),
            socket_connect_timeout=2.0,
        )
        try:
            self.traits = check_server(self._client, durability)
        except redis.RedisError as exc:
            self._client.close()
            raise StoreUnusableError(f"cannot use Redis at {target.redacted()}: {exc}") from exc
        except StoreUnusableError:
            self._client.close()
            raise
        self._trim_script: Script = self._client.register_script(_script("_redis_trim.lua"))
        self._delete_script: Script = self._client.register_script(_script("_redis_delete.lua"))
        self._read_script: Script = self._client.register_script(
            _script_with_chunks("_redis_read.lua")
        )
        self._follow_source = _script_with_chunks("_redis_follow.lua")
        self._follow_script: Script = self._client.register_script(self._follow_source)
        self._renew_script: Script = self._client.register_script(_script("_redis_renew.lua"))
        self._release_script: Script = self._client.register_script(_script("_redis_release.lua"))
        self._rollback_script: Script = self._client.register_script(_script("_redis_rollback.lua"))
        # Scripts that queue notifications start with the function that queues them.
        queue_function = _script("_redis_notify_queue.lua")
        self._commit_script: Script = self._client.register_script(
            queue_function + _script("_redis_commit.lua")
        )
        self._notify_script: Script = self._client.register_script(
            queue_function + _script("_redis_notify.lua")
        )
        self._notify_lease_script: Script = self._client.register_script(
            _script("_redis_notify_lease.lua")
        )
        self._notify_done_script: Script = self._client.register_script(
            _script("_redis_notify_done.lua")
        )
        self._encoder = msgspec.msgpack.Encoder()
        self._chunk_decoder = msgspec.msgpack.Decoder(list[EventMsg])
        self._state_decoder = msgspec.msgpack.Decoder(WorkspaceState)
        self._notification_decoder = msgspec.msgpack.Decoder(Notification)
        self._notify_bounds: Mapping[str, int] = {}
        self._owned: set[str] = set()
        self._owned_lock = threading.Lock()
        self._unreachable_since: float | None = None
        self._closed = False

    def _keys(self, workspace: str) -> _Keys:
        return _Keys.of(self._prefix, workspace)

    @property
    def lease_ms(self) -> int:
        """How long a claim outlives its last renewal."""
        return self._lease_ms

    @property
    def renew_interval_s(self) -> float:
        """How often :meth:`renew` should run: three times within a claim's life."""
        return self._lease_ms / 3000

    @property
    def owned(self) -> frozenset[str]:
        """The workspaces this node writes."""
        with self._owned_lock:
            return frozenset(self._owned)

    # -- loading -----------------------------------------------------------------------------

    def load(self) -> list[StoredWorkspace]:
        """Every workspace no other live node owns, claimed for this node."""
        with self._reads():
            return self._load()

    def _load(self) -> list[StoredWorkspace]:
        names = sorted(name.decode() for name in self._client.smembers(self._index))
        loaded: list[StoredWorkspace] = []
        elsewhere = 0
        # A few hundred at a time, each step a round trip or two: claimed and read one by one, a
        # node joining a cluster of 10,000 workspaces took seconds to start.
        for start in range(0, len(names), _LOAD_BATCH):
            batch = names[start : start + _LOAD_BATCH]
            holders = self._claim_many(batch)
            mine = [name for name, holder in zip(batch, holders, strict=True) if holder is None]
            elsewhere += len(batch) - len(mine)
            loaded += (saved for saved in self._stored_many(mine) if saved is not None)
        if elsewhere:
            log.info("workspaces_written_elsewhere", workspaces=elsewhere)
        return loaded

    def claim(self, name: str) -> str | None:
        """Make this node the writer of ``name`` if no other live node is: ``None`` when this
        node writes it now, else the name of the node that does."""
        with self._reads():
            return self._claim(name)

    def _claim(self, name: str) -> str | None:
        keys = self._keys(name)
        if self._renew_script(keys=[keys.owner], args=[self.token, self._lease_ms]) == 1:
            with self._owned_lock:
                self._owned.add(name)
            return None
        return _claim_holder(self._client.get(keys.owner))

    def _claim_many(self, names: Sequence[str]) -> list[str | None]:
        """:meth:`claim` of each of ``names``, in a few round trips (a pipeline's scripts
        cost one more, to check that the server has them)."""
        held = dict(zip(names, self._held(names), strict=True))
        with self._owned_lock:
            self._owned.update(name for name in names if held[name])
        others = [name for name in names if not held[name]]
        with self._client.pipeline(transaction=False) as pipe:
            for name in others:
                pipe.get(self._keys(name).owner)
            holders = dict(zip(others, pipe.execute(), strict=True))
        return [_claim_holder(holders[name]) if name in holders else None for name in names]

    def _held(self, names: Sequence[str]) -> list[bool]:
        """Whether this node holds the claim on each of ``names`` now (renewed, or taken
        where it was free), in one pipeline."""
        with self._client.pipeline(transaction=False) as pipe:
            for name in names:
                self._renew_script(
                    keys=[self._keys(name).owner], args=[self.token, self._lease_ms], client=pipe
                )
            return [reply == 1 for reply in pipe.execute()]

    def writer_of(self, name: str) -> str | None:
        """The node that writes ``name`` now, if any."""
        with self._reads():
            holder = self._client.get(self._keys(name).owner)
        return None if holder is None else _claim_holder(holder)

    def unwritten(self, names: Sequence[str]) -> list[str]:
        """Those of ``names`` no live node writes (their writer's claim lapsed), in one
        round trip."""
        with self._reads(), self._client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.get(self._keys(name).owner)
            holders = pipe.execute()
        return [name for name, holder in zip(names, holders, strict=True) if holder is None]

    def stored(self, name: str) -> StoredWorkspace | None:
        """The workspace as stored (for the node that just claimed it); ``None`` if it is
        not stored."""
        with self._reads():
            return self._stored(name)

    def stored_many(self, names: Sequence[str]) -> list[StoredWorkspace | None]:
        """:meth:`stored` of each of ``names``, in one round trip."""
        with self._reads():
            return self._stored_many(names)

    def _stored(self, name: str) -> StoredWorkspace | None:
        (saved,) = self._stored_many([name])
        return saved

    def _stored_many(self, names: Sequence[str]) -> list[StoredWorkspace | None]:
        """:meth:`stored` of each of ``names``, as one snapshot (one transaction)."""
        if not names:
            return []
        with self._client.pipeline(transaction=True) as pipe:
            for name in names:
                keys = self._keys(name)
                pipe.hmget(keys.meta, ["epoch", "first", "last", "state"])
                pipe.hgetall(keys.runs)
            replies = pipe.execute()
        found: list[StoredWorkspace | None] = []
        for index in range(0, len(replies), 2):
            (epoch, first, last, body), runs = replies[index], replies[index + 1]
            found.append(
                None
                if epoch is None or body is None
                else StoredWorkspace(
                    state=self._state(body, epoch),
                    first_offset=min(int(first), int(last) + 1),
                    run_seqs={run.decode(): int(seq) for run, seq in runs.items()},
                )
            )
        return found

    def heads(self) -> dict[str, WorkspaceHead]:
        """Every stored workspace's epoch and offsets: what another node's commits have
        reached, for the nodes that follow them."""
        with self._reads():
            names = sorted(name.decode() for name in self._client.smembers(self._index))
            with self._client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.hmget(self._keys(name).meta, ["epoch", "first", "last"])
                replies = pipe.execute()
        return {
            name: WorkspaceHead(int(epoch), int(first), int(last))
            for name, (epoch, first, last) in zip(names, replies, strict=True)
            if epoch is not None
        }

    @property
    def follow_script_source(self) -> str:
        """The script :meth:`follow` calls, for a node that calls it on its asyncio client
        (:meth:`follow_call` gives its keys and arguments, :meth:`followed` reads its reply)."""
        return self._follow_source

    def follow_call(
        self, name: str, position: tuple[int, int] | None, limit: int
    ) -> tuple[list[str], list[int | str]]:
        """The follow script's keys and arguments (see :meth:`follow`)."""
        epoch, after = position if position is not None else (None, 0)
        keys = self._keys(name)
        return [keys.meta, keys.chunks], [
            "" if epoch is None else epoch,
            after + 1,
            limit,
            _READ_CHUNKS,
        ]

    def follow(self, name: str, position: tuple[int, int] | None, limit: int) -> Followed | None:
        """What a node following ``name`` needs after a commit elsewhere, in one round trip:
        its head, its state there and, when ``position`` (epoch, last offset read) is in the
        stored epoch and 1 to ``limit`` events behind the head, those events. ``None`` when
        the workspace is not stored."""
        keys, args = self.follow_call(name, position, limit)
        with self._reads():
            reply = self._follow_script(keys=keys, args=args)
        found = self.followed(position, reply)
        if isinstance(found, FollowedInPart):
            # As many chunks as one reply holds: the rest as a reader reads it (a page at a
            # time, each reply bounded).
            last = found.events[-1].offset
            rest = self.read(name, found.head.epoch, last, found.head.last_offset - last)
            return _followed(found.after, found.head, found.state, found.events + rest)
        return found

    def followed(
        self, position: tuple[int, int] | None, reply: list[Any]
    ) -> Followed | FollowedInPart | None:
        """The follow script's reply to ``position``: ``None`` when the workspace is not
        stored, :class:`FollowedInPart` when the events it holds stop short of the head."""
        if not reply:
            return None
        epoch, after = position if position is not None else (None, 0)
        head = WorkspaceHead(int(reply[0]), int(reply[1]), int(reply[2]))
        state = self._state(reply[3], reply[0])
        if len(reply) == 4:
            return Followed(head, state, None)
        # A chunk may begin before the offset asked for, or before the first one retention
        # kept (it cuts inside a chunk logically).
        lowest = max(after + 1, head.first_offset)
        events = [
            event
            for index in range(5, len(reply), 2)
            for event in self._chunk_decoder.decode(reply[index])
            if lowest <= event.offset <= head.last_offset
        ]
        full = (len(reply) - 4) // 2 == _READ_CHUNKS
        if full and epoch is not None and events and events[-1].offset < head.last_offset:
            return FollowedInPart(after, head, state, events)
        return _followed(after, head, state, events)

    def _state(self, body: bytes, epoch: bytes) -> WorkspaceState:
        """The stored state, in the meta hash's epoch (a new epoch after a rollback keeps the
        state written in the old one)."""
        state = self._state_decoder.decode(body)
        if state.epoch != int(epoch):
            state = msgspec.structs.replace(state, epoch=int(epoch))
        return state

    def new_epoch_after_rollback(self, name: str, epoch: int, seen_last: int) -> int | None:
        """Move ``name`` to a new epoch if its stream in ``epoch`` now ends before
        ``seen_last``, an offset seen stored (the server went back: a failover to a replica
        that lacked the latest commits). The new epoch, or ``None`` when nothing went back."""
        keys = self._keys(name)
        with self._reads():
            reply = self._rollback_script(keys=[keys.meta], args=[epoch, seen_last])
        if reply[0] != b"renewed":
            return None
        renewed = int(reply[1])
        log.warning(
            "workspace_rolled_back",
            workspace=name,
            epoch=epoch,
            seen_last=seen_last,
            new_epoch=renewed,
        )
        return renewed

    @property
    def _index(self) -> str:
        return f"{self._prefix}:{_INDEX}"

    def renew(self) -> list[str]:
        """Extend this node's claim on its workspaces; the names of those another node has
        taken meanwhile (this node may no longer write them)."""
        owned = sorted(self.owned)
        if not owned:
            return []
        with self._reads():
            held = self._held(owned)
        lost = [name for name, holds in zip(owned, held, strict=True) if not holds]
        if lost:
            with self._owned_lock:
                self._owned.difference_update(lost)
        return lost

    def release_claims(self) -> int:
        """Give up this node's claim on every workspace it writes, once it has stopped
        writing (the end of a drain): another node takes one over when its workers come back,
        at once rather than a lease later. How many were released."""
        owned = sorted(self.owned)
        if not owned:
            return 0
        with self._reads(), self._client.pipeline(transaction=False) as pipe:
            for name in owned:
                self._release_script(keys=[self._keys(name).owner], args=[self.token], client=pipe)
            released = sum(pipe.execute())
        with self._owned_lock:
            self._owned.clear()
        return int(released)

    # -- writing -----------------------------------------------------------------------------

    def commit(self, commit: Commit) -> None:
        """Store ``commit`` (each workspace's part atomically), then wait for the durability
        asked for; retried until both hold while Redis cannot be reached."""
        if commit.notify_marks:
            raise ValueError("a Redis store queues notifications in their events' commit")
        delay = 0.05
        load_scripts = load_scripts_done = False
        while True:
            try:
                if load_scripts:
                    for script in (self._commit_script, self._delete_script, self._notify_script):
                        self._client.script_load(script.script)
                    load_scripts = False
                self._commit_once(commit)
            except redis.exceptions.NoScriptError:
                # The server lost its scripts (restarted, or flushed them): load them and send
                # the commit again (what it wrote of it, it recognises). Lost again at once
                # (flushed over and over), the next try waits as after a failure.
                if load_scripts_done:
                    time.sleep(delay)
                    delay = min(_RETRY_MAX_S, delay * 2)
                load_scripts, load_scripts_done = True, True
                continue
            except (redis.ConnectionError, redis.TimeoutError, _NotDurableYetError) as exc:
                self._unreachable(exc)
                if self._closed:
                    message = "the store closed while Redis was unreachable"
                    raise StoreUnavailableError(message) from exc
                time.sleep(delay)
                delay = min(_RETRY_MAX_S, delay * 2)
                continue
            self._reachable()
            return

    def _commit_once(self, commit: Commit) -> None:
        by_workspace = commit.by_workspace
        with_state = {name for name, _ in commit.states}
        for name in by_workspace:
            if name not in with_state:
                # The script writes a workspace's events with its state: without one they
                # would be acknowledged and silently not stored.
                raise ValueError(f"a commit has events of {name!r} and not its state")
        # A notification is queued by the script call of its workspace epoch's part of the
        # commit, so with its events; one whose workspace epoch has no part in this commit (the
        # stall detector's) by a call of its own per workspace, claim-checked as well.
        with_part: dict[tuple[str, int], list[Notification]] = {}
        alone: dict[str, list[Notification]] = {}
        for notification in commit.notifications:
            part = (notification.workspace, notification.epoch)
            if part in commit.states:
                with_part.setdefault(part, []).append(notification)
            else:
                alone.setdefault(notification.workspace, []).append(notification)
        called: list[str] = []  # the workspace of each script call, in the pipeline's order
        with self._client.pipeline(transaction=False) as pipe:
            for name, epoch in commit.deleted:
                keys = self._keys(name)
                _queue_script(
                    pipe,
                    self._delete_script,
                    [keys.meta, keys.chunks, keys.runs, keys.seen, keys.owner, self._index],
                    [name, epoch, self.token, keys.channel],
                )
                called.append(name)
            runs: dict[tuple[str, int], list[tuple[str, int]]] = {}
            for (name, epoch, run_id), seq in commit.run_seqs.items():
                if (name, epoch) not in commit.states:
                    raise ValueError(f"a commit has run positions of {name!r} and not its state")
                runs.setdefault((name, epoch), []).append((run_id, seq))
            for (name, epoch), state in commit.states.items():
                events = by_workspace.get(name, ())
                self._commit_workspace(
                    pipe,
                    name,
                    epoch,
                    state,
                    events,
                    runs.get((name, epoch), []),
                    with_part.get((name, epoch), []),
                )
                called.append(name)
                with self._owned_lock:
                    self._owned.add(name)
            for name, notifications in alone.items():
                sink_keys, sink_args = self._notify_args(notifications)
                _queue_script(
                    pipe,
                    self._notify_script,
                    [self._keys(name).owner, *sink_keys],
                    [self.token, *sink_args],
                )
                called.append(name)
            if self.durability == "replica":
                pipe.execute_command("WAITAOF", 1, 1, _WAITAOF_MS)
            elif self.traits.waitaof:
                pipe.execute_command("WAITAOF", 1, 0, _WAITAOF_MS)
            replies = pipe.execute()
        with self._owned_lock:
            self._owned.difference_update(name for name, _ in commit.deleted)
        self._check_replies(commit, called, replies)

    def _commit_workspace(
        self,
        pipe: Any,
        name: str,
        epoch: int,
        state: WorkspaceState,
        events: Sequence[EventMsg],
        runs: Sequence[tuple[str, int]],
        notifications: Sequence[Notification],
    ) -> None:
        keys = self._keys(name)
        chunks = list(self._chunks(events))
        args: list[Any] = [
            name,
            epoch,
            self.token,
            self._lease_ms,
            self._encoder.encode(state),
            state.last_offset,
            len(chunks),
            len(runs),
            keys.channel,
        ]
        for chunk_events, body in chunks:
            received_us = _microseconds(max(event.received_time for event in chunk_events))
            args += [chunk_events[0].offset, chunk_events[-1].offset, received_us, body]
        # When a run was last seen, and the offset its events reach at most: forget_runs drops
        # its position only once that offset is trimmed.
        seen_us = _microseconds(events[-1].received_time) if events else 0
        for run_id, seq in runs:
            args += [run_id, seq, f"{seen_us} {state.last_offset}"]
        sink_keys, sink_args = self._notify_args(notifications)
        _queue_script(
            pipe,
            self._commit_script,
            [keys.meta, keys.chunks, keys.runs, keys.seen, keys.owner, self._index, *sink_keys],
            [*args, *sink_args],
        )

    def _notify_args(self, notifications: Sequence[Notification]) -> tuple[list[str], list[Any]]:
        """The keys and arguments ``queue_notifications`` (``_redis_notify_queue.lua``) reads:
        none without notifications."""
        if not notifications:
            return [], []
        keys = [self._notify_sinks]
        args: list[Any] = []
        for sink, queued in by_sink(notifications).items():
            sink_keys = self._sink_keys(sink)
            keys += [sink_keys.queue, sink_keys.meta, sink_keys.queued_keys]
            args += [sink, self._notify_bounds.get(sink, DEFAULT_BOUND), len(queued)]
            for notification in queued:
                args += [notification.key, self._encoder.encode(notification)]
        return keys, args

    def _chunks(self, events: Sequence[EventMsg]) -> Iterator[tuple[Sequence[EventMsg], bytes]]:
        for start in range(0, len(events), CHUNK_EVENTS):
            yield from self._chunk(events[start : start + CHUNK_EVENTS])

    def _chunk(self, events: Sequence[EventMsg]) -> Iterator[tuple[Sequence[EventMsg], bytes]]:
        body = self._encoder.encode(events)
        if len(body) > CHUNK_BYTES and len(events) > 1:
            half = len(events) // 2
            yield from self._chunk(events[:half])
            yield from self._chunk(events[half:])
            return
        yield events, body

    def _check_replies(self, commit: Commit, names: Sequence[str], replies: list[Any]) -> None:
        for name, reply in zip(names, replies, strict=False):
            status = reply[0]
            if status in (b"stored", b"deleted"):
                continue
            held = reply[1].decode() if isinstance(reply[1], bytes) else str(reply[1])
            if status == b"owner":
                raise StoreConflictError(
                    f"workspace {name!r} is written by another node now ({held}): this node "
                    "lost its claim on it"
                )
            if status == b"epoch":
                raise StoreConflictError(f"workspace {name!r} is in epoch {held} in Redis")
            if status == b"lost":
                raise StoreConflictError(
                    f"Redis lost workspace {name!r}: its data is gone from the server"
                )
            if status == b"gap":
                self._gap(commit, name)
                raise StoreConflictError(
                    f"workspace {name!r} ends at offset {held} in Redis, not where this "
                    "node's commit continues it (the server lost data)"
                )
            raise RuntimeError(f"unexpected reply from the commit script: {reply!r}")
        if len(replies) > len(names):
            wanted = (1, 1 if self.durability == "replica" else 0)
            fsynced = tuple(int(value) for value in replies[-1])
            if fsynced[0] < wanted[0] or fsynced[1] < wanted[1]:
                raise _NotDurableYetError(
                    f"WAITAOF: fsynced on {fsynced[0]} local and {fsynced[1]} replica AOFs, "
                    f"wanted {wanted[0]} and {wanted[1]}"
                )

    def _gap(self, commit: Commit, name: str) -> None:
        """This node's commit does not continue the stored stream: if the store went back
        behind what this node stored, the workspace moves to a new epoch (its readers are told
        they did not recover; no offset is silently reused)."""
        events = commit.by_workspace.get(name)
        for state_name, epoch in commit.states:
            if state_name == name and events:
                with contextlib.suppress(StoreUnavailableError):
                    self.new_epoch_after_rollback(name, epoch, events[0].offset - 1)

    def _unreachable(self, error: Exception) -> None:
        if self._unreachable_since is None:
            self._unreachable_since = time.monotonic()
            log.warning("store_unreachable", store=self.target.redacted(), error=str(error))

    def _reachable(self) -> None:
        if self._unreachable_since is not None:
            down_s = round(time.monotonic() - self._unreachable_since, 3)
            self._unreachable_since = None
            log.info("store_reachable", store=self.target.redacted(), down_s=down_s)

    # -- retention ---------------------------------------------------------------------------

    def trim(
        self, *, max_events: int, max_age: datetime.timedelta, now: datetime.datetime
    ) -> dict[tuple[str, int], int]:
        """Retention of the workspaces this node writes (each is trimmed by its owner only)."""
        cutoff_us = _microseconds(now - max_age)
        trimmed: dict[tuple[str, int], int] = {}
        for name in sorted(self.owned):
            with self._reads():
                keys = self._keys(name)
                epoch, first, last = self._client.hmget(keys.meta, ["epoch", "first", "last"])
                if epoch is None:
                    continue
                upto = max(int(last) - max_events, self._young_after(keys, int(first), cutoff_us))
                if upto < int(first):
                    continue
                reply = self._trim_script(
                    keys=[keys.meta, keys.chunks, keys.owner], args=[epoch, self.token, upto + 1]
                )
            if reply[0] == b"trimmed":
                trimmed[name, int(epoch)] = int(reply[1])
        return trimmed

    def _young_after(self, keys: _Keys, first: int, cutoff_us: int) -> int:
        """The offset before the first event received at or after the cut-off."""
        start = f"{first}-0"
        while True:
            entries = self._client.xrange(keys.chunks, start, "+", count=_PAGE_CHUNKS)
            for _, fields in entries:
                if int(fields[b"t"]) < cutoff_us:
                    continue
                for event in self._chunk_decoder.decode(fields[b"d"]):
                    if event.offset >= first and _microseconds(event.received_time) >= cutoff_us:
                        return event.offset - 1
            if len(entries) < _PAGE_CHUNKS:
                return int(self._client.hget(keys.meta, "last") or 0)
            start = f"({entries[-1][0].decode()}"

    def forget_runs(
        self,
        *,
        idle_for: datetime.timedelta,
        live: Iterable[tuple[str, int, str]],
        now: datetime.datetime,
    ) -> list[tuple[str, int, str]]:
        """Drop the positions of runs unseen for ``idle_for`` whose events are all trimmed,
        in the workspaces this node writes."""
        now_us = _microseconds(now)
        idle_before = _microseconds(now - idle_for)
        connected: dict[str, set[str]] = {}
        for name, _epoch, run_id in live:
            connected.setdefault(name, set()).add(run_id)
        forgotten: list[tuple[str, int, str]] = []
        for name in sorted(self.owned):
            with self._reads():
                keys = self._keys(name)
                epoch, first = self._client.hmget(keys.meta, ["epoch", "first"])
                if epoch is None:
                    continue
                seen = {
                    run.decode(): value for run, value in self._client.hgetall(keys.seen).items()
                }
                for run_id in connected.get(name, ()):
                    self._client.hset(keys.seen, run_id, f"{now_us} {self._last(keys)}")
                    seen.pop(run_id, None)
                for run_id, value in seen.items():
                    seen_us, _, last_offset = value.decode().partition(" ")
                    if int(seen_us) >= idle_before or int(last_offset or 0) >= int(first):
                        continue
                    self._client.hdel(keys.runs, run_id)
                    self._client.hdel(keys.seen, run_id)
                    forgotten.append((name, int(epoch), run_id))
        return forgotten

    def _last(self, keys: _Keys) -> int:
        return int(self._client.hget(keys.meta, "last") or 0)

    # -- reading -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Around a read of this store's server on another client (a node's asyncio client,
        its time bounded by the caller): a failure to reach the server, or no reply in time,
        raises :class:`StoreUnavailableError` and counts as this store's own reads' do."""
        with self._reads():
            try:
                yield
            except TimeoutError as exc:
                raise redis.TimeoutError("no reply in time") from exc

    @contextlib.contextmanager
    def _reads(self) -> Iterator[None]:
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self._unreachable(exc)
            raise StoreUnavailableError(f"Redis cannot be reached: {exc}") from exc
        self._reachable()

    def read(self, workspace: str, epoch: int, after: int, limit: int) -> list[EventMsg]:
        """Up to ``limit`` stored events with offset > ``after``, oldest first."""
        keys = self._keys(workspace)
        events: list[EventMsg] = []
        wanted = after + 1
        # As many chunks as full ones would take, doubled while they hold fewer events: a page
        # of a long backlog fetches a few chunks, not _READ_CHUNKS of them (up to 64 MiB).
        count = min(_READ_CHUNKS, limit // CHUNK_EVENTS + 2)
        with self._reads():
            while len(events) < limit:
                reply = self._read_script(
                    keys=[keys.meta, keys.chunks], args=[epoch, wanted, count]
                )
                if reply[0] != b"ok":
                    return []
                wanted = max(wanted, int(reply[1]))
                for index in range(3, len(reply), 2):
                    for event in self._chunk_decoder.decode(reply[index + 1]):
                        if event.offset >= wanted:
                            events.append(event)
                            wanted = event.offset + 1
                if len(reply) - 3 < 2 * count:
                    break
                count = min(_READ_CHUNKS, 2 * count)
        return events[:limit]

    def history(self, query: HistoryFilter) -> tuple[list[EventMsg], bool]:
        """A page as ``schema.HistoryQuery`` describes it (each chunk decoded and filtered:
        the Redis store keeps no index by kind, series or run)."""
        if query.kinds is not None and not query.kinds:
            return [], False
        wanted = query.limit + 1
        events: list[EventMsg] = []
        keys = self._keys(query.workspace)
        with self._reads():
            epoch, first = self._client.hmget(keys.meta, ["epoch", "first"])
            if epoch is None or int(epoch) != query.epoch:
                return [], False
            for chunk in self._walk(keys, query):
                if query.after is None:
                    chunk.reverse()
                for event in chunk:
                    if event.offset >= int(first) and query.matches(event):
                        events.append(event)
                        if len(events) >= wanted:
                            return events[: query.limit], True
        return events, False

    def _walk(self, keys: _Keys, query: HistoryFilter) -> Iterator[list[EventMsg]]:
        """Decoded chunks in the page's order within its bounds."""
        ascending = query.after is not None
        low = "-" if query.after is None else f"{query.after + 1}-0"
        high = "+"
        if query.before is not None:
            holding = self._client.xrange(
                keys.chunks, f"{max(query.before - 1, 0)}-0", "+", count=1
            )
            if holding:
                high = holding[0][0].decode()
        while True:
            if ascending:
                entries = self._client.xrange(keys.chunks, low, high, count=_PAGE_CHUNKS)
            else:
                entries = self._client.xrevrange(keys.chunks, high, low, count=_PAGE_CHUNKS)
            for _, fields in entries:
                yield self._chunk_decoder.decode(fields[b"d"])
            if len(entries) < _PAGE_CHUNKS:
                return
            edge = entries[-1][0].decode()
            if ascending:
                low = f"({edge}"
            else:
                high = f"({edge}"

    # -- notifications -----------------------------------------------------------------------

    @property
    def _notify_sinks(self) -> str:
        return f"{self._prefix}:{_NOTIFY_SINKS}"

    def _sink_keys(self, sink: str) -> _SinkKeys:
        return _SinkKeys.of(self._prefix, sink)

    @property
    def defers_notifications(self) -> bool:
        """No: any node may be the one that dies, and no other would know to queue what it
        left; a commit's notifications go with its events, in the same script."""
        return False

    def notify_marked(self) -> dict[tuple[str, int], int]:
        return {}

    def notify_limits(self, limits: Mapping[str, int]) -> None:
        """The bound of each sink's queue, applied by this node's commits from now on."""
        self._notify_bounds = dict(limits)

    def notify_queue(self, sink: str, limit: int) -> list[QueuedNotification]:
        """Up to ``limit`` of the sink's queued notifications, oldest first."""
        if limit < 1:
            return []
        with self._reads():
            entries = self._client.xrange(self._sink_keys(sink).queue, "-", "+", count=limit)
        decode = self._notification_decoder.decode
        return [
            QueuedNotification(int(entry_id.partition(b"-")[0]), decode(fields[b"d"]))
            for entry_id, fields in entries
        ]

    def notify_done(self, sink: str, ids: Sequence[int], lease: str) -> bool:
        """Remove the sink's notifications ``ids`` if ``lease`` holds the sink's sender
        lease; ``False``, removing nothing, when it does not."""
        keys = self._sink_keys(sink)
        # Ids start at 1: any other is not queued, and would not even be a stream entry id.
        queued_ids = [id for id in ids if id > 0]
        with self._reads():
            removed = self._notify_done_script(
                keys=[keys.lease, keys.queue, keys.queued_keys], args=[lease, *queued_ids]
            )
        return bool(removed == 1)

    def notify_lease(self, sink: str, lease: str, ttl_s: float) -> bool:
        """Take the sink's sender lease when it is free (or lapsed), or renew it when
        ``lease`` holds it, for ``ttl_s``; ``False`` when another token holds it."""
        ttl_ms = max(1, round(ttl_s * 1000))
        with self._reads():
            taken = self._notify_lease_script(
                keys=[self._sink_keys(sink).lease], args=[lease, ttl_ms]
            )
        return bool(taken == 1)

    def notify_stats(self) -> dict[str, SinkQueueStats]:
        """Queued and dropped counts of every sink that has had a notification."""
        with self._reads():
            sinks = sorted(sink.decode() for sink in self._client.smembers(self._notify_sinks))
            with self._client.pipeline(transaction=True) as pipe:
                for sink in sinks:
                    keys = self._sink_keys(sink)
                    pipe.xlen(keys.queue)
                    pipe.hget(keys.meta, "dropped")
                replies = pipe.execute()
        return {
            sink: SinkQueueStats(queued=int(queued), dropped=int(dropped or 0))
            for sink, queued, dropped in zip(sinks, replies[::2], replies[1::2], strict=True)
        }

    @property
    def reachable(self) -> bool:
        return self._unreachable_since is None

    @property
    def client(self) -> Any:
        """The blocking client, which the node's tokens share (:mod:`broker._redis_tokens`)."""
        return self._client

    @property
    def prefix(self) -> str:
        return self._prefix

    def interrupt(self) -> None:
        self._closed = True

    def close(self) -> None:
        self._closed = True
        self._client.close()


class _NotDurableYetError(Exception):
    """The commit is stored but not yet fsynced where the durability mode asks."""
