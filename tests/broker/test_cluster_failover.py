"""A Redis primary, its replica and a Sentinel on loopback, under two broker nodes that find the
primary through the Sentinel: the primary is SIGKILLed mid-stream; with `replica` durability no
acknowledged event is lost, and the nodes carry on with the promoted replica by themselves.
With `aof` durability, a replica held back (it replicates through a stalled proxy) misses what
the primary acknowledged meanwhile; once it is promoted, that loss shows as a new epoch."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

import schema
import sdk
from broker._fault_proxy import FaultProxy
from tests.broker.cluster_support import (
    QUICK_FAILOVER,
    collect,
    nodes_on,
    nodes_on_redis,
    offsets,
    stored,
)
from tests.redis_server import RedisServer, Sentinel, primary_replica_sentinel
from tests.support import until

pytestmark = pytest.mark.asyncio

WS = "failover"
GUARD_S = 90.0
"""Only a guard against a hanging test: the failover takes a few seconds."""


async def test_a_failover_loses_nothing_acknowledged_with_replica_durability(
    tmp_path: Path,
) -> None:
    with primary_replica_sentinel() as (primary, replica, sentinel):
        options = ("--redis-durability", "replica", *QUICK_FAILOVER)
        async with nodes_on(tmp_path, 2, sentinel.url, *options) as (a, b):
            async with sdk.Worker([a.url, b.url], WS, run_id="job") as job:
                for index in range(1000):
                    await job.scalar("step", index)
                await job.flush(timeout=GUARD_S)
                primary.kill()
                for index in range(1000, 2000):
                    await job.scalar("step", index)
                # The Sentinel promotes the replica; once the old primary is back, it is made
                # a replica of the new one, and commits can be fsynced on a replica again.
                await until(
                    lambda: sentinel.primary_port() == replica.port,
                    "the Sentinel to promote the replica",
                    timeout=GUARD_S,
                )
                primary.restart()
                await job.flush(timeout=GUARD_S)
            history = await stored(b.url, WS)
        steps = [e.seq for e in history if isinstance(e.payload, schema.Scalar)]
        assert steps == list(range(1, 2001))
        assert offsets(history) == list(range(1, history[-1].offset + 1))


HOLD_FAILOVER_TIMEOUT_MS = 120_000
"""The Sentinel's failover timeout while the replica replicates through a proxy: it also waits
this long before it points such a replica at the primary itself, past the proxy."""


@contextlib.asynccontextmanager
async def replica_behind_a_proxy() -> AsyncIterator[
    tuple[RedisServer, RedisServer, Sentinel, FaultProxy]
]:
    """A primary, a replica that replicates from it through a :class:`FaultProxy`, and a
    Sentinel watching both (its replica seen healthy): while the proxy stalls, the primary
    acknowledges writes (fsynced to its own AOF) that the replica never receives."""
    directories = [Path(tempfile.mkdtemp(prefix="ph-redis-")) for _ in range(3)]
    primary = RedisServer(directories[0])
    async with contextlib.AsyncExitStack() as stack:
        for directory in directories:
            stack.callback(shutil.rmtree, directory, ignore_errors=True)
        stack.callback(primary.stop)
        primary.start()
        proxy = await stack.enter_async_context(FaultProxy(primary.port))
        replica = RedisServer(directories[1], replica_of=proxy.port)
        stack.callback(replica.stop)
        # In a thread: the replica's first sync goes through the proxy, on this event loop.
        await asyncio.to_thread(replica.start)
        sentinel = Sentinel(directories[2], primary, failover_timeout_ms=HOLD_FAILOVER_TIMEOUT_MS)
        stack.callback(sentinel.stop)
        await asyncio.to_thread(sentinel.start)
        await until(
            lambda: replica.replication().get("master_link_status") == "up",
            "the replica to sync through the proxy",
        )
        await until(
            lambda: replica.port in sentinel.healthy_replicas(),
            "the Sentinel to see the replica",
        )
        yield primary, replica, sentinel, proxy


def stored_last(server: RedisServer, workspace: str) -> int:
    """The last offset ``server`` holds of ``workspace`` (read on that server directly)."""
    client = server.client()
    try:
        last = client.hget(f"ph:{{{workspace}}}:meta", "last")
    finally:
        client.close()
    assert isinstance(last, bytes), last
    return int(last)


def scalar_seqs(events: Sequence[schema.EventMsg]) -> list[int]:
    return [e.seq or 0 for e in events if isinstance(e.payload, schema.Scalar)]


async def test_a_failover_that_loses_acknowledged_commits_starts_a_new_epoch_with_aof_durability(
    tmp_path: Path,
) -> None:
    """With `aof` durability the primary acknowledges a commit once its own AOF has it: the
    commits it acknowledged while the replica was held are lost when the Sentinel promotes
    that replica. The loss shows as a new epoch (a live watcher is moved to it, a resume from
    the old epoch is not recovered), never as offsets silently given again."""
    async with replica_behind_a_proxy() as (primary, replica, sentinel, proxy):
        options = ("--redis-durability", "aof", *QUICK_FAILOVER)
        async with nodes_on(tmp_path, 2, sentinel.url, *options) as (a, b):
            async with (
                sdk.Worker([a.url, b.url], WS, run_id="job") as job,
                sdk.Watcher(b.url) as watcher,
            ):
                subscription = await watcher.subscribe(WS, since="earliest")
                for index in range(500):
                    await job.scalar("step", index)
                await job.flush(timeout=GUARD_S)
                replicated = stored_last(primary, WS)
                await until(
                    lambda: stored_last(replica, WS) == replicated, "the replica to catch up"
                )

                proxy.stall(True)
                for index in range(500, 1000):
                    await job.scalar("step", index)
                await job.flush(timeout=GUARD_S)
                acked = stored_last(primary, WS)
                # Node B reads what the primary acknowledged; the replica gets none of it.
                seen = await asyncio.wait_for(collect(subscription, WS, acked), GUARD_S)
                old_epoch = watcher.state[WS].epoch
                assert offsets(seen) == list(range(1, acked + 1))
                assert scalar_seqs(seen) == list(range(1, 1001))
                assert stored_last(replica, WS) == replicated < acked

                primary.kill()
                proxy.cut()  # what it held for the replica dies with the primary
                await until(
                    lambda: sentinel.primary_port() == replica.port,
                    "the Sentinel to promote the replica",
                    timeout=GUARD_S,
                )
                for index in range(1000, 1100):
                    await job.scalar("step", index)
                await job.flush(timeout=GUARD_S)
                history = await stored(b.url, WS)
                (state,) = await watcher.workspaces(WS)
                # The live watcher was moved to the new epoch, which it reads from its start.
                moved = await asyncio.wait_for(
                    collect(subscription, WS, history[-1].offset), GUARD_S
                )
                assert watcher.state[WS].epoch == state.epoch

            assert state.epoch != old_epoch
            # What the replica had is kept, what only the old primary had is gone, and the
            # new events continue the new epoch without a hole.
            assert scalar_seqs(history) == [*range(1, 501), *range(1001, 1101)]
            assert offsets(history) == list(range(1, history[-1].offset + 1))
            assert history[replicated - 1] == seen[replicated - 1]
            assert moved == history
            # The writer's next commit met the store that went back: it stopped (a supervisor
            # starts it again); node B carried on and took the workspace over.
            assert await a.wait(GUARD_S) == 1
            assert b.returncode is None

            async with sdk.Watcher(b.url) as late:
                resumed = await late.subscribe(WS, since={WS: schema.Cursor(old_epoch, acked)})
                assert not resumed.recovered
                assert await collect(resumed, WS, history[-1].offset) == history

            await a.start()  # on its data directory, as its supervisor would
            async with sdk.Watcher(a.url) as watcher_a:
                on_a = await watcher_a.subscribe(WS, since="earliest")
                assert watcher_a.state[WS].epoch == state.epoch
                assert await collect(on_a, WS, history[-1].offset) == history
                async with sdk.Worker([b.url, a.url], WS, run_id="job") as job:
                    await job.scalar("step", 1100)
                    await job.flush(timeout=GUARD_S)
                end = stored_last(replica, WS)
                latest = await collect(on_a, WS, end)
            assert latest == (await stored(b.url, WS))[len(history) : end]
            assert scalar_seqs(latest) == [1101]


async def test_a_node_taking_over_a_workspace_whose_store_went_back_starts_a_new_epoch(
    tmp_path: Path,
) -> None:
    """After a failover to a replica that lacked the latest commits, the writer may be gone
    too and another node take the workspace over before its position check has looked: it
    has read further than the store now holds, so it must not write on from the store's end
    in the same epoch (its watchers would silently skip the offsets given again).

    The store going back is made by restoring the workspace's keys (the replica's copy, with
    the writer's claim expired on it): no position check runs in this test and no
    subscription drops, so the takeover is the first to meet it."""
    options = (*QUICK_FAILOVER, "--position-check", "3600")
    async with nodes_on_redis(tmp_path, 2, *options) as (server, (a, b)):
        async with (
            sdk.Worker([a.url, b.url], WS, run_id="job") as job,
            sdk.Watcher(b.url) as watcher,
        ):
            subscription = await watcher.subscribe(WS, since="earliest")
            for index in range(100):
                await job.scalar("step", index)
            await job.flush(timeout=GUARD_S)
            client = server.client()
            keys = [f"ph:{{{WS}}}:{part}" for part in ("meta", "chunks", "runs", "seen")]
            replica_copy: dict[str, bytes] = {}
            for key in keys:
                dumped = client.dump(key)
                assert isinstance(dumped, bytes), key
                replica_copy[key] = dumped
            kept = stored_last(server, WS)
            for index in range(100, 200):
                await job.scalar("step", index)
            await job.flush(timeout=GUARD_S)
            acked = stored_last(server, WS)
            seen = await asyncio.wait_for(collect(subscription, WS, acked), GUARD_S)
            old_epoch = watcher.state[WS].epoch

            a.kill()
            await a.wait(GUARD_S)
            for key, value in replica_copy.items():
                client.restore(key, 0, value, replace=True)
            client.delete(f"ph:{{{WS}}}:owner")
            client.close()
            # The worker moves to node B, which takes the workspace over.
            for index in range(200, 300):
                await job.scalar("step", index)
            await job.flush(timeout=GUARD_S)
            history = await stored(b.url, WS)
            (state,) = await watcher.workspaces(WS)
            moved = await asyncio.wait_for(collect(subscription, WS, history[-1].offset), GUARD_S)

        assert state.epoch != old_epoch
        assert scalar_seqs(history) == [*range(1, 101), *range(201, 301)]
        assert offsets(history) == list(range(1, history[-1].offset + 1))
        assert history[:kept] == seen[:kept]
        assert moved == history
        async with sdk.Watcher(b.url) as late:
            resumed = await late.subscribe(WS, since={WS: schema.Cursor(old_epoch, acked)})
            assert not resumed.recovered
