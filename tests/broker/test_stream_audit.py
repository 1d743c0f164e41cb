"""The stream's audit against a real broker with SDK workers and watchers: a mutex break is
attributed to the admin's token, a holder that leaves is told with the end of its grace and
then expires, every action call ends in exactly one ``call`` event, and a worker cannot
publish one."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

import schema
import sdk
from broker._tokens import SqliteTokenStore
from broker.testing import FaultProxy, running_broker
from tests.broker.wire import wire_client, worker_hello
from tests.support import WAIT_S, BrokerStore

pytestmark = pytest.mark.asyncio

WORKSPACE = "deploy-audit"


async def events_until(
    deliveries: AsyncIterator[sdk.Delivery], change: str
) -> list[schema.EventMsg]:
    """The semaphores events delivered up to the first whose ``mutex_change`` is ``change``."""
    seen: list[schema.EventMsg] = []
    async with asyncio.timeout(WAIT_S):
        async for item in deliveries:
            if isinstance(item, schema.EventMsg) and isinstance(
                item.payload, schema.SemaphoresChange
            ):
                seen.append(item)
                if item.payload.mutex_change == change:
                    return seen
    raise AssertionError(f"the subscription ended before a {change!r} change")


async def semaphores_until(
    deliveries: AsyncIterator[sdk.Delivery], change: str
) -> list[schema.SemaphoresChange]:
    """The semaphores changes delivered up to the first whose ``mutex_change`` is ``change``."""
    changes = []
    for event in await events_until(deliveries, change):
        assert isinstance(event.payload, schema.SemaphoresChange)
        changes.append(event.payload)
    return changes


async def test_a_break_by_an_admin_token_is_attributed_to_the_token(tmp_path: Path) -> None:
    data = tmp_path / "data"
    tokens = SqliteTokenStore(data)
    _, admin = tokens.create("alice-admin", ["watcher", "admin"], "deploy-*")
    _, worker_token = tokens.create("trainer", ["worker"], "deploy-*")
    tokens.close()
    async with (
        running_broker(data, auth="token") as broker,
        sdk.Worker(broker.url, WORKSPACE, run_id="holder", token=worker_token) as worker,
        sdk.Watcher(broker.url, token=admin, client="impostor") as watcher,
    ):
        await worker.connected()
        subscription = await watcher.subscribe(WORKSPACE, kinds=["semaphores"])
        async with worker.mutex() as lease:
            granted = await semaphores_until(aiter(subscription), "granted")
            assert (granted[-1].mutex_by, granted[-1].holder) == ("holder", "holder")
            await watcher.break_mutex(WORKSPACE)
            (broken,) = await semaphores_until(aiter(subscription), "broken")
            assert await asyncio.wait_for(lease.wait_lost(), WAIT_S) == "broken"
        assert (broken.mutex_by, broken.has_mutex, broken.holder) == ("alice-admin", False, None)
        assert broken.fence == lease.fence
        assert worker.semaphores.mutex_change == "broken"


async def test_a_holder_that_leaves_is_told_with_its_grace_deadline_then_expires(
    broker_store: BrokerStore,
) -> None:
    grace_s = 0.5
    async with (
        broker_store.running_broker(mutex_grace_s=grace_s) as broker,
        FaultProxy(broker.port) as link,
        sdk.Watcher(broker.url) as watcher,
    ):
        subscription = await watcher.subscribe(WORKSPACE, kinds=["semaphores"])
        async with sdk.Worker(
            link.url, WORKSPACE, run_id="holder", reconnect_initial_s=0.05, reconnect_max_s=0.1
        ) as worker:
            async with worker.mutex() as lease:
                await semaphores_until(aiter(subscription), "granted")
                link.refuse(True)
                link.cut()
                (left_event,) = await events_until(aiter(subscription), "holder_left")
                (expired,) = await semaphores_until(aiter(subscription), "expired")
                link.refuse(False)
                assert await asyncio.wait_for(lease.wait_lost(), WAIT_S) == "expired"
    left = left_event.payload
    assert isinstance(left, schema.SemaphoresChange)
    assert (left.holder, left.mutex_by, left.has_mutex) == ("holder", "holder", True)
    assert left.grace_until is not None
    # The deadline is the broker's own: the moment the holder left plus its --grace.
    assert left.grace_until - left_event.received_time == datetime.timedelta(seconds=grace_s)
    assert (expired.mutex_change, expired.grace_until) == ("expired", None)
    assert expired.mutex_by == "holder"  # the run whose lease expired
    assert (expired.has_mutex, expired.holder) == (False, None)


async def test_every_call_ending_commits_exactly_one_call_event(broker_store: BrokerStore) -> None:
    entered = asyncio.Event()
    let_go = asyncio.Event()
    async with (
        broker_store.running_broker() as broker,
        sdk.Watcher(broker.url, client="ops-console") as ops,
    ):
        worker = sdk.Worker(broker.url, WORKSPACE, run_id="run-a")

        @worker.action("double")
        def double(value: int) -> int:
            return value * 2

        @worker.action("boom")
        def boom() -> None:
            raise KeyError("db-9")

        @worker.action("hang")
        async def hang() -> str:
            entered.set()
            await let_go.wait()
            return "late"

        await worker.start()
        await worker.connected()
        subscription = await ops.subscribe(WORKSPACE, kinds=["call"])
        assert await ops.call(WORKSPACE, "run-a", "double", {"value": 21}) == 42
        with pytest.raises(sdk.ActionFailedError):
            await ops.call(WORKSPACE, "run-a", "boom")
        with pytest.raises(sdk.BadCallError):
            await ops.call(WORKSPACE, "run-a", "double", {"value": "abc"})
        with pytest.raises(sdk.BrokerRefusedError) as timed_out:
            await ops.call(WORKSPACE, "run-a", "hang", timeout=0.2)
        assert timed_out.value.code is schema.ErrorCode.TIMEOUT
        # The late answer to the timed-out call comes before the next call's: a record of it
        # would be delivered before that call's.
        entered.clear()
        let_go.set()
        assert await ops.call(WORKSPACE, "run-a", "double", {"value": 1}) == 2
        let_go.clear()
        gone = asyncio.create_task(ops.call(WORKSPACE, "run-a", "hang"))
        await asyncio.wait_for(entered.wait(), WAIT_S)
        await worker.close()
        with pytest.raises(sdk.BrokerRefusedError) as went_away:
            await gone
        assert went_away.value.code is schema.ErrorCode.NOT_FOUND
        delivered: list[schema.CallRecord] = []
        async with asyncio.timeout(WAIT_S):
            async for item in subscription:
                assert isinstance(item, schema.EventMsg)
                assert isinstance(item.payload, schema.CallRecord)
                delivered.append(item.payload)
                if len(delivered) == 6:
                    break
        stored = [event.payload async for event in ops.history(WORKSPACE, kinds=["call"])]
    assert [(r.action, r.outcome) for r in delivered] == [
        ("double", "ok"),
        ("boom", "failed"),
        ("double", "bad_call"),
        ("hang", "timeout"),
        ("double", "ok"),
        ("hang", "worker_gone"),
    ]
    assert stored == delivered[::-1]  # history is newest first: the same six, no more
    assert {r.caller for r in delivered} == {"ops-console"}
    assert [r.args for r in delivered[:3]] == [{"value": 21}, {}, {"value": "abc"}]
    assert delivered[1].error == schema.ActionFailure(type="KeyError", message="'db-9'")
    assert delivered[2].error is not None
    assert delivered[2].error.type == "pierhead.bad_call"
    assert all(r.started is not None for r in delivered)


async def test_a_worker_publishing_a_call_event_is_refused_and_nothing_is_stored(
    broker_store: BrokerStore,
) -> None:
    forged = {
        "type": "publish",
        "seq": 1,
        "events": [
            {
                "payload": {
                    "kind": "call",
                    "call": 1,
                    "action": "deploy",
                    "run_id": "run-a",
                    "outcome": "ok",
                    "caller": "alice",
                },
                "create_time": "2026-01-01T00:00:00Z",
            }
        ],
    }
    async with broker_store.running_broker() as broker:
        async with wire_client(broker.url, worker_hello(WORKSPACE, "run-a")) as worker:
            await worker.send_raw(msgspec.json.encode(forged))
            refused = await worker.expect(schema.ErrorReply)
            assert refused.code is schema.ErrorCode.BAD_FRAME
            assert "payload.kind" in refused.message
            await worker.publish(1, [schema.WorkspaceEvent(message="still publishing")])
            assert (await worker.expect(schema.Ack)).seq == 1
        async with sdk.Watcher(broker.url) as watcher:
            kinds = [event.kind async for event in watcher.history(WORKSPACE)]
    assert "call" not in kinds
    assert "event" in kinds
