"""Catch and release pushed to workers; the mutex lease with fences, waiting, grace and break."""

from __future__ import annotations

import pytest

import schema
from tests.broker.wire import WireClient, watcher_hello, wire_client, worker_hello
from tests.support import BrokerStore

pytestmark = pytest.mark.asyncio


async def acquire(worker: WireClient, *, wait: bool = False) -> schema.BrokerFrame:
    return await worker.request(schema.MutexAcquire(id=worker.next_id(), wait=wait))


async def test_catch_from_a_watcher_is_pushed_to_every_worker_of_the_workspace(
    broker_store: BrokerStore,
) -> None:
    async with broker_store.running_broker() as broker:
        async with (
            wire_client(broker.url, worker_hello("deploy", "a")) as a,
            wire_client(broker.url, worker_hello("deploy", "b")) as b,
            wire_client(broker.url, worker_hello("other", "c")) as other,
            wire_client(broker.url, watcher_hello(client="alice")) as operator,
        ):
            catch = schema.Catch(id=operator.next_id(), workspace="deploy", reason="db-3 is down")
            assert await operator.request(catch) == schema.Ok(id=catch.id)
            for worker in (a, b):
                push = await worker.expect(schema.SemaphoresPush)
                assert push.workspace == "deploy"
                assert push.caught
                assert (push.by, push.reason) == ("alice", "db-3 is down")
            release = schema.Release(id=operator.next_id(), workspace="deploy")
            assert await operator.request(release) == schema.Ok(id=release.id)
            assert not (await a.expect(schema.SemaphoresPush)).caught
            # The other workspace's worker got nothing: its next frame answers its own request.
            details = schema.SetDetails(id=other.next_id(), details=schema.WorkspaceDetails())
            await other.send(details)
            assert await other.receive() == schema.Ok(id=details.id)
            listing = await operator.request(schema.ListWorkspaces(id=operator.next_id()))
            assert isinstance(listing, schema.Workspaces)
            states = {state.name: state for state in listing.items}
            assert not states["deploy"].semaphores.caught
            assert states["deploy"].semaphores.by == "alice"


async def test_a_worker_catches_only_its_own_workspace(broker_store: BrokerStore) -> None:
    async with broker_store.running_broker() as broker:
        async with wire_client(broker.url, worker_hello("mine", "r")) as worker:
            own = schema.Catch(id=worker.next_id(), reason="self-check failed")
            await worker.send(own)
            # The push goes out on commit, the answer right after it.
            push = await worker.receive()
            assert await worker.receive() == schema.Ok(id=own.id)
            assert isinstance(push, schema.SemaphoresPush)
            assert push.caught
            assert push.by == "r"
            foreign = schema.Catch(id=worker.next_id(), workspace="theirs")
            reply = await worker.request(foreign)
            assert isinstance(reply, schema.ErrorReply)
            assert reply.code is schema.ErrorCode.FORBIDDEN


async def test_two_workers_contend_and_the_waiter_gets_it_after_release(
    broker_store: BrokerStore,
) -> None:
    async with broker_store.running_broker() as broker:
        async with (
            wire_client(broker.url, worker_hello("ws", "first")) as first,
            wire_client(broker.url, worker_hello("ws", "second")) as second,
        ):
            granted = await acquire(first)
            assert isinstance(granted, schema.MutexGranted)
            refused = await acquire(second)
            assert isinstance(refused, schema.ErrorReply)
            assert refused.code is schema.ErrorCode.CONFLICT
            assert refused.detail == {"holder": "first"}
            waiting = schema.MutexAcquire(id=second.next_id(), wait=True)
            await second.send(waiting)
            release = schema.MutexRelease(id=first.next_id())
            assert await first.request(release) == schema.Ok(id=release.id)
            handed_over = await second.expect(schema.MutexGranted)
            assert handed_over.id == waiting.id
            assert handed_over.fence > granted.fence


async def test_a_disconnected_holder_keeps_the_mutex_during_grace_and_loses_it_after(
    broker_store: BrokerStore,
) -> None:
    async with broker_store.running_broker(mutex_grace_s=0.5) as broker:
        async with wire_client(broker.url, worker_hello("ws", "holder")) as holder:
            first = await acquire(holder)
            assert isinstance(first, schema.MutexGranted)
        # Within grace the same run comes back and still holds it, with the same fence.
        async with wire_client(broker.url, worker_hello("ws", "holder")) as holder:
            assert holder.welcome is not None
            assert holder.welcome.semaphores is not None
            assert holder.welcome.semaphores.holder == "holder"
            again = await acquire(holder)
            assert isinstance(again, schema.MutexGranted)
            assert again.fence == first.fence
        async with wire_client(broker.url, watcher_hello()) as watcher:
            await watcher.request(schema.Subscribe(id=watcher.next_id(), pattern="ws"))
            while True:
                frame = await watcher.expect(schema.Events)
                payloads = [event.payload for event in frame.events]
                changes = [p for p in payloads if isinstance(p, schema.SemaphoresChange)]
                if any(not change.has_mutex for change in changes):
                    break
            async with wire_client(broker.url, worker_hello("ws", "next")) as successor:
                granted = await acquire(successor)
                assert isinstance(granted, schema.MutexGranted)
                assert granted.fence == first.fence + 1


async def test_break_tells_the_holder_and_fences_only_grow(broker_store: BrokerStore) -> None:
    async with broker_store.running_broker() as broker:
        async with (
            wire_client(broker.url, worker_hello("ws", "holder")) as holder,
            wire_client(broker.url, watcher_hello(client="admin")) as admin,
        ):
            fences = []
            for _ in range(3):
                granted = await acquire(holder)
                assert isinstance(granted, schema.MutexGranted)
                fences.append(granted.fence)
                breaking = schema.MutexBreak(id=admin.next_id(), workspace="ws")
                assert await admin.request(breaking) == schema.Ok(id=breaking.id)
                lost = await holder.expect(schema.MutexLost)
                assert (lost.fence, lost.reason) == (granted.fence, "broken")
            assert fences == sorted(set(fences))
            nothing = schema.MutexBreak(id=admin.next_id(), workspace="ws")
            reply = await admin.request(nothing)
            assert isinstance(reply, schema.ErrorReply)
            assert reply.code is schema.ErrorCode.NOT_FOUND


async def test_mutex_wait_times_out_with_a_typed_error(broker_store: BrokerStore) -> None:
    async with broker_store.running_broker() as broker:
        async with (
            wire_client(broker.url, worker_hello("ws", "a")) as a,
            wire_client(broker.url, worker_hello("ws", "b")) as b,
        ):
            assert isinstance(await acquire(a), schema.MutexGranted)
            reply = await b.request(schema.MutexAcquire(id=b.next_id(), wait=True, timeout_s=0.2))
            assert isinstance(reply, schema.ErrorReply)
            assert reply.code is schema.ErrorCode.TIMEOUT


@pytest.mark.parametrize("kind", ["catch", "release", "mutex_break", "delete"])
async def test_a_request_about_a_workspace_that_exists_nowhere_is_not_found(
    broker_store: BrokerStore, kind: str
) -> None:
    """On Redis the node first looks in the store for a workspace another node may have
    made; finding none, it answers at once (it once looked again and again, unanswered)."""
    frames: dict[str, schema.ClientFrame] = {
        "catch": schema.Catch(id=1, workspace="nowhere"),
        "release": schema.Release(id=1, workspace="nowhere"),
        "mutex_break": schema.MutexBreak(id=1, workspace="nowhere"),
        "delete": schema.DeleteWorkspace(id=1, workspace="nowhere"),
    }
    async with (
        broker_store.running_broker() as broker,
        wire_client(broker.url, watcher_hello()) as operator,
    ):
        reply = await operator.request(frames[kind])
    assert isinstance(reply, schema.ErrorReply), reply
    assert reply.code is schema.ErrorCode.NOT_FOUND, reply
