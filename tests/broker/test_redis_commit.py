"""The Redis commit, open and read scripts against a real server: gapless offsets under
concurrent committers, dedupe of resends, fencing, epochs after data loss, reads by offset,
and a SIGKILL of the server mid-stream with ``appendfsync always``."""

from __future__ import annotations

import asyncio
import datetime
import itertools
from collections.abc import AsyncIterator, Sequence

import msgspec
import pytest
import pytest_asyncio
import redis
from redis.asyncio import Redis

import schema
from broker._redis_streams import (
    CHUNK_BYTES,
    CHUNK_EVENTS,
    AofWait,
    CommitResult,
    CommitStatus,
    EpochChangedError,
    RedisStreams,
    StaleFenceError,
    encode_event,
)
from schema import EventMsg
from tests.redis_server import RedisServer

pytestmark = pytest.mark.asyncio

WS = "ws"
T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def batch(run_id: str | None, first_seq: int, count: int, *, text: str = "m") -> list[EventMsg]:
    """``count`` events of ``run_id`` from ``first_seq`` (offsets are the script's to give)."""
    return [
        EventMsg(
            workspace=WS,
            offset=0,
            create_time=T0,
            received_time=T0,
            payload=schema.WorkspaceEvent(message=f"{text}{seq}"),
            run_id=run_id,
            seq=None if run_id is None else seq,
        )
        for seq in range(first_seq, first_seq + count)
    ]


def encoded(events: Sequence[EventMsg]) -> list[bytes]:
    return [encode_event(event) for event in events]


def client_of(server: RedisServer) -> Redis:
    return Redis(host="127.0.0.1", port=server.port)


@pytest_asyncio.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[Redis]:
    connection = client_of(redis_server)
    yield connection
    await connection.aclose()


async def commit_run(
    streams: RedisStreams,
    epoch: int,
    run_id: str,
    first_seq: int,
    count: int,
    *,
    fence: int = 0,
    aof: AofWait | None = None,
) -> CommitResult:
    events = encoded(batch(run_id, first_seq, count, text=run_id))
    return await streams.commit(
        WS, epoch, events, run_id=run_id, first_seq=first_seq, fence=fence, aof=aof
    )


async def stored(streams: RedisStreams, epoch: int) -> list[EventMsg]:
    events, position = await streams.read(WS, epoch, 0, 1_000_000)
    assert [event.offset for event in events] == list(range(1, position.last_offset + 1))
    return events


async def test_offsets_are_gapless_under_concurrent_committers(redis_server: RedisServer) -> None:
    runs, batches, size = 8, 25, 40
    clients = [client_of(redis_server) for _ in range(runs)]
    epoch = (await RedisStreams(clients[0]).open(WS)).epoch
    results: dict[str, list[CommitResult]] = {}

    async def publish(index: int) -> None:
        streams = RedisStreams(clients[index])
        run_id = f"run{index}"
        results[run_id] = [
            await commit_run(streams, epoch, run_id, 1 + n * size, size) for n in range(batches)
        ]

    try:
        await asyncio.gather(*(publish(index) for index in range(runs)))
        events = await stored(RedisStreams(clients[0]), epoch)
    finally:
        for connection in clients:
            await connection.aclose()

    assert len(events) == runs * batches * size
    ranges = sorted(
        (result.first_offset, result.last_offset)
        for run_results in results.values()
        for result in run_results
    )
    # Every batch got its own consecutive block, and the blocks tile 1..N without a gap.
    assert [first for first, _ in ranges] == [1, *(last + 1 for _, last in ranges[:-1])]
    for run_id, run_results in results.items():
        assert [result.run_seq for result in run_results] == [
            (n + 1) * size for n in range(batches)
        ]
        seqs = [event.seq for event in events if event.run_id == run_id]
        assert seqs == list(range(1, batches * size + 1))


async def test_a_full_resend_stores_nothing(client: Redis) -> None:
    streams = RedisStreams(client)
    epoch = (await streams.open(WS)).epoch
    first = await commit_run(streams, epoch, "r", 1, 10)
    again = await commit_run(streams, epoch, "r", 1, 10)
    tail = await commit_run(streams, epoch, "r", 4, 7)

    assert first == CommitResult(CommitStatus.STORED, epoch, 1, 10, 10)
    assert again == CommitResult(CommitStatus.DUPLICATE, epoch, None, 10, 10)
    assert tail == again
    assert [event.seq for event in await stored(streams, epoch)] == list(range(1, 11))


async def test_an_overlapping_resend_stores_only_the_new_seqs(client: Redis) -> None:
    streams = RedisStreams(client)
    epoch = (await streams.open(WS)).epoch
    await commit_run(streams, epoch, "r", 1, 10)
    await commit_run(streams, epoch, "other", 1, 3)
    overlap = await commit_run(streams, epoch, "r", 6, 10)

    assert overlap == CommitResult(CommitStatus.STORED, epoch, 14, 18, 15)
    events = await stored(streams, epoch)
    assert [event.seq for event in events if event.run_id == "r"] == list(range(1, 16))
    assert [(event.offset, event.seq) for event in events[13:]] == [
        (14, 11), (15, 12), (16, 13), (17, 14), (18, 15)
    ]  # fmt: skip
    assert events[13].payload == schema.WorkspaceEvent(message="r11")


async def test_broker_events_have_no_dedupe(client: Redis) -> None:
    streams = RedisStreams(client)
    epoch = (await streams.open(WS)).epoch
    made = encoded(batch(None, 1, 2))
    assert (await streams.commit(WS, epoch, made)).last_offset == 2
    assert (await streams.commit(WS, epoch, made)).last_offset == 4
    events = await stored(streams, epoch)
    assert [event.run_id for event in events] == [None] * 4
    assert await client.hlen(streams.keys(WS).runs) == 0


async def test_a_stale_fence_is_refused_and_nothing_stored(client: Redis) -> None:
    streams = RedisStreams(client)
    keys = streams.keys(WS)
    epoch = (await streams.open(WS)).epoch
    # The mutex grant as the lease scripts record it in the meta hash: the latest fence and
    # the run holding it.
    await client.hset(keys.meta, mapping={"fence": 3, "holder": "a"})
    assert (await commit_run(streams, epoch, "a", 1, 5, fence=3)).last_offset == 5

    await client.hset(keys.meta, mapping={"fence": 4, "holder": "b"})
    before = await client.xlen(keys.chunks), await client.hgetall(keys.runs)
    with pytest.raises(StaleFenceError) as refused:
        await commit_run(streams, epoch, "a", 6, 5, fence=3)
    assert (refused.value.fence, refused.value.current, refused.value.holder) == (3, 4, "b")
    # A run claiming another run's current fence is refused as well.
    with pytest.raises(StaleFenceError):
        await commit_run(streams, epoch, "a", 6, 5, fence=4)
    assert (await client.xlen(keys.chunks), await client.hgetall(keys.runs)) == before
    assert (await streams.open(WS)).last_offset == 5

    # A resend of what the stale holder had stored is still acknowledged, not refused.
    dup = await commit_run(streams, epoch, "a", 1, 5, fence=3)
    assert dup.status is CommitStatus.DUPLICATE
    assert (await commit_run(streams, epoch, "b", 1, 2, fence=4)).last_offset == 7

    await client.hset(keys.meta, mapping={"holder": ""})  # released: nobody holds fence 4
    with pytest.raises(StaleFenceError):
        await commit_run(streams, epoch, "b", 3, 1, fence=4)
    # Publishing without the mutex needs no fence.
    assert (await commit_run(streams, epoch, "a", 6, 1)).last_offset == 8
    assert [event.run_id for event in await stored(streams, epoch)] == ["a"] * 5 + ["b"] * 2 + ["a"]


async def test_lost_data_starts_a_new_epoch(client: Redis) -> None:
    streams = RedisStreams(client)
    opened = await streams.open(WS)
    assert opened.created
    assert await streams.open(WS) == opened.__class__(opened.epoch, 1, 0, created=False)
    await commit_run(streams, opened.epoch, "r", 1, 10)

    await client.flushall()
    with pytest.raises(EpochChangedError) as lost:
        await commit_run(streams, opened.epoch, "r", 11, 5)
    assert lost.value.current is None
    with pytest.raises(EpochChangedError):
        await streams.read(WS, opened.epoch, 0, 10)

    reopened = await streams.open(WS, min_epoch=opened.epoch + 1)
    assert reopened.created
    assert reopened.epoch > opened.epoch
    with pytest.raises(EpochChangedError) as moved:
        await commit_run(streams, opened.epoch, "r", 11, 5)
    assert moved.value.current == reopened.epoch
    # The run's position went with the data: its resend is stored anew, from offset 1.
    resent = await commit_run(streams, reopened.epoch, "r", 1, 15)
    assert resent == CommitResult(CommitStatus.STORED, reopened.epoch, 1, 15, 15)


async def test_a_new_epoch_respects_the_lowest_epoch_asked_for(client: Redis) -> None:
    streams = RedisStreams(client)
    far = 2**62
    assert (await streams.open(WS, min_epoch=far)).epoch == far
    assert (await streams.open(WS, min_epoch=far + 5)).epoch == far  # only a new epoch


async def test_leftovers_without_a_meta_hash_belong_to_the_lost_epoch(client: Redis) -> None:
    streams = RedisStreams(client)
    keys = streams.keys(WS)
    epoch = (await streams.open(WS)).epoch
    await commit_run(streams, epoch, "r", 1, 10)
    await client.delete(keys.meta)  # as if only the meta hash had been lost

    new_epoch = (await streams.open(WS, min_epoch=epoch + 1)).epoch
    assert await client.exists(keys.chunks, keys.runs) == 0
    assert (await commit_run(streams, new_epoch, "r", 1, 3)).first_offset == 1


@pytest.mark.parametrize(
    ("after", "limit"),
    [(0, 10_000), (0, 1), (1, 5), (511, 3), (512, 600), (600, 10_000), (1_300, 50), (1_399, 5)],
)
async def test_read_by_offset_range(client: Redis, after: int, limit: int) -> None:
    streams = RedisStreams(client)
    epoch = (await streams.open(WS)).epoch
    sizes = [1, 2, 700, 99, 1, 300, 297]  # 700 spans two chunks of at most CHUNK_EVENTS
    first_seq = 1
    for size in sizes:
        await commit_run(streams, epoch, "r", first_seq, size)
        first_seq += size
    assert await client.xlen(streams.keys(WS).chunks) == len(sizes) + 1

    events, position = await streams.read(WS, epoch, after, limit)

    assert position.last_offset == sum(sizes) == 1_400
    expected = list(range(after + 1, min(after + limit, 1_400) + 1))
    assert [event.offset for event in events] == expected
    assert [event.seq for event in events] == expected
    assert all(event.workspace == WS and event.received_time == T0 for event in events)


async def test_chunks_close_at_their_byte_limit(client: Redis) -> None:
    streams = RedisStreams(client)
    epoch = (await streams.open(WS)).epoch
    events = [
        EventMsg(
            workspace=WS,
            offset=0,
            create_time=T0,
            received_time=T0,
            payload=schema.WorkspaceEvent(message="x" * 60_000),
            run_id="r",
            seq=seq,
        )
        for seq in range(1, 41)
    ]
    sent = encoded(events)
    await streams.commit(WS, epoch, sent, run_id="r", first_seq=1)
    entries = await client.xrange(streams.keys(WS).chunks)
    assert entries is not None
    bodies = [fields[b"d"] for _, fields in entries if fields is not None]
    # Each chunk is as full as the byte limit allows: one more event would pass it.
    assert len(bodies) > 1
    assert all(len(body) <= CHUNK_BYTES + 3 for body in bodies)  # + the array header
    assert all(len(body) + len(sent[0]) > CHUNK_BYTES for body in bodies[:-1])
    assert max(len(body) // len(sent[0]) for body in bodies) < CHUNK_EVENTS
    read, _ = await streams.read(WS, epoch, 0, 100)
    assert [event.seq for event in read] == list(range(1, 41))
    assert read == [msgspec.structs.replace(e, offset=e.seq) for e in events]


async def test_a_commit_publishes_a_wake_up_hint(client: Redis) -> None:
    streams = RedisStreams(client)
    epoch = (await streams.open(WS)).epoch
    subscriber = client.pubsub()
    await subscriber.subscribe(streams.keys(WS).channel)
    try:
        await commit_run(streams, epoch, "r", 1, 3)
        await commit_run(streams, epoch, "r", 1, 3)  # a duplicate publishes nothing
        await commit_run(streams, epoch, "r", 4, 2)
        hints: list[bytes] = []
        async with asyncio.timeout(15):
            while len(hints) < 2:
                # None for the subscription's own confirmation, which is skipped.
                message = await subscriber.get_message(ignore_subscribe_messages=True, timeout=5)
                if message is not None:
                    hints.append(message["data"])
    finally:
        await subscriber.aclose()
    assert hints == [f"{epoch} 3".encode(), f"{epoch} 5".encode()]


@pytest.mark.parametrize("redis_server", ["everysec"], indirect=True)
async def test_a_commit_can_wait_for_the_aof(client: Redis) -> None:
    streams = RedisStreams(client)
    epoch = (await streams.open(WS)).epoch
    result = await commit_run(streams, epoch, "r", 1, 3, aof=AofWait(local=1))
    assert result.last_offset == 3
    with pytest.raises(TimeoutError, match="wanted 1 and 1"):
        await commit_run(streams, epoch, "r", 4, 1, aof=AofWait(replicas=1, timeout_ms=1))
    # The commit itself was made; only the replica's fsync was missing.
    assert (await streams.open(WS)).last_offset == 4


async def test_acknowledged_commits_survive_a_sigkill_of_the_server(
    redis_server: RedisServer,
) -> None:
    assert redis_server.fsync == "always"
    connection = client_of(redis_server)
    streams = RedisStreams(connection)
    epoch = (await streams.open(WS)).epoch
    acked: list[CommitResult] = []
    size = 50
    seqs = itertools.count(1, size)
    failed_at: list[int] = []
    enough = asyncio.Event()

    async def publish() -> None:
        while True:
            first_seq = next(seqs)
            try:
                acked.append(await commit_run(streams, epoch, "r", first_seq, size))
            except (redis.ConnectionError, ConnectionError, OSError):
                failed_at.append(first_seq)
                return
            if len(acked) == 40:
                enough.set()

    publisher = asyncio.create_task(publish())
    await asyncio.wait_for(enough.wait(), 30)
    redis_server.kill()
    await asyncio.wait_for(publisher, 30)
    await connection.aclose()
    redis_server.restart()

    connection = client_of(redis_server)
    streams = RedisStreams(connection)
    try:
        position = await streams.open(WS)
        assert position.epoch == epoch  # the AOF kept the workspace: same epoch
        events = await stored(streams, epoch)
        # Everything acknowledged is there; the batch in flight is there whole or not at all.
        last_acked = acked[-1].last_offset
        assert len(events) in (last_acked, last_acked + size)
        assert [event.seq for event in events] == list(range(1, len(events) + 1))
        for result in acked:
            assert result.first_offset is not None
            assert events[result.first_offset - 1].seq == result.run_seq - size + 1
        # The publisher resends the batch it saw fail: stored once, whichever way it went.
        resent = await commit_run(streams, epoch, "r", failed_at[0], size)
        assert resent.run_seq == failed_at[0] + size - 1
        assert resent.last_offset == last_acked + size
        assert len(await stored(streams, epoch)) == last_acked + size
    finally:
        await connection.aclose()
