"""Three broker nodes on one Redis store, as real processes: every watcher on every node gets
the stored stream; a resend to another node is acknowledged once; catch, the mutex and action
calls reach a worker whichever node it and the caller are on; a node SIGKILLed or paused past
its claim loses nothing and writes nothing more."""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

import schema
import sdk
from broker._cluster import IDLE_FOLLOW_S, _report_age_s
from broker._tokens import SqliteTokenStore
from broker.testing import BrokerProcess, broker_process
from tests.broker.cluster_support import (
    QUICK_FAILOVER,
    collect,
    last_offset,
    nodes_on_redis,
    offsets,
    stored,
)
from tests.broker.wire import WireClient, closed_with, watcher_hello, wire_client, worker_hello
from tests.support import pierhead, until_answered

pytestmark = pytest.mark.asyncio

WS = "train"
EVENTS = 100_000
BATCH = 1_000


async def test_watchers_on_every_node_get_the_stored_stream_and_a_resend_elsewhere_is_acked_once(
    tmp_path: Path,
) -> None:
    async with nodes_on_redis(tmp_path, 3) as (_redis, (a, b, c)):
        watchers = [sdk.Watcher(node.url) for node in (a, b, c)]
        for watcher in watchers:
            await watcher.start()
        try:
            subscriptions = [await w.subscribe(WS, since="earliest") for w in watchers]
            async with sdk.Worker(a.url, WS, run_id="trainer") as worker:
                for start in range(0, EVENTS, BATCH):
                    for index in range(start, start + BATCH):
                        await worker.scalar("loss", float(index), step=index)
                await worker.flush()
            end = await last_offset(a.url, WS)
            received = await asyncio.gather(*(collect(s, WS, end) for s in subscriptions))
        finally:
            for watcher in watchers:
                await watcher.close()
        history = await stored(c.url, WS)
        # The worker's disconnection may be stored after ``end`` was read: at most that.
        assert offsets(history) == list(range(1, len(history) + 1))
        assert len(history) - end in (0, 1)
        for events in received:
            assert events == history[:end]
        scalars = [e for e in history if isinstance(e.payload, schema.Scalar)]
        assert [e.seq for e in scalars] == list(range(1, EVENTS + 1))

        # The run comes back on node B and sends its last batches again: they are acknowledged
        # at once and stored nowhere a second time.
        hello = worker_hello(WS, "trainer")
        async with wire_client(b.url, hello) as worker_on_b:
            assert worker_on_b.welcome is not None
            assert worker_on_b.welcome.acked_seq == EVENTS
            for seq in range(EVENTS - 2 * BATCH + 1, EVENTS + 1, BATCH):
                values = range(seq - 1, seq - 1 + BATCH)
                await worker_on_b.publish(
                    seq, [schema.Scalar(name="loss", value=v) for v in values]
                )
            # Acknowledged cumulatively: one ack covers both batches.
            ack = await worker_on_b.expect(schema.Ack)
            assert ack.seq == EVENTS
        after = await stored(b.url, WS)
        resent_scalars = [e for e in after if isinstance(e.payload, schema.Scalar)]
        assert [e.seq for e in resent_scalars] == list(range(1, EVENTS + 1))
        # Only the run's presence (connected, then disconnected) was added.
        assert [type(e.payload) for e in after[len(history) :]] == [schema.Presence] * 2


async def test_a_catch_from_node_c_reaches_a_worker_on_node_a(tmp_path: Path) -> None:
    async with nodes_on_redis(tmp_path, 3) as (_redis, (a, _b, c)):
        async with sdk.Worker(a.url, WS) as worker, sdk.Watcher(c.url) as operator:
            await worker.log("ready")
            await worker.flush()
            await operator.catch(WS, reason="hold the deploy")
            async with asyncio.timeout(10):
                await worker.wait_caught()
            assert worker.semaphores.reason == "hold the deploy"
            await operator.release(WS)
            async with asyncio.timeout(10):
                await worker.wait_released()


async def test_the_mutex_is_handed_over_between_workers_on_different_nodes(
    tmp_path: Path,
) -> None:
    async with (
        nodes_on_redis(tmp_path, 3) as (_redis, (a, b, _c)),
        sdk.Worker(a.url, WS, run_id="first") as first,
        sdk.Worker(b.url, WS, run_id="second") as second,
    ):
        granted = asyncio.Event()
        fences: list[int] = []

        async def take_when_free() -> None:
            async with second.mutex(timeout=30) as lease:
                fences.append(lease.fence)
                granted.set()

        async with first.mutex(wait=False) as held:
            fences.append(held.fence)
            with pytest.raises(sdk.BrokerRefusedError, match="held by first"):
                async with second.mutex(wait=False):
                    pass
            waiting = asyncio.create_task(take_when_free())
            await second.connected()
        async with asyncio.timeout(10):
            await granted.wait()
            await waiting
        assert fences[1] > fences[0]


def node_name(node: BrokerProcess) -> str:
    return (node.data_dir / "node").read_text().strip()


async def test_stats_show_each_node_and_the_whole_cluster(tmp_path: Path) -> None:
    async with nodes_on_redis(tmp_path, 2, *QUICK_FAILOVER) as (_redis, (a, b)):
        async with sdk.Worker(a.url, WS) as worker, sdk.Watcher(b.url) as watcher:
            await worker.log("hello")
            await worker.flush()
            subscription = await watcher.subscribe(WS, since="earliest")
            await anext(subscription)
            expected = {
                "cluster.nodes_reporting": 2,
                "cluster.workers": 1,
                "cluster.watchers": 1,
                f"node.{node_name(a)}.workers": 1,
                f"node.{node_name(a)}.workspaces_written": 1,
                f"node.{node_name(b)}.watchers": 1,
                f"node.{node_name(b)}.workspaces_written": 0,
            }
            counters: dict[str, int | float] = {}

            async def reported() -> bool:
                nonlocal counters
                counters = (await watcher.stats()).counters
                return all(counters.get(key) == value for key, value in expected.items())

            # The other node's figures are as it last reported them: a fraction of the claim
            # lease ago.
            await until_answered(reported, "every node's counters", timeout=30)
            assert counters["workspaces_followed"] == 1
            # How old each report is: node B's own is now; node A's was written at most a
            # claim lease ago (2 s here), or it would have expired.
            assert counters[f"node.{node_name(b)}.report_age_s"] == 0
            assert 0 <= counters[f"node.{node_name(a)}.report_age_s"] <= 2.0


async def test_a_reports_age_is_the_lease_less_what_its_key_has_left_to_live() -> None:
    assert _report_age_s(lease_ms=30_000, ttl_ms=30_000) == 0
    assert _report_age_s(lease_ms=30_000, ttl_ms=20_500) == 9.5
    # Written by a node with a longer lease: not in the future.
    assert _report_age_s(lease_ms=30_000, ttl_ms=45_000) == 0
    # Expired between the read of the report and of its time to live.
    assert _report_age_s(lease_ms=30_000, ttl_ms=-2) == 30.0


async def test_a_node_reads_a_workspace_none_of_its_watchers_follows_a_few_times_a_second(
    tmp_path: Path,
) -> None:
    commits = 40
    # No position check in the test's time: only hints and idle rounds bring node B up to date.
    async with nodes_on_redis(tmp_path, 2, "--position-check", "600") as (_redis, (a, b)):
        async with sdk.Worker(a.url, WS) as worker, sdk.Watcher(b.url) as watcher:

            async def node_b_has_node_a_s_last_offset() -> bool:
                written, mirrored = await last_offset(a.url, WS), await watcher.workspaces(WS)
                return bool(mirrored) and mirrored[0].last_offset == written

            await worker.log("first")
            await worker.flush()
            await until_answered(node_b_has_node_a_s_last_offset, "node B's mirror", timeout=30)
            before = (await watcher.stats()).counters["cluster_follows"]
            started = time.monotonic()
            for index in range(commits):  # a commit, and a hint to node B, each
                await worker.log(f"line {index}")
                await worker.flush()
            await until_answered(node_b_has_node_a_s_last_offset, "an idle round", timeout=30)
            elapsed = time.monotonic() - started
            follows = (await watcher.stats()).counters["cluster_follows"] - before
    # A read per round at most, a round every IDLE_FOLLOW_S while hints wait; not one a commit.
    assert follows <= 2 + elapsed / IDLE_FOLLOW_S, (follows, elapsed)
    assert follows < commits


async def test_a_node_that_starts_mirrors_what_other_nodes_wrote_before_it_listens(
    tmp_path: Path,
) -> None:
    names = [f"{WS}-{index}" for index in range(40)]  # more than a starting node reads at once
    async with nodes_on_redis(tmp_path, 1) as (redis, (a,)), contextlib.AsyncExitStack() as stack:
        written = {}
        for name in names:  # connected throughout: no presence event after ``written``
            worker = await stack.enter_async_context(sdk.Worker(a.url, name))
            await worker.log("before node B")
            await worker.flush()
            written[name] = await last_offset(a.url, name)
        async with (
            broker_process(tmp_path / "b", "--store", redis.url) as b,
            sdk.Watcher(b.url) as watcher,
        ):
            await watcher.subscribe(f"{WS}-*", since="earliest")
            # Subscribed the moment node B listens: its position check may not have run.
            assert {name: watcher.state[name].last_offset for name in names} == written


async def test_healthz_says_not_ready_while_redis_is_down(tmp_path: Path) -> None:
    async with nodes_on_redis(tmp_path, 1) as (redis, (node,)):
        health = f"http://127.0.0.1:{node.port}/healthz"

        async def status() -> int:
            def get() -> int:
                try:
                    with urllib.request.urlopen(health) as response:
                        return int(response.status)
                except urllib.error.HTTPError as error:
                    return int(error.code)

            return await asyncio.to_thread(get)

        def is_status(code: int) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                return await status() == code

            return check

        assert await status() == 200
        async with sdk.Worker(node.url, WS) as worker, sdk.Watcher(node.url) as watcher:
            await worker.log("stored")
            await worker.flush()
            redis.kill()
            await until_answered(is_status(503), "/healthz to say 503", timeout=30)
            # A request that needs the store is answered, with an error that says why.
            with pytest.raises(sdk.BrokerRefusedError, match="store cannot be reached"):
                await anext(aiter(watcher.history(WS)))
            redis.restart()
        await until_answered(is_status(200), "/healthz to say 200 again", timeout=30)


async def known(watcher: sdk.Watcher) -> bool:
    return bool(await watcher.workspaces(WS))


async def gone(watcher: sdk.Watcher) -> bool:
    return not await watcher.workspaces(WS)


async def test_a_delete_on_one_node_removes_the_workspace_on_every_node(tmp_path: Path) -> None:
    async with nodes_on_redis(tmp_path, 3, *QUICK_FAILOVER) as (_redis, (a, b, c)):
        async with sdk.Worker(a.url, WS) as worker:
            await worker.log("soon gone")
            await worker.flush()
        async with sdk.Watcher(b.url) as follower, sdk.Watcher(c.url) as operator:
            await until_answered(lambda: known(follower), "node B to know it", timeout=30)
            await operator.delete_workspace(WS)
            for node in (a, b, c):
                async with sdk.Watcher(node.url) as watcher:
                    await until_answered(lambda: gone(watcher), "it to go", timeout=30)
                    with pytest.raises(sdk.BrokerRefusedError, match="no workspace"):
                        await anext(aiter(watcher.history(WS)))


def naming(kind: str, request_id: int) -> schema.ClientFrame:
    """A request of ``kind`` that names the workspace ``WS``."""
    if kind == "list":
        return schema.ListWorkspaces(id=request_id, pattern=WS)
    if kind == "history":
        return schema.HistoryQuery(id=request_id, workspace=WS, after=0)
    return schema.ActionCall(id=request_id, workspace=WS, run_id="job", action="ping")


@pytest.mark.parametrize("kind", ["list", "history", "call"])
async def test_a_request_naming_a_workspace_another_node_just_created_finds_it(
    tmp_path: Path, kind: str
) -> None:
    """Node B is paused while node A creates the workspace, and the request waits in B's
    socket: B takes it before the commit's hint can have brought the workspace to B, and
    looks in the store for it instead of answering that there is none."""
    async with nodes_on_redis(tmp_path, 2, "--position-check", "600") as (_redis, (a, b)):
        job = sdk.Worker(a.url, WS, run_id="job")

        @job.action("ping")
        def ping() -> str:
            return "pong"

        async with wire_client(b.url, watcher_hello()) as watcher:
            b.pause()
            try:
                async with job:  # its hello creates the workspace
                    await job.log("created on node A")
                    await job.flush()
                    await watcher.send(naming(kind, 1))
                    b.resume()
                    reply = await watcher.receive()  # the worker still connected, for a call
            finally:
                b.resume()
    match reply:
        case schema.Workspaces(items=[found]):
            assert found.name == WS
        case schema.HistoryPage(events=[first, *_]):
            assert first.offset == 1
        case schema.CallResult(ok=True, result="pong"):
            pass
        case _:
            raise AssertionError(f"node B answered {reply!r}")


async def test_a_run_that_connects_to_another_node_takes_over_with_4009(tmp_path: Path) -> None:
    async with nodes_on_redis(tmp_path, 2) as (_redis, (a, b)):
        async with wire_client(a.url, worker_hello(WS, "job")) as first:
            async with wire_client(b.url, worker_hello(WS, "job")) as second:
                assert await closed_with(first) == 4009
                await second.publish(1, [schema.Scalar(name="x", value=1.0)])
                assert (await second.expect(schema.Ack)).seq == 1


async def test_a_token_made_once_works_on_every_node_and_its_revocation_reaches_all(
    tmp_path: Path,
) -> None:
    async with nodes_on_redis(tmp_path, 2, "--auth", "token") as (redis, (a, b)):
        code, out, err = await pierhead(
            "token", "create", "--store", redis.url, "--name", "ops", "--role", "watcher"
        )
        assert code == 0, err
        secret = out.splitlines()[-1]
        # The data directory of a node on Redis is not where its tokens are.
        code, _, err = await pierhead("token", "revoke", "ops", "--data", str(tmp_path / "node0"))
        assert code == 2
        assert "belongs to a node on Redis" in err
        async with (
            wire_client(a.url, watcher_hello(token=secret)) as on_a,
            wire_client(b.url, watcher_hello(token=secret)) as on_b,
        ):
            code, out, err = await pierhead("token", "revoke", "ops", "--store", redis.url)
            assert code == 0, err
            assert [await closed_with(on_a), await closed_with(on_b)] == [4001, 4001]
        async with wire_client(b.url) as again:
            await again.send(watcher_hello(token=secret))
            refused = await again.expect(schema.ErrorReply)
            assert (refused.code, refused.message) == ("unauthorized", "this token was revoked")
            assert await closed_with(again) == 4001


async def test_a_token_in_the_authorization_header_goes_on_with_a_relayed_worker(
    tmp_path: Path,
) -> None:
    """A token one node kept in its data directory is taken to Redis when the node starts,
    so the other node knows it too; a worker that sends it only as a header reaches the
    writer through the other node with it."""
    first = tmp_path / "node0"
    first.mkdir()
    tokens = SqliteTokenStore(first)
    _, secret = tokens.create("ci", ["worker", "watcher"])
    tokens.close()
    async with nodes_on_redis(tmp_path, 2, "--auth", "token") as (_redis, (a, b)):
        async with sdk.Worker(a.url, WS, run_id="first", token=secret) as writer_side:
            await writer_side.log("claimed by node A")
            await writer_side.flush()
            async with connect(
                b.url,
                subprotocols=[Subprotocol(schema.JSON_CODEC.subprotocol)],
                additional_headers={"Authorization": f"Bearer {secret}"},
            ) as connection:
                relayed = WireClient(connection, schema.JSON_CODEC)
                await relayed.send(worker_hello(WS, "second"))
                welcome = await relayed.expect(schema.Welcome)
                assert welcome.acked_seq == 0
