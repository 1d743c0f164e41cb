"""RedisStore against a real Redis-protocol server: what only it does (claims of workspaces by
nodes, resent commits, follows, chunked reads, durability checks, a server killed and restarted
on its AOF, and what ``pierhead serve --store`` says when it cannot use the server). The cases
every store passes are in test_store.py."""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis
from structlog.testing import capture_logs

import schema
from broker import _redis_store
from broker._redis_store import (
    CHUNK_EVENTS,
    Durability,
    Followed,
    FollowedInPart,
    RedisStore,
    StoreConflictError,
    StoreUnavailableError,
    StoreUnusableError,
    check_server,
)
from broker._redis_url import parse_redis_url
from broker._store import Commit, HistoryFilter
from schema import EventMsg
from tests.broker.store_cases import (
    LONG_AGO,
    NAME,
    T0,
    batch,
    by_key,
    check_history_and_read_against_the_model,
    make_event,
    offsets,
    ten_events,
)
from tests.redis_server import RedisServer
from tests.support import free_port, pierhead

WAIT_S = 15.0
"""The longest a test waits for any one condition before it fails."""

OpenStore = Callable[..., RedisStore]


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Return once ``condition()`` holds (checked every few milliseconds: a thread or the
    server signals nothing); fail after :data:`WAIT_S`."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        threading.Event().wait(0.005)


def owner_key(workspace: str = NAME) -> str:
    return f"ph:{{{workspace}}}:owner"


@pytest.fixture
def server(emptied_redis: RedisServer) -> RedisServer:
    """The session's server, emptied after the test."""
    return emptied_redis


def opener(server: RedisServer) -> Iterator[OpenStore]:
    opened: list[RedisStore] = []

    def open_store(*, node: str = "n1", **options: Any) -> RedisStore:
        store = RedisStore(parse_redis_url(server.url, {}), node=node, **options)
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()


@pytest.fixture
def open_store(server: RedisServer) -> Iterator[OpenStore]:
    """Opens RedisStores on the session's server (node "n1" unless told), closed afterwards."""
    yield from opener(server)


@pytest.fixture(params=[CHUNK_EVENTS, 3], ids=["chunks", "small-chunks"])
def store(
    open_store: OpenStore, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> RedisStore:
    # Small chunks make every test span chunk boundaries: reads, history and retention that
    # start, stop or cut inside a chunk.
    monkeypatch.setattr(_redis_store, "CHUNK_EVENTS", request.param)
    return open_store()


# -- commit and load ---------------------------------------------------------------------------


def test_a_restarted_node_loads_and_writes_its_workspaces(open_store: OpenStore) -> None:
    first = open_store(node="n1")
    events = [make_event(n, kind="status", run_id="r1", seq=n) for n in range(1, 4)]
    first.commit(batch(NAME, 1, events, run_seqs={"r1": 3}))
    loaded = first.load()
    first.close()

    # A new process of the same node, while the old one's claim still runs.
    second = open_store(node="n1")
    assert second.token != first.token
    assert second.load() == loaded
    assert second.owned == {NAME}
    assert second.read(NAME, 1, 0, 10) == events
    more = [make_event(4)]
    second.commit(batch(NAME, 1, more, before=events))
    assert second.read(NAME, 1, 0, 10) == [*events, *more]


def test_another_node_does_not_load_a_workspace_a_live_node_writes(
    open_store: OpenStore, server: RedisServer
) -> None:
    writer = open_store(node="n1", owner_lease_ms=300)
    writer.commit(batch(NAME, 1, [make_event(1)]))
    other = open_store(node="n2")

    assert other.load() == []
    assert other.owned == frozenset()
    assert writer.renew() == []

    # The writer stops renewing (paused, or dead): once its claim lapses, n2 takes over.
    client = server.client()
    try:
        wait_until(lambda: not client.exists(owner_key()), "the claim on ws to lapse")
    finally:
        client.close()
    assert [item.state.name for item in other.load()] == [NAME]
    assert other.owned == {NAME}
    assert writer.renew() == [NAME]
    assert writer.owned == frozenset()


def test_a_commit_is_one_round_trip_and_survives_the_server_losing_its_scripts(
    store: RedisStore, server: RedisServer
) -> None:
    client = server.client()
    try:

        def script_checks() -> int:
            stats = client.info("commandstats")
            return int(stats.get("cmdstat_script|exists", {}).get("calls", 0))

        events = ten_events()
        store.commit(batch(NAME, 1, events[:5]))
        checks = script_checks()
        store.commit(batch(NAME, 1, events[5:8], before=events[:5]))
        # redis-py's pipelines ask the server whether it has their scripts before each run.
        assert script_checks() == checks
        client.script_flush()
        store.commit(batch(NAME, 1, events[8:], before=events[:8]))
    finally:
        client.close()
    assert store.read(NAME, 1, 0, 20) == events
    assert store.load()[0].state.last_offset == 10


def test_nodes_load_more_workspaces_than_one_round_trip_claims(open_store: OpenStore) -> None:
    names = [f"ws-{index:03}" for index in range(300)]  # more than a batch (256)
    writer = open_store(node="n1")
    for index, name in enumerate(names):
        events = [make_event(1, workspace=name, run_id="r1", seq=index + 1)]
        writer.commit(batch(name, 1, events, run_seqs={"r1": index + 1}))
    other = open_store(node="n2")
    with capture_logs() as logs:
        assert other.load() == []
    assert [log for log in logs if log["event"] == "workspaces_written_elsewhere"] == [
        {"event": "workspaces_written_elsewhere", "workspaces": 300, "log_level": "info"}
    ]
    assert other.owned == frozenset()
    writer.close()

    # A new process of the writer's node takes every one of them back, as stored.
    restarted = open_store(node="n1")
    loaded = restarted.load()
    assert [item.state.name for item in loaded] == names
    assert [item.run_seqs for item in loaded] == [{"r1": index + 1} for index in range(300)]
    assert all(item.state.last_offset == 1 for item in loaded)
    assert restarted.owned == set(names)


@pytest.fixture
def taken_over(open_store: OpenStore, server: RedisServer) -> tuple[RedisStore, RedisStore]:
    """NAME with offsets 1-3 written by n1, then taken over by n2 after n1's claim lapsed."""
    old = open_store(node="n1")
    old.commit(batch(NAME, 1, [make_event(n, run_id="r", seq=n) for n in (1, 2, 3)]))
    client = server.client()
    try:
        # What a lapse does (n1 paused past its lease), without waiting 10 s for it.
        client.delete(owner_key())
    finally:
        client.close()
    new = open_store(node="n2")
    assert [item.state.name for item in new.load()] == [NAME]
    return old, new


def test_a_node_that_lost_its_claim_cannot_commit(
    taken_over: tuple[RedisStore, RedisStore],
) -> None:
    old, new = taken_over
    before = new.load()
    three = [make_event(n, run_id="r", seq=n) for n in (1, 2, 3)]

    with pytest.raises(StoreConflictError, match="written by another node now"):
        old.commit(
            batch(NAME, 1, [make_event(4, run_id="r", seq=4)], before=three, run_seqs={"r": 4})
        )

    assert new.load() == before
    assert offsets(new.read(NAME, 1, 0, 10)) == [1, 2, 3]


def test_a_node_that_lost_its_claim_cannot_trim_or_delete(
    taken_over: tuple[RedisStore, RedisStore],
) -> None:
    old, new = taken_over
    assert old.trim(max_events=0, max_age=LONG_AGO, now=T0) == {}
    with pytest.raises(StoreConflictError, match="written by another node now"):
        old.commit(Commit(deleted=[(NAME, 1)]))
    assert offsets(new.read(NAME, 1, 0, 10)) == [1, 2, 3]


def test_events_of_a_workspace_without_state_are_refused(store: RedisStore) -> None:
    # Unlike SQLite, which files stateless events under the stored epoch: the broker always
    # sends a workspace's state with its events, and Redis needs it to check the epoch.
    store.commit(batch(NAME, 1, [make_event(1)]))
    with pytest.raises(ValueError, match="events of 'ghost' and not its state"):
        store.commit(Commit(events=[make_event(1, workspace="ghost")]))
    with pytest.raises(ValueError, match="events of 'ws' and not its state"):
        store.commit(Commit(events=[make_event(2)]))
    with pytest.raises(ValueError, match="run positions of 'ghost' and not its state"):
        store.commit(Commit(run_seqs={("ghost", 1, "r1"): 1}))
    assert [item.state.name for item in store.load()] == [NAME]
    assert offsets(store.read(NAME, 1, 0, 10)) == [1]


def test_a_resent_commit_is_recognised_and_a_gap_is_refused(store: RedisStore) -> None:
    first = [make_event(n, run_id="r1", seq=n) for n in range(1, 6)]
    commit = batch(NAME, 1, first, run_seqs={"r1": 5})
    store.commit(commit)
    # The same commit again, as after a reply lost with the connection: nothing changes.
    store.commit(commit)
    assert store.read(NAME, 1, 0, 100) == first
    with pytest.raises(StoreConflictError, match="epoch 1"):
        store.commit(batch(NAME, 2, [make_event(6)], before=first))

    second = [make_event(6, run_id="r1", seq=6)]
    store.commit(batch(NAME, 1, second, before=first, run_seqs={"r1": 6}))
    assert store.read(NAME, 1, 0, 100) == [*first, *second]
    assert store.load()[0].run_seqs == {"r1": 6}

    # A commit from offset 8 says this node stored up to 7, and Redis holds 6: the store went
    # back (a failover to a replica that lagged). Refused, and the workspace moves to a new
    # epoch so that no reader of epoch 1 skips the offsets that will be given again.
    skipped = [make_event(8)]
    with pytest.raises(StoreConflictError, match="ends at offset 6"):
        store.commit(batch(NAME, 1, skipped, before=[*first, *second]))
    (saved,) = store.load()
    assert saved.state.epoch > 1
    assert saved.state.last_offset == 6
    assert store.read(NAME, saved.state.epoch, 0, 100) == [*first, *second]


def test_a_commit_continuing_a_stream_redis_lost_is_refused(
    store: RedisStore, server: RedisServer
) -> None:
    first = [make_event(n) for n in range(1, 4)]
    store.commit(batch(NAME, 1, first))
    client = server.client()
    try:
        client.flushall()  # what a restart without the AOF leaves
    finally:
        client.close()
    with pytest.raises(StoreConflictError, match="Redis lost workspace 'ws'"):
        store.commit(batch(NAME, 1, [make_event(4)], before=first))
    assert store.load() == []


def test_large_events_are_split_into_chunks_of_about_a_mebibyte(
    open_store: OpenStore, server: RedisServer
) -> None:
    events = [
        EventMsg(
            workspace=NAME,
            offset=n,
            create_time=T0,
            received_time=T0,
            payload=schema.LogRecord(message=str(n) * (60_000 // len(str(n)))),
            series="big" if n % 2 else None,
        )
        for n in range(1, 101)
    ]
    store = open_store()
    store.commit(batch(NAME, 1, events))
    assert store.read(NAME, 1, 0, 1000) == events
    assert store.read(NAME, 1, 50, 3) == events[50:53]
    assert store.history(HistoryFilter(NAME, 1, series="big", limit=2)) == (
        [events[98], events[96]],
        True,
    )
    client: Any = server.client()  # redis-py's replies are typed as unions of every shape
    try:
        sizes = [len(fields[b"d"]) for _, fields in client.xrange(f"ph:{{{NAME}}}:chunks")]
    finally:
        client.close()
    assert len(sizes) > 4
    assert max(sizes) <= _redis_store.CHUNK_BYTES
    assert sum(sizes) > 100 * 60_000


# -- read --------------------------------------------------------------------------------------


def test_read_spans_more_chunks_than_one_script_call_returns(store: RedisStore) -> None:
    events = [make_event(n) for n in range(1, 201)]
    for start in range(0, 200, 2):
        store.commit(batch(NAME, 1, events[start : start + 2], before=events[:start]))
    assert store.read(NAME, 1, 0, 1000) == events
    assert store.read(NAME, 1, 150, 1000) == events[150:]


def test_a_page_of_a_long_backlog_fetches_only_the_chunks_it_needs(
    open_store: OpenStore, server: RedisServer
) -> None:
    store = open_store()
    line = "x" * 1000
    events = [
        msgspec.structs.replace(make_event(n), payload=schema.LogRecord(message=line))
        for n in range(1, 20 * CHUNK_EVENTS + 1)
    ]
    store.commit(batch(NAME, 1, events))  # 20 full chunks of about 0.5 MiB
    client: Any = server.client()
    try:

        def sent_bytes() -> int:
            return int(client.info("stats")["total_net_output_bytes"])

        before = sent_bytes()
        page = store.read(NAME, 1, 100, 1000)
        fetched = sent_bytes() - before
    finally:
        client.close()
    assert page == events[100:1100]
    # The page spans three chunks: what the server sent is about those, not the whole backlog.
    assert fetched < 4 * CHUNK_EVENTS * len(line)


def test_follow_reads_head_state_and_the_events_a_follower_lacks(store: RedisStore) -> None:
    events = [make_event(n) for n in range(1, 11)]
    for start in range(0, 10, 3):  # chunks of 3, 3, 3 and 1 events
        store.commit(batch(NAME, 1, events[start : start + 3], before=events[:start]))
    state = by_key(store.load())[NAME, 1].state

    followed = store.follow(NAME, (1, 4), limit=100)
    assert followed is not None
    assert (followed.head.epoch, followed.head.first_offset) == (1, 1)
    assert followed.head.last_offset == 10
    assert followed.state == state
    # Offset 5 is inside the second chunk: what comes before it is dropped.
    assert followed.events == events[4:]

    # Nothing new, another epoch, no position (a workspace nobody watches here), or more
    # behind than the follower reads: the head and state alone.
    for position, limit in (((1, 10), 100), ((2, 4), 100), (None, 100), ((1, 4), 5)):
        alone = store.follow(NAME, position, limit)
        assert alone is not None
        assert (alone.head, alone.state, alone.events) == (followed.head, state, None)
    assert store.follow("unknown", None, 100) is None


def test_follow_reads_more_chunks_than_one_reply_holds(store: RedisStore) -> None:
    events = [make_event(n) for n in range(1, 201)]
    for start in range(0, 200, 2):  # 100 chunks: one reply holds 64
        store.commit(batch(NAME, 1, events[start : start + 2], before=events[:start]))
    followed = store.follow(NAME, (1, 10), limit=1000)
    assert followed is not None
    assert followed.events == events[10:]


@pytest.mark.asyncio
async def test_a_follow_on_an_asyncio_client_says_when_its_reply_stops_short(
    store: RedisStore,
) -> None:
    events = [make_event(n) for n in range(1, 201)]
    for start in range(0, 200, 2):  # 100 chunks: one reply holds 64
        store.commit(batch(NAME, 1, events[start : start + 2], before=events[:start]))
    client = _redis_store.open_client(store.target, asynchronous=True)
    try:
        script = client.register_script(store.follow_script_source)
        replies = []
        for position in ((1, 10), (1, 190)):
            keys, args = store.follow_call(NAME, position, 1000)
            with store.reading():
                replies.append(await script(keys=keys, args=args))
    finally:
        await client.aclose()

    part = store.followed((1, 10), replies[0])
    assert isinstance(part, FollowedInPart)
    assert part.head.last_offset == 200
    assert 0 < len(part.events) < 190
    assert part.events == events[10 : 10 + len(part.events)]
    assert store.followed((1, 190), replies[1]) == Followed(part.head, part.state, events[190:])


def test_a_read_on_another_client_that_gets_no_reply_in_time_counts_as_unreachable(
    store: RedisStore,
) -> None:
    with capture_logs() as logs, pytest.raises(StoreUnavailableError, match="no reply in time"):
        with store.reading():
            raise TimeoutError
    assert not store.reachable
    assert [log["event"] for log in logs] == ["store_unreachable"]
    with store.reading():
        pass
    assert store.reachable


def test_follow_reads_nothing_retention_removed(store: RedisStore) -> None:
    events = [make_event(n) for n in range(1, 11)]
    store.commit(batch(NAME, 1, events[:5]))
    store.commit(batch(NAME, 1, events[5:], before=events[:5]))
    assert store.trim(max_events=3, max_age=LONG_AGO, now=T0) == {(NAME, 1): 8}

    for position in ((1, 2), (1, 5)):  # the second: 6 and 7 are still in the stored chunk
        followed = store.follow(NAME, position, limit=100)
        assert followed is not None
        assert followed.head.first_offset == 8
        assert followed.events is None  # offsets up to 7 are gone: the follower jumps


def test_readers_on_another_thread_see_only_whole_commits(open_store: OpenStore) -> None:
    store = open_store()
    reader_store = open_store()
    batch_size, batches = 25, 40
    events = [make_event(n) for n in range(1, batch_size * batches + 1)]
    seen: list[list[int]] = []
    reads = threading.Semaphore(0)
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            seen.append(offsets(reader_store.read(NAME, 1, 0, len(events))))
            reads.release()

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for start in range(0, len(events), batch_size):
            store.commit(batch(NAME, 1, events[start : start + batch_size], before=events[:start]))
            # Let the reader in after every commit, so reads interleave with writes.
            assert reads.acquire(timeout=WAIT_S)
    finally:
        stop.set()
        thread.join()

    assert len({len(result) for result in seen}) > batches // 2
    for result in seen:
        assert len(result) % batch_size == 0
        assert result == list(range(1, len(result) + 1))


# -- history -----------------------------------------------------------------------------------


def test_history_and_read_match_a_simple_model(
    open_store: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_redis_store, "CHUNK_EVENTS", 4)
    check_history_and_read_against_the_model(open_store(), examples=60)


# -- retention ---------------------------------------------------------------------------------


def test_a_cut_inside_a_chunk_hides_the_events_below_first(
    open_store: OpenStore, server: RedisServer
) -> None:
    store = open_store()
    events = [make_event(n, run_id="r1" if n % 2 else None) for n in range(1, 11)]
    store.commit(batch(NAME, 1, events))  # one chunk

    assert store.trim(max_events=3, max_age=LONG_AGO, now=T0) == {(NAME, 1): 8}

    client = server.client()
    try:
        assert client.xlen(f"ph:{{{NAME}}}:chunks") == 1  # the chunk stays whole
    finally:
        client.close()
    assert offsets(store.read(NAME, 1, 0, 100)) == [8, 9, 10]
    assert offsets(store.read(NAME, 1, 5, 100)) == [8, 9, 10]
    assert store.history(HistoryFilter(NAME, 1)) == (events[7:][::-1], False)
    assert store.history(HistoryFilter(NAME, 1, after=0, limit=2)) == (events[7:9], True)
    assert store.history(HistoryFilter(NAME, 1, before=9, run_id="r1")) == ([], False)
    assert store.load()[0].first_offset == 8


DAY = datetime.timedelta(days=1)


def test_a_run_is_forgotten_only_when_idle_long_enough_with_no_event_left(
    store: RedisStore,
) -> None:
    # As test_run_forgetting's test of the SQLite store.
    def events(first: int, run_id: str, count: int, at: datetime.datetime) -> list[EventMsg]:
        return [make_event(first + i, run_id=run_id, seq=i + 1, received=at) for i in range(count)]

    history: list[EventMsg] = []
    for run_events in (
        events(1, "old", 3, T0),
        events(4, "kept", 2, T0),
        events(6, "live", 1, T0),
        events(7, "fresh", 1, T0 + 20 * DAY),
    ):
        run_id = run_events[0].run_id or ""
        store.commit(batch(NAME, 1, run_events, before=history, run_seqs={run_id: len(run_events)}))
        history += run_events
    # Retention removes the events of "old" (offsets 1-3) only.
    store.trim(max_events=4, max_age=LONG_AGO, now=T0)
    alive = [(NAME, 1, "live")]

    def positions() -> dict[str, int]:
        return dict(store.load()[0].run_seqs)

    assert store.forget_runs(idle_for=30 * DAY, live=alive, now=T0 + 29 * DAY) == []
    assert store.forget_runs(idle_for=30 * DAY, live=alive, now=T0 + 31 * DAY) == [(NAME, 1, "old")]
    assert positions() == {"kept": 2, "live": 1, "fresh": 1}

    store.trim(max_events=0, max_age=LONG_AGO, now=T0)
    assert store.forget_runs(idle_for=30 * DAY, live=[], now=T0 + 50 * DAY) == [(NAME, 1, "kept")]
    assert positions() == {"live": 1, "fresh": 1}
    assert sorted(store.forget_runs(idle_for=30 * DAY, live=[], now=T0 + 62 * DAY)) == [
        (NAME, 1, "fresh"),
        (NAME, 1, "live"),
    ]
    assert positions() == {}


# -- durability --------------------------------------------------------------------------------


class FakeServer:
    """What check_server asks a client, answered as a given server would (pure logic)."""

    def __init__(
        self,
        *,
        aof: bool = True,
        waitaof: bool = True,
        appendfsync: str | None = "everysec",
        replicas: int = 0,
    ) -> None:
        self.aof, self.waitaof, self.appendfsync, self.replicas = (
            aof,
            waitaof,
            appendfsync,
            replicas,
        )

    def info(self) -> dict[str, Any]:
        return {
            "redis_version": "7.2.4" if self.waitaof else "7.0.15",
            "aof_enabled": int(self.aof),
            "connected_slaves": self.replicas,
        }

    def execute_command(self, *args: Any) -> Any:
        assert args[0] == "WAITAOF"
        if not self.waitaof:
            raise redis.ResponseError("ERR unknown command 'WAITAOF'")
        return [0, 0]

    def config_get(self, name: str) -> dict[str, str]:
        if self.appendfsync is None:
            raise redis.ResponseError("NOPERM this user has no permissions to run 'config'")
        return {name: self.appendfsync}


@pytest.mark.parametrize(
    ("fake", "durability", "refusal"),
    [
        (FakeServer(aof=False), "aof", r"needs the server's append-only file, and it is off"),
        (FakeServer(aof=False, replicas=1), "replica", r"append-only file, and it is off"),
        (FakeServer(), "aof", None),
        (FakeServer(waitaof=False, appendfsync="always"), "aof", None),
        (
            FakeServer(waitaof=False, appendfsync="everysec"),
            "aof",
            r"without WAITAOF \(7\.0\.15\) needs appendfsync always, and it is everysec",
        ),
        (
            FakeServer(waitaof=False, appendfsync=None),
            "aof",
            r"and it is unknown \(CONFIG GET is not allowed\)",
        ),
        (FakeServer(replicas=1), "replica", None),
        (FakeServer(replicas=0), "replica", r"needs a replica connected to the primary"),
        (
            FakeServer(waitaof=False, appendfsync="always", replicas=1),
            "replica",
            r"replica needs WAITAOF \(Redis 7\.2 or Valkey 8\), and the server is 7\.0\.15",
        ),
    ],
)
def test_check_server_refuses_what_the_server_cannot_promise(
    fake: FakeServer, durability: Durability, refusal: str | None
) -> None:
    if refusal is None:
        traits = check_server(fake, durability)
        assert (traits.waitaof, traits.replicas) == (fake.waitaof, fake.replicas)
    else:
        with pytest.raises(StoreUnusableError, match=refusal):
            check_server(fake, durability)


def test_a_server_with_the_aof_off_is_refused(redis_server: RedisServer) -> None:
    client = redis_server.client()
    try:
        client.config_set("appendonly", "no")
    finally:
        client.close()
    with pytest.raises(StoreUnusableError, match=r"appendonly no"):
        RedisStore(parse_redis_url(redis_server.url, {}))


def test_replica_durability_without_a_replica_is_refused(server: RedisServer) -> None:
    with pytest.raises(StoreUnusableError, match="needs a replica connected"):
        RedisStore(parse_redis_url(server.url, {}), durability="replica")


def test_redis_killed_mid_stream_and_restarted_on_its_aof_loses_no_commit(
    redis_server: RedisServer,
) -> None:
    store = RedisStore(parse_redis_url(redis_server.url, {}), node="n1")
    size, batches = 50, 40
    events = [make_event(n, run_id="r1", seq=n) for n in range(1, size * batches + 1)]
    returned: list[int] = []
    failure: list[BaseException] = []
    progress = threading.Condition()

    def write() -> None:
        try:
            for start in range(0, len(events), size):
                part = events[start : start + size]
                store.commit(
                    batch(NAME, 1, part, before=events[:start], run_seqs={"r1": part[-1].offset})
                )
                with progress:
                    returned.append(part[-1].offset)
                    progress.notify_all()
        except BaseException as exc:
            failure.append(exc)

    writer = threading.Thread(target=write)
    try:
        with capture_logs() as logs:
            writer.start()
            with progress:
                assert progress.wait_for(lambda: len(returned) >= 10, WAIT_S)
            redis_server.kill()
            # The writer's commit now waits for the server (its ack would be held).
            wait_until(
                lambda: any(log["event"] == "store_unreachable" for log in logs),
                "the store to find Redis unreachable",
            )
            stalled_at = len(returned)
            assert writer.is_alive()
            assert not failure
            redis_server.restart()
            writer.join(WAIT_S)
            assert not writer.is_alive(), "the commit did not complete once Redis was back"
        assert not failure, failure
        assert stalled_at < batches
        assert returned == [size * n for n in range(1, batches + 1)]
        assert any(log["event"] == "store_reachable" for log in logs)
    finally:
        store.interrupt()
        writer.join(WAIT_S)
        store.close()

    # A new process of the node finds every commit once, in order.
    again = RedisStore(parse_redis_url(redis_server.url, {}), node="n1")
    try:
        assert again.read(NAME, 1, 0, len(events) + 10) == events
        (loaded,) = again.load()
        assert loaded.state.last_offset == len(events)
        assert loaded.run_seqs == {"r1": len(events)}
    finally:
        again.close()


# -- pierhead serve --store --------------------------------------------------------------------


def last_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("url", "code", "message"),
    [
        (
            "http://127.0.0.1/0",
            2,
            "pierhead serve: store URL scheme 'http://' is not one of redis://, rediss://, unix://, sentinel://",
        ),
        (
            "redis://127.0.0.1/99",
            2,
            "pierhead serve: store URL 'redis://127.0.0.1/99' has a bad database in its path:"
            " '99' (0-15)",
        ),
    ],
)
async def test_serve_with_a_bad_store_url_is_one_line_and_exit_2(
    tmp_path: Path, url: str, code: int, message: str
) -> None:
    result, _, stderr = await pierhead(
        "serve", "--port", "0", "--data", "data", "--store", url, cwd=tmp_path
    )
    assert (result, last_line(stderr)) == (code, message)


@pytest.mark.asyncio
async def test_serve_with_an_unreachable_store_is_one_line_and_exit_1(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    code, _, stderr = await pierhead(
        "serve", "--port", "0", "--data", "data", "--log-level", "error", "--store", url,
        cwd=tmp_path,
    )  # fmt: skip
    assert code == 1
    assert last_line(stderr).startswith(f"pierhead serve: cannot use Redis at {url}: ")


@pytest.mark.asyncio
async def test_serve_on_a_server_with_the_aof_off_is_one_line_and_exit_1(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    client = redis_server.client()
    try:
        client.config_set("appendonly", "no")
    finally:
        client.close()
    code, _, stderr = await pierhead(
        "serve", "--port", "0", "--data", "data", "--log-level", "error",
        "--store", redis_server.url, cwd=tmp_path,
    )  # fmt: skip
    assert code == 1
    assert last_line(stderr) == (
        "pierhead serve: --redis-durability aof needs the server's append-only file, and it is "
        "off (appendonly no): an acknowledged event would be lost when the server restarts"
    )
