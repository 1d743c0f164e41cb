"""Nodes on one Redis store under faults, as real processes: a node SIGKILLed, a node paused
past its claim, Redis itself SIGKILLed and restarted on its AOF, or paused. Nothing
acknowledged is lost, nothing is stored twice, what a stale node sends after it lost a workspace
is not stored, and a request that needs Redis is answered while Redis does not answer."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import schema
import sdk
from tests.broker.cluster_support import (
    QUICK_FAILOVER,
    collect,
    last_offset,
    nodes_on_redis,
    offsets,
    stored,
    wait_for_log,
)
from tests.broker.wire import closed_with, watcher_hello, wire_client, worker_hello
from tests.support import pierhead, until, until_answered

pytestmark = pytest.mark.asyncio

WS = "deploy"
GUARD_S = 60.0
"""Only a guard against a hanging test: failovers here take a few seconds."""


def scalar_seqs(events: list[schema.EventMsg], run_id: str) -> list[int]:
    return [
        event.seq or 0
        for event in events
        if event.run_id == run_id and isinstance(event.payload, schema.Scalar)
    ]


def mutex_changes(events: list[schema.EventMsg]) -> list[tuple[str | None, int]]:
    return [
        (event.payload.mutex_change, event.payload.fence)
        for event in events
        if isinstance(event.payload, schema.SemaphoresChange) and event.payload.mutex_change
    ]


async def until_expired(subscription: sdk.Subscription) -> list[schema.EventMsg]:
    """Deliveries up to the mutex's expiry."""
    events: list[schema.EventMsg] = []
    while not mutex_changes(events) or mutex_changes(events)[-1][0] != "expired":
        delivery = await anext(subscription)
        assert isinstance(delivery, schema.EventMsg), delivery
        events.append(delivery)
    return events


async def test_a_killed_node_loses_nothing_and_its_run_is_reached_on_its_new_node(
    tmp_path: Path,
) -> None:
    async with nodes_on_redis(tmp_path, 3, *QUICK_FAILOVER) as (_redis, (a, b, c)):
        job = sdk.Worker([a.url, b.url], WS, run_id="job")

        @job.action("ping")
        def ping(text: str) -> str:
            return f"pong {text}"

        # A raw connection holds the mutex on node A: it dies with the node, for good.
        async with (
            job,
            sdk.Watcher(c.url) as operator,
            wire_client(a.url, worker_hello(WS, "holder")) as holder,
        ):
            subscription = await operator.subscribe(WS, since="earliest")
            granted = await holder.request(schema.MutexAcquire(id=holder.next_id(), wait=False))
            assert isinstance(granted, schema.MutexGranted)
            held_fence = granted.fence
            for index in range(500):
                await job.scalar("step", index)
            await job.flush(timeout=GUARD_S)
            assert job.url == a.url
            a.kill()
            await a.wait()
            # Queued while the node is gone: sent to the next node once it takes over.
            for index in range(500, 1000):
                await job.scalar("step", index)
            await job.flush(timeout=GUARD_S)
            assert job.url == b.url
            answer = await operator.call(WS, "job", "ping", {"text": "after"}, timeout=10)
            assert answer == "pong after"
            # Node B, where the worker came back, or node C, which takes over a workspace left
            # without a writer for the grace, if the worker was slower: either writes it now.
            await until(
                lambda: any(node.events("workspace_claimed") for node in (b, c)),
                "a live node to claim the workspace",
                timeout=GUARD_S,
            )
            # The holder's node died with it: its lease ends after the grace.
            delivered = await asyncio.wait_for(until_expired(subscription), GUARD_S)
        history = await stored(b.url, WS)
        assert offsets(history) == list(range(1, history[-1].offset + 1))
        assert scalar_seqs(history, "job") == list(range(1, 1001))
        assert delivered == history[: len(delivered)]
        changes = mutex_changes(history)
        assert ("granted", held_fence) in changes
        assert ("expired", held_fence) in changes


async def test_a_node_that_stops_hands_its_workspaces_over_at_once(tmp_path: Path) -> None:
    """A drained node gives up its claims. The claim lease is far longer than the test may
    take: the worker goes on through node B only because node A released the claim."""
    async with nodes_on_redis(tmp_path, 2, "--claim-lease", "600") as (_redis, (a, b)):
        async with sdk.Worker([a.url, b.url], WS, run_id="job") as job:
            await job.scalar("step", 0)
            await job.flush(timeout=GUARD_S)
            assert job.url == a.url
            a.terminate()
            assert await a.wait() == 0
            await job.scalar("step", 1)
            await job.flush(timeout=GUARD_S)
            assert job.url == b.url
        (released,) = a.events("claims_released")
        history = await stored(b.url, WS)
    assert released["workspaces"] == 1
    assert scalar_seqs(history, "job") == [1, 2]


async def test_a_killed_node_s_run_that_never_comes_back_expires_on_another_node(
    tmp_path: Path,
) -> None:
    """The worker does not fail over and nothing asks for its workspace: a position check
    of node A finds the workspace's writer gone with a run still shown connected, and
    claims it, so that the run goes offline and expires after its grace."""
    async with nodes_on_redis(tmp_path, 2, *QUICK_FAILOVER) as (_redis, (a, b)):
        async with sdk.Watcher(a.url) as watcher:
            subscription = await watcher.subscribe(WS, since="earliest", kinds=["presence"])
            async with wire_client(b.url, worker_hello(WS, "lost")) as lost:
                await lost.publish(1, [schema.Scalar(name="step", value=1.0)])
                await lost.expect(schema.Ack)
                b.kill()
                await b.wait()
            states: list[str] = []
            while "expired" not in states:
                delivery = await asyncio.wait_for(anext(subscription), GUARD_S)
                assert isinstance(delivery, schema.EventMsg), delivery
                assert isinstance(delivery.payload, schema.Presence), delivery
                states.append(delivery.payload.state)
            (workspace,) = await watcher.workspaces(WS)
            adoptions = (await watcher.stats()).counters["cluster_adoptions"]
    assert states == ["connected", "disconnected", "expired"]
    assert not workspace.workers
    assert adoptions == 1


async def test_a_node_paused_past_its_claim_is_fenced_out(tmp_path: Path) -> None:
    async with nodes_on_redis(tmp_path, 2, *QUICK_FAILOVER) as (_redis, (a, b)):
        waiting = sdk.Worker(b.url, WS, run_id="waiting")
        async with (
            wire_client(a.url, worker_hello(WS, "stale")) as stale,
            waiting,
        ):
            granted = await stale.request(schema.MutexAcquire(id=stale.next_id(), wait=False))
            assert isinstance(granted, schema.MutexGranted)
            await stale.publish(1, [schema.Scalar(name="before", value=1.0)])
            assert (await stale.expect(schema.Ack)).seq == 1
            contender = asyncio.create_task(waiting_for_the_mutex(waiting))
            a.pause()
            # B takes the workspace over once A's claim lapses; the stale holder's grace then
            # runs out and the waiting worker is granted the mutex with a higher fence.
            new_fence = await asyncio.wait_for(contender, GUARD_S)
            assert new_fence > granted.fence
            # A carries on as if nothing had happened, and the stale holder publishes.
            a.resume()
            await stale.publish(2, [schema.Scalar(name="after", value=2.0)])
            assert await a.wait(GUARD_S) == 1
        assert a.events("broker_failed"), a.describe()
        history = await stored(b.url, WS)
        assert offsets(history) == list(range(1, history[-1].offset + 1))
        assert scalar_seqs(history, "stale") == [1]
        assert ("granted", new_fence) in mutex_changes(history)


async def waiting_for_the_mutex(worker: sdk.Worker) -> int:
    async with worker.mutex() as lease:
        return lease.fence


async def test_redis_killed_mid_stream_and_restarted_loses_nothing_acknowledged(
    tmp_path: Path,
) -> None:
    async with nodes_on_redis(tmp_path, 2) as (redis, (a, b)):
        async with sdk.Worker(a.url, WS, run_id="job") as job, sdk.Watcher(b.url) as watcher:
            subscription = await watcher.subscribe(WS, since="earliest")
            for index in range(2000):
                await job.scalar("step", index)
            await job.flush(timeout=GUARD_S)
            acked_before = job.counters["acked"]
            redis.kill()
            for index in range(2000, 4000):
                await job.scalar("step", index)
            await wait_for_log(a, "store_unreachable")
            redis.restart()
            await job.flush(timeout=GUARD_S)
            assert acked_before == 2000
            end = await last_offset(a.url, WS)
            delivered = await asyncio.wait_for(collect(subscription, WS, end), GUARD_S)
        history = await stored(b.url, WS)
        assert scalar_seqs(history, "job") == list(range(1, 4001))
        assert offsets(history) == list(range(1, history[-1].offset + 1))
        assert delivered == history[: len(delivered)]
        assert a.returncode is None
        assert b.returncode is None


async def test_a_store_that_went_back_moves_the_workspace_to_a_new_epoch(tmp_path: Path) -> None:
    """What a failover to a replica that lacked the latest commits looks like to the nodes:
    the workspace's keys as they were a while ago. Offsets after that point were read by
    watchers; they must not be given to new events in the same epoch."""
    async with nodes_on_redis(tmp_path, 2, *QUICK_FAILOVER) as (redis, (a, b)):
        async with sdk.Worker(a.url, WS, run_id="job") as job, sdk.Watcher(b.url) as watcher:
            subscription = await watcher.subscribe(WS, since="earliest")
            for index in range(100):
                await job.scalar("step", index)
            await job.flush(timeout=GUARD_S)
            client = redis.client()
            keys = [f"ph:{{{WS}}}:{part}" for part in ("meta", "chunks", "runs", "seen")]
            earlier: dict[str, bytes] = {}
            for key in keys:
                dumped = client.dump(key)
                assert isinstance(dumped, bytes), key
                earlier[key] = dumped
            for index in range(100, 200):
                await job.scalar("step", index)
            await job.flush(timeout=GUARD_S)
            end = await last_offset(a.url, WS)
            seen = await asyncio.wait_for(collect(subscription, WS, end), GUARD_S)
            old_epoch = watcher.state[WS].epoch
            for key, value in earlier.items():
                client.restore(key, 0, value, replace=True)
            client.close()

            # Node B read further than the store now holds: the workspace gets a new epoch.
            async def renewed() -> bool:
                return (await watcher.workspaces(WS))[0].epoch != old_epoch

            await until_answered(renewed, "a new epoch", timeout=GUARD_S)
        await a.wait(GUARD_S)  # its next commit met the new epoch: it stopped
        # A reader resuming where it was in the old epoch is told it did not recover.
        async with sdk.Watcher(b.url) as late:
            cursor = {WS: schema.Cursor(epoch=old_epoch, offset=seen[-1].offset)}
            resumed = await late.subscribe(WS, since=cursor)
            assert not resumed.recovered


async def test_requests_that_need_a_paused_redis_are_answered(tmp_path: Path) -> None:
    """Redis stops answering without closing its connections (SIGSTOP, as behind a network that
    drops everything): the node answers ``stats`` with its own counters and a forwarded
    ``catch`` with a typed error, rather than holding them until Redis comes back."""
    async with nodes_on_redis(tmp_path, 2) as (redis, (a, b)):
        async with (
            sdk.Worker(a.url, WS) as worker,
            sdk.Watcher(b.url, request_timeout_s=GUARD_S) as watcher,
        ):
            await worker.log("written on node A")
            await worker.flush()
            await until_answered(lambda: written_elsewhere(watcher), "node B mirrors the workspace")
            redis.pause()
            try:
                report = await watcher.stats()
                with pytest.raises(sdk.BrokerRefusedError) as refused:
                    await watcher.catch(WS)
            finally:
                redis.resume()
            assert report.counters["cluster.nodes_reporting"] == 1
            assert refused.value.code is schema.ErrorCode.INTERNAL
            assert "cannot be reached" in str(refused.value)
            # Back to normal once Redis answers again: the request is carried out by node A,
            # and node B's mirror shows it once it has followed A's commit.
            await watcher.catch(WS)
            await until_answered(lambda: caught_on(watcher), "node B shows the catch")


async def caught_on(watcher: sdk.Watcher) -> bool:
    (state,) = await watcher.workspaces(WS)
    return state.semaphores.caught


async def written_elsewhere(watcher: sdk.Watcher) -> bool:
    return bool(await watcher.workspaces(WS))


async def test_a_node_stopped_while_redis_is_paused_exits_and_says_why(tmp_path: Path) -> None:
    """SIGTERM while Redis answers nothing and a worker's event waits for its commit: the node
    drains, gives the commit up, exits non-zero naming the cause, and prints no traceback (the
    event was never acknowledged: the worker sends it again elsewhere)."""
    async with nodes_on_redis(tmp_path, 1, "--drain-timeout", "1") as (redis, (node,)):
        async with sdk.Worker(node.url, WS) as worker:
            await worker.log("committed")
            await worker.flush()
            redis.pause()
            try:
                await worker.log("waits for Redis")
                await until(lambda: bool(node.events("store_unreachable")), "the stall seen")
                node.terminate()
                assert await node.wait(GUARD_S) == 1
            finally:
                redis.resume()
        (failed,) = node.events("broker_failed")
        assert "Redis was unreachable" in failed["cause"], node.describe()
        assert not [record for record in node.logs if "exception" in record], node.describe()
        raw = [record["raw"] for record in node.logs if "raw" in record]
        assert not [line for line in raw if "Traceback" in line], node.describe()


async def test_a_session_whose_token_cannot_be_checked_is_told_to_come_back(
    tmp_path: Path,
) -> None:
    """With the tokens in a paused Redis, a new session is refused with 1013 (try again
    later), a close the SDK retries after, not with 4001 (a bad token, which it gives up on);
    its token works once Redis answers again, and the sessions already open stay open
    meanwhile."""
    async with nodes_on_redis(tmp_path, 1, "--auth", "token") as (redis, (node,)):
        code, out, err = await pierhead(
            "token", "create", "--store", redis.url, "--name", "ops", "--role", "watcher"
        )
        assert code == 0, err
        secret = out.splitlines()[-1]
        watcher = sdk.Watcher(node.url, token=secret, reconnect_max_s=0.2)
        states = watcher.state_changes()
        async with wire_client(node.url, watcher_hello(token=secret)) as open_before:
            redis.pause()
            try:
                async with wire_client(node.url) as refused:
                    await refused.send(watcher_hello(token=secret))
                    error = await refused.expect(schema.ErrorReply)
                    assert await closed_with(refused) == 1013
                # The SDK is refused the same way, and tries again.
                await watcher.start()
                async with asyncio.timeout(GUARD_S):
                    while await anext(states) is not sdk.ConnectionState.RECONNECTING:
                        pass
            finally:
                redis.resume()
            try:
                await asyncio.wait_for(watcher.connected(), GUARD_S)
            finally:
                await watcher.close()
            assert error.code is schema.ErrorCode.INTERNAL
            assert "cannot check the token now" in error.message
            async with wire_client(node.url, watcher_hello(token=secret)) as admitted:
                assert admitted.welcome is not None
            listed = await open_before.request(
                schema.ListWorkspaces(id=open_before.next_id(), pattern="*")
            )
            assert isinstance(listed, schema.Workspaces)
