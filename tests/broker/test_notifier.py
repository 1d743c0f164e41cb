"""Notifications end to end: a real broker (on each store), real sessions, a real HTTP
receiver on loopback; the exact requests it gets."""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path
from typing import Any

import pytest

import schema
from broker._notifier import Notifier
from broker._notify import AdviceRule, NotifyConfig, SinkConfig, Trigger
from broker._notify_format import verify_signature
from broker._sqlite_store import SQLiteStore
from broker._threads import StoreThreads
from broker._writer import GroupCommitWriter
from tests.broker.store_cases import NAME, batch
from tests.broker.wire import WireClient, watcher_hello, wire_client, worker_hello
from tests.notify_receiver import NotifyReceiver, Received
from tests.schema.fold_fixtures import envelope
from tests.support import BrokerStore, until_answered

pytestmark = pytest.mark.asyncio

SECRET = "s3cret-for-tests"


def webhook(url: str, *triggers: Trigger, **options: Any) -> SinkConfig:
    options.setdefault("coalesce_s", 0.0)
    return SinkConfig(
        name="hook",
        kind="webhook",
        url=url,
        triggers=frozenset(triggers),
        secret=SECRET,
        retry_max_s=0.2,
        timeout_s=2.0,
        **options,
    )


def stall_watching(receiver: NotifyReceiver) -> NotifyConfig:
    """Stalls after half a second, told to ``receiver``."""
    sink = webhook(receiver.url, "stalled", "recovered")
    return NotifyConfig(sinks=(sink,), stall_after_s=0.5)


def error(message: str) -> schema.WorkspaceEvent:
    return schema.WorkspaceEvent(message=message, severity="error")


async def publish(worker: WireClient, seq: int, payloads: list[schema.WorkerPayload]) -> None:
    """Publish and wait until all of it is acknowledged (durable)."""
    await worker.publish(seq, payloads)
    last = seq + len(payloads) - 1
    while (await worker.expect(schema.Ack)).seq < last:
        pass


def verified(request: Received) -> dict[str, Any]:
    """The webhook body, once its signature and headers check out."""
    headers = request.headers
    assert request.method == "POST"
    assert headers["content-type"] == "application/json"
    assert verify_signature(
        SECRET,
        headers["x-pierhead-timestamp"],
        request.body,
        headers["x-pierhead-signature"],
        now=time.time(),
    )
    body: dict[str, Any] = request.json()
    assert headers["idempotency-key"] == body["id"]
    return body


async def test_a_catch_and_a_release_are_posted_once_each_with_who_and_why(
    broker_store: BrokerStore,
) -> None:
    async with NotifyReceiver() as receiver:
        sink = webhook(receiver.url, "caught", "released")
        notify = NotifyConfig(sinks=(sink,), public_url="https://ph.example.com")
        async with broker_store.running_broker(notify=notify) as broker:
            async with (
                wire_client(broker.url, worker_hello("deploy.prod", "r1")) as worker,
                wire_client(broker.url, watcher_hello(client="alice")) as operator,
            ):
                assert worker.welcome is not None
                epoch = worker.welcome.epoch
                catch = schema.Catch(id=operator.next_id(), workspace="deploy.prod", reason="maint")
                assert isinstance(await operator.request(catch), schema.Ok)
                release = schema.Release(id=operator.next_id(), workspace="deploy.prod")
                assert isinstance(await operator.request(release), schema.Ok)
                caught, released = [verified(r) for r in await receiver.wait_for(2)]
    assert caught["trigger"] == "caught"
    assert caught["reason"] == "maint"
    assert caught["workspace"] == "deploy.prod"
    assert caught["epoch"] == epoch
    assert caught["count"] == 1
    assert caught["event"]["offset"] == caught["offset"]
    assert caught["url"] == f"https://ph.example.com/w/deploy.prod?at={caught['offset']}"
    assert caught["id"] == f"hook:deploy.prod:{epoch}:{caught['offset']}:caught"
    assert released["trigger"] == "released"
    assert released["offset"] > caught["offset"]
    assert caught["who"] == released["who"]
    assert caught["who"] is not None
    assert len(receiver.requests) == 2


async def test_an_error_storm_is_one_message_with_its_count_and_advice(
    broker_store: BrokerStore,
) -> None:
    async with NotifyReceiver() as receiver:
        sink = webhook(receiver.url, "event", coalesce_s=1.0)
        advice = (AdviceRule(re.compile(r"No space left"), "The disk is full."),)
        notify = NotifyConfig(sinks=(sink,), advice=advice)
        async with broker_store.running_broker(notify=notify) as broker:
            async with wire_client(broker.url, worker_hello("train.a", "r1")) as worker:
                storm: list[schema.WorkerPayload] = [
                    error(f"write {n}: No space left on device") for n in range(1000)
                ]
                await publish(worker, 1, [*storm[:500], schema.Scalar(name="x", value=1.0)])
                await publish(worker, 502, storm[500:])
                (request,) = await receiver.wait_for(1)
                body = verified(request)
                # A later error, after the storm went out, is a message of its own.
                await publish(worker, 1002, [error("worse")])
                later = verified((await receiver.wait_for(2))[1])
    assert body["count"] == 1000
    assert body["trigger"] == "event"
    assert body["severity"] == "error"
    assert body["summary"] == "write 0: No space left on device"
    assert body["advice"] == "The disk is full."
    assert body["run_id"] == "r1"
    assert later["count"] == 1
    assert later["summary"] == "worse"
    assert later["advice"] is None
    assert len(receiver.requests) == 2


@pytest.mark.parametrize("reconnect", [False, True], ids=["same connection", "reconnected"])
async def test_a_silent_connected_run_is_reported_stalled_once_and_recovered_when_it_speaks(
    broker_store: BrokerStore, reconnect: bool
) -> None:
    # Reconnected: the run was restarted and connects again within its grace, then speaks.
    async with NotifyReceiver() as receiver:
        notify = stall_watching(receiver)
        async with broker_store.running_broker(notify=notify) as broker:
            async with contextlib.AsyncExitStack() as connections:
                hello = worker_hello("train.b", "r1")
                worker = await connections.enter_async_context(wire_client(broker.url, hello))
                await publish(worker, 1, [schema.Scalar(name="loss", value=1.0)])
                stalled = verified((await receiver.wait_for(1))[0])
                if reconnect:
                    await connections.aclose()
                    worker = await connections.enter_async_context(wire_client(broker.url, hello))
                await publish(worker, 2, [schema.Scalar(name="loss", value=0.5)])
                recovered = verified((await receiver.wait_for(2))[1])
                stats = await delivered(broker.url)
    assert stalled["trigger"] == "stalled"
    assert stalled["run_id"] == "r1"
    assert stalled["offset"] is None
    assert stalled["id"].endswith(":stalled")
    assert (recovered["trigger"], recovered["run_id"]) == ("recovered", "r1")
    assert recovered["id"] != stalled["id"]
    assert len(receiver.requests) == 2
    assert stats["notify.hook.sent"] == 2


async def test_a_run_that_expires_without_a_final_status_is_reported_and_one_with_is_not(
    broker_store: BrokerStore,
) -> None:
    async with NotifyReceiver() as receiver:
        sink = webhook(receiver.url, "expired", "finished")
        notify = NotifyConfig(sinks=(sink,))
        async with broker_store.running_broker(notify=notify, mutex_grace_s=0.2) as broker:
            async with wire_client(broker.url, worker_hello("jobs", "done")) as done:
                await publish(done, 1, [schema.Status(key="state", value="succeeded")])
            async with wire_client(broker.url, worker_hello("jobs", "lost")):
                pass
            requests = await receiver.wait_for(2)
            async with wire_client(broker.url, watcher_hello()) as watcher:
                # Both runs have expired once the stream says so: then nothing more is due.
                async def both_expired() -> bool:
                    return await expired_runs(watcher, "jobs") == {"done", "lost"}

                await until_answered(both_expired, "both runs expired")
            stats = await delivered(broker.url)
    bodies = [verified(r) for r in requests]
    assert [(b["trigger"], b["run_id"]) for b in bodies] == [
        ("finished", "done"),
        ("expired", "lost"),
    ]
    assert stats["notify.hook.sent"] == 2
    assert len(receiver.requests) == 2


async def test_a_receiver_that_never_answers_holds_up_nothing_else(
    broker_store: BrokerStore,
) -> None:
    async with NotifyReceiver() as receiver:
        receiver.hold = True
        sink = webhook(receiver.url, "event", max_queued=50)
        notify = NotifyConfig(sinks=(sink,))
        async with broker_store.running_broker(notify=notify) as broker:
            async with (
                wire_client(broker.url, worker_hello("busy", "r1")) as worker,
                wire_client(broker.url, watcher_hello()) as watcher,
            ):
                subscribe = schema.Subscribe(id=watcher.next_id(), pattern="busy")
                assert isinstance(await watcher.request(subscribe), schema.Subscribed)
                seq = 1
                for _ in range(20):
                    await publish(worker, seq, [error(f"e{seq + n}") for n in range(100)])
                    seq += 100
                seen = 0
                while seen < 2000:
                    seen += sum(
                        isinstance(e.payload, schema.WorkspaceEvent)
                        for e in (await watcher.expect(schema.Events)).events
                    )
                await receiver.wait_for(1)  # the first attempt is held, unanswered
                stats: dict[str, Any] = {}

                # Each commit brings 100 or more: past the bound of 50 the oldest go until an
                # eighth of it (6) is free, so 44 are left.
                async def oldest_dropped() -> bool:
                    stats.update(await worker_stats(broker.url))
                    return stats.get("notify.hook.dropped") == 1956

                await until_answered(oldest_dropped, "the oldest 1,956 dropped")
            receiver.release()
    assert stats["notify.hook.queued"] == 44
    assert stats["notify.hook.sent"] == 0


async def worker_stats(url: str) -> dict[str, Any]:
    async with wire_client(url, watcher_hello()) as client:
        report = await client.request(schema.StatsRequest(id=client.next_id()))
        assert isinstance(report, schema.StatsReport)
        return dict(report.counters)


async def delivered(url: str) -> dict[str, Any]:
    """The broker's counters once its sink's queue is empty: everything it sent is counted
    (a receiver has a request before the sender has its answer)."""
    stats: dict[str, Any] = {}

    async def queue_empty() -> bool:
        stats.update(await worker_stats(url))
        return bool(stats["notify.hook.queued"] == 0)

    await until_answered(queue_empty, "the queue emptied")
    return stats


async def expired_runs(watcher: WireClient, workspace: str) -> set[str]:
    query = schema.HistoryQuery(id=watcher.next_id(), workspace=workspace, kinds=["presence"])
    page = await watcher.request(query)
    assert isinstance(page, schema.HistoryPage)
    return {
        e.payload.run_id
        for e in page.events
        if isinstance(e.payload, schema.Presence) and e.payload.state == "expired"
    }


async def test_a_run_silent_while_its_workspace_is_caught_is_not_stalled(
    broker_store: BrokerStore,
) -> None:
    async with NotifyReceiver() as receiver:
        notify = stall_watching(receiver)
        async with broker_store.running_broker(notify=notify) as broker:
            async with (
                wire_client(broker.url, watcher_hello()) as operator,
                wire_client(broker.url, worker_hello("held", "a")) as held,
            ):
                catch = schema.Catch(id=operator.next_id(), workspace="held", reason="look")
                assert isinstance(await operator.request(catch), schema.Ok)
                await publish(held, 1, [schema.Scalar(name="loss", value=1.0)])
                # A run connected later, in a workspace not caught: its stall comes after the
                # moment the caught one's would have.
                async with wire_client(broker.url, worker_hello("free", "b")) as free:
                    await publish(free, 1, [schema.Scalar(name="loss", value=1.0)])
                    first = verified((await receiver.wait_for(1))[0])
                    release = schema.Release(id=operator.next_id(), workspace="held")
                    assert isinstance(await operator.request(release), schema.Ok)
                    second = verified((await receiver.wait_for(2))[1])
    assert (first["workspace"], first["trigger"]) == ("free", "stalled")
    assert (second["workspace"], second["trigger"], second["run_id"]) == ("held", "stalled", "a")


async def test_the_runs_of_a_deleted_workspace_are_not_reported_stalled(
    broker_store: BrokerStore,
) -> None:
    async with NotifyReceiver() as receiver:
        notify = stall_watching(receiver)
        async with broker_store.running_broker(notify=notify) as broker:
            async with (
                wire_client(broker.url, watcher_hello()) as admin,
                wire_client(broker.url, worker_hello("doomed", "a")) as doomed,
            ):
                await publish(doomed, 1, [schema.Scalar(name="loss", value=1.0)])
                delete = schema.DeleteWorkspace(id=admin.next_id(), workspace="doomed", force=True)
                assert isinstance(await admin.request(delete), schema.Ok)
                async with wire_client(broker.url, worker_hello("other", "b")) as other:
                    await publish(other, 1, [schema.Scalar(name="loss", value=1.0)])
                    (request,) = await receiver.wait_for(1)
            stats = await worker_stats(broker.url)
    assert verified(request)["workspace"] == "other"
    assert len(receiver.requests) == 1
    assert stats["notify.runs_watched_for_stalls"] == 0


async def test_made_again_at_boot_an_expiry_knows_a_final_status_from_before_the_mark(
    tmp_path: Path,
) -> None:
    # A real store: the run published its final status, then the broker marked the workspace
    # for an error and died; its expiry came after. Made again from the mark, the error is
    # told and the expiry is not (the run did finish), as it would have been without the crash.
    store = SQLiteStore(tmp_path)
    events = [
        envelope(1, schema.Status(key="state", value="done"), run_id="r1", workspace=NAME),
        envelope(2, error("disk full"), run_id="r1", workspace=NAME),
        envelope(3, schema.Presence(run_id="r1", state="expired"), workspace=NAME),
        envelope(4, schema.Presence(run_id="r2", state="expired"), workspace=NAME),
    ]
    store.commit(batch(NAME, 1, events))
    config = NotifyConfig(sinks=(webhook("http://127.0.0.1:9/hook", "event", "expired"),))
    threads = StoreThreads()
    writer = GroupCommitWriter(store, lambda _: None, max_events=1000, threads=threads)
    notifier = Notifier(config, store, writer, threads, lease_s=30.0, excused=lambda *_: False)
    try:
        made = notifier.made_again({(NAME, 1): 2})
    finally:
        store.close()
    assert [(n.trigger, n.offset, n.run_id) for n in made] == [
        ("event", 2, "r1"),
        ("expired", 4, "r2"),
    ]
