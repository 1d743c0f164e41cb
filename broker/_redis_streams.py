"""Workspace streams in Redis: open an epoch, commit a batch atomically, read by offset.

A thin asyncio layer over three Lua scripts that ship with the package
(``_redis_open.lua``, ``_redis_commit.lua``, ``_redis_read.lua``; the key layout and each
script's contract are in docs/storage.md, "Redis"). Every decision that several nodes must
agree on (offsets, dedupe, the fence check, a new epoch) is made inside a script, so it is
atomic on the server whichever node calls it; this module only encodes, calls and decodes.

Scripts are sent with ``EVALSHA`` and loaded again by redis-py when the server answers
``NOSCRIPT`` (after a restart, or on a server that never saw them).

Events are stored without their workspace and offset (the key and the chunk's position say
them): :func:`encode_event` makes the stored form, :meth:`RedisStreams.read` rebuilds
:class:`~schema.EventMsg` s.

Durability: with ``appendfsync always`` a reply is sent after the write is fsynced to the
AOF; with ``everysec`` a caller that acknowledges must first :meth:`RedisStreams.wait_aof`.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Final

import msgspec
from redis.asyncio import Redis

from schema import EventMsg, Payload

__all__ = [
    "AofWait",
    "CHUNK_BYTES",
    "CHUNK_EVENTS",
    "CommitResult",
    "CommitStatus",
    "EpochChangedError",
    "StaleFenceError",
    "RedisStreams",
    "WorkspacePosition",
    "encode_event",
]

CHUNK_EVENTS: Final = 512
"""Most events in one stream entry, as in the SQLite store (kept in step with the script)."""
CHUNK_BYTES: Final = 1 << 20
"""A chunk is closed before it grows past this many bytes (unless it holds one event)."""
_READ_CHUNKS: Final = 64
"""Chunks fetched per read round trip: at most 64 x 1 MiB, usually far less."""


class StoredEvent(msgspec.Struct, frozen=True, array_like=True, omit_defaults=True, gc=False):
    """An event as a chunk holds it: the envelope less the workspace and the offset."""

    create_time: datetime.datetime
    received_time: datetime.datetime
    payload: Payload
    run_id: str | None = None
    seq: int | None = None
    series: str | None = None


_ENCODER: Final = msgspec.msgpack.Encoder()
_CHUNK_DECODER: Final = msgspec.msgpack.Decoder(list[StoredEvent])


def encode_event(event: EventMsg) -> bytes:
    """The stored form of ``event``; its workspace and offset are not part of it."""
    return _ENCODER.encode(
        StoredEvent(
            create_time=event.create_time,
            received_time=event.received_time,
            payload=event.payload,
            run_id=event.run_id,
            seq=event.seq,
            series=event.series,
        )
    )


class EpochChangedError(LookupError):
    """The workspace is not in the epoch asked for: its Redis data was lost or deleted."""

    def __init__(self, workspace: str, epoch: int, current: int | None) -> None:
        now = "has no epoch" if current is None else f"is in epoch {current}"
        super().__init__(f"workspace {workspace!r} {now}, not {epoch}")
        self.workspace = workspace
        self.epoch = epoch
        self.current = current


class StaleFenceError(PermissionError):
    """A publish under a mutex fence that is no longer this run's grant: nothing was stored."""

    def __init__(self, workspace: str, run_id: str, fence: int, current: int, holder: str) -> None:
        super().__init__(
            f"run {run_id} published to {workspace!r} under fence {fence}, but the mutex's "
            f"fence is {current} (holder {holder or 'none'})"
        )
        self.workspace = workspace
        self.run_id = run_id
        self.fence = fence
        self.current = current
        self.holder = holder


class CommitStatus(enum.Enum):
    STORED = "stored"
    """New events got offsets ``first_offset..last_offset``."""
    DUPLICATE = "duplicate"
    """Every seq of the batch was stored before: nothing written."""


@dataclass(frozen=True, slots=True)
class CommitResult:
    status: CommitStatus
    epoch: int
    first_offset: int | None
    """The offset of the first event stored; ``None`` when nothing was."""
    last_offset: int
    """The workspace's last offset after the commit."""
    run_seq: int
    """The run's highest stored seq after the commit (0 without a run)."""


@dataclass(frozen=True, slots=True)
class AofWait:
    """How far a commit must be fsynced before it returns (``WAITAOF``: Redis 7.2, Valkey 8)."""

    local: int = 1
    """1: fsynced to the primary's own AOF."""
    replicas: int = 0
    """How many replicas must have fsynced it as well."""
    timeout_ms: int = 0
    """0 waits for ever; the caller bounds the wait."""

    def check(self, reply: Sequence[int]) -> None:
        fsynced_local, fsynced_replicas = (int(value) for value in reply)
        if fsynced_local < self.local or fsynced_replicas < self.replicas:
            raise TimeoutError(
                f"WAITAOF: fsynced on {fsynced_local} local and {fsynced_replicas} replica "
                f"AOFs, wanted {self.local} and {self.replicas}"
            )


@dataclass(frozen=True, slots=True)
class WorkspacePosition:
    epoch: int
    first_offset: int
    """The oldest offset a reader is given."""
    last_offset: int
    created: bool = False
    """This call started the epoch."""


@dataclass(frozen=True, slots=True)
class WorkspaceKeys:
    """The Redis names of one workspace; the ``{name}`` hash tag keeps them in one slot."""

    meta: str
    chunks: str
    runs: str
    channel: str

    @classmethod
    def of(cls, prefix: str, workspace: str) -> WorkspaceKeys:
        base = f"{prefix}:{{{workspace}}}"
        return cls(f"{base}:meta", f"{base}:chunks", f"{base}:runs", f"{base}:commits")


def _script(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


class RedisStreams:
    """The workspace streams of one Redis database, through ``client`` (bytes replies)."""

    def __init__(self, client: Redis, *, prefix: str = "ph") -> None:
        self._client = client
        self._prefix = prefix
        self._open = client.register_script(_script("_redis_open.lua"))
        self._commit = client.register_script(_script("_redis_commit.lua"))
        self._read = client.register_script(_script("_redis_read.lua"))

    def keys(self, workspace: str) -> WorkspaceKeys:
        return WorkspaceKeys.of(self._prefix, workspace)

    async def open(self, workspace: str, *, min_epoch: int = 0) -> WorkspacePosition:
        """The workspace's epoch and positions; a new epoch (``>= min_epoch``) if it has none."""
        keys = self.keys(workspace)
        reply = await self._open(keys=[keys.meta, keys.chunks, keys.runs], args=[min_epoch])
        epoch, first, last, created = reply
        return WorkspacePosition(int(epoch), int(first), int(last), created=bool(created))

    async def commit(
        self,
        workspace: str,
        epoch: int,
        events: Sequence[bytes],
        *,
        run_id: str | None = None,
        first_seq: int = 1,
        fence: int = 0,
        received_us: int = 0,
        aof: AofWait | None = None,
    ) -> CommitResult:
        """Store ``events`` (each from :func:`encode_event`, seqs ``first_seq`` on, for a
        run) at the end of the workspace's stream, atomically with the run's dedupe position,
        and publish a wake-up hint.

        Seqs at or below the run's stored position are not stored again. ``fence`` > 0 says
        the run publishes as the mutex holder: unless that is still the current grant, nothing
        is stored (:class:`StaleFenceError`). :class:`EpochChangedError` when the workspace
        is not in ``epoch`` any more. With ``aof``, the reply is awaited together with a
        ``WAITAOF`` on the same connection (one round trip): it returns once the commit is
        fsynced to the AOF where ``aof`` asks, else raises ``TimeoutError`` (the commit may be
        stored all the same: a resend is deduplicated).
        """
        if not events:
            raise ValueError("a commit needs at least one event")
        keys = self.keys(workspace)
        script_keys = [keys.meta, keys.chunks, keys.runs]
        args: list[bytes | str | int] = [
            epoch, run_id or "", first_seq, fence, received_us, keys.channel, *events
        ]  # fmt: skip
        if aof is None:
            reply = await self._commit(keys=script_keys, args=args)
        else:
            # WAITAOF counts the writes of its own connection: both go down one pipeline.
            async with self._client.pipeline(transaction=False) as pipe:
                await self._commit(keys=script_keys, args=args, client=pipe)
                pipe.execute_command("WAITAOF", aof.local, aof.replicas, aof.timeout_ms)
                reply, fsynced = await pipe.execute()
            aof.check(fsynced)
        status = reply[0]
        if status == b"stored":
            _, stored_epoch, first, last, run_seq = reply
            return CommitResult(
                CommitStatus.STORED, int(stored_epoch), int(first), int(last), int(run_seq)
            )
        if status == b"duplicate":
            _, stored_epoch, last, run_seq = reply
            return CommitResult(
                CommitStatus.DUPLICATE, int(stored_epoch), None, int(last), int(run_seq)
            )
        if status == b"fenced":
            _, _, current, holder = reply
            raise StaleFenceError(workspace, run_id or "", fence, int(current), holder.decode())
        if status == b"epoch":
            raise EpochChangedError(workspace, epoch, int(reply[1]) if reply[1] else None)
        raise RuntimeError(f"unexpected reply from the commit script: {status!r}")

    async def read(
        self, workspace: str, epoch: int, after: int, limit: int
    ) -> tuple[list[EventMsg], WorkspacePosition]:
        """Up to ``limit`` stored events with offset > ``after``, oldest first, and the
        positions of the last round trip (more may have been stored since)."""
        keys = self.keys(workspace)
        events: list[EventMsg] = []
        position = WorkspacePosition(epoch, 1, 0)
        wanted = after + 1
        while len(events) < limit:
            reply = await self._read(
                keys=[keys.meta, keys.chunks], args=[epoch, wanted, _READ_CHUNKS]
            )
            if reply[0] == b"epoch":
                raise EpochChangedError(workspace, epoch, int(reply[1]) if reply[1] else None)
            position = WorkspacePosition(epoch, int(reply[1]), int(reply[2]))
            wanted = max(wanted, position.first_offset)
            for index in range(3, len(reply), 2):
                first = int(reply[index])
                stored = _CHUNK_DECODER.decode(reply[index + 1])
                skip = max(0, wanted - first)
                for offset, event in enumerate(stored[skip:], start=first + skip):
                    events.append(_envelope(workspace, offset, event))
                wanted = max(wanted, first + len(stored))
            if len(reply) - 3 < 2 * _READ_CHUNKS:
                break  # the stream has nothing more
        return events[:limit], position


def _envelope(workspace: str, offset: int, event: StoredEvent) -> EventMsg:
    return EventMsg(
        workspace=workspace,
        offset=offset,
        create_time=event.create_time,
        received_time=event.received_time,
        payload=event.payload,
        run_id=event.run_id,
        seq=event.seq,
        series=event.series,
    )
