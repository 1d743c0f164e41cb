"""Watchers: snapshots, late-joining and deleted workspaces, resume with gaps, history pages."""

from __future__ import annotations

import datetime

import pytest

import schema
from tests.broker.wire import WireClient, scalars, watcher_hello, wire_client, worker_hello
from tests.support import BrokerStore

pytestmark = pytest.mark.asyncio


async def publish(worker: WireClient, seq: int, count: int) -> None:
    await worker.publish(seq, scalars(seq, count))
    while (await worker.expect(schema.Ack)).seq < seq + count - 1:
        pass


async def events_until(watcher: WireClient, last_seq: int) -> list[schema.EventMsg]:
    events: list[schema.EventMsg] = []
    while not events or events[-1].seq != last_seq:
        events.extend((await watcher.expect(schema.Events)).events)
    return events


async def test_a_workspace_created_later_joins_with_its_initial_state(
    broker_store: BrokerStore,
) -> None:
    async with broker_store.running_broker() as broker:
        async with wire_client(broker.url, watcher_hello()) as watcher:
            reply = await watcher.request(schema.Subscribe(id=watcher.next_id(), pattern="job-*"))
            assert isinstance(reply, schema.Subscribed)
            assert reply.snapshot == []
            async with wire_client(broker.url, worker_hello("job-7", "r")) as worker:
                joined = await watcher.expect(schema.Joined)
                assert joined.sub == reply.sub
                assert joined.snapshot.name == "job-7"
                assert joined.snapshot.last_offset == 0
                assert worker.welcome is not None
                assert joined.snapshot.epoch == worker.welcome.epoch
                await publish(worker, 1, 3)
                events = await events_until(watcher, 3)
            state = schema.fold_events(joined.snapshot, events)
            assert [event.offset for event in events] == list(range(1, len(events) + 1))
            assert state.workers[0].run_id == "r"
            async with wire_client(broker.url, worker_hello("elsewhere", "r")):
                pass
            listing = await watcher.request(schema.ListWorkspaces(id=watcher.next_id()))
            assert isinstance(listing, schema.Workspaces)
            assert [item.name for item in listing.items] == ["elsewhere", "job-7"]


async def test_delete_removes_a_workspace_from_subscriptions_and_needs_force_while_in_use(
    broker_store: BrokerStore,
) -> None:
    async with broker_store.running_broker() as broker:
        async with wire_client(broker.url, watcher_hello()) as admin:
            async with wire_client(broker.url, worker_hello("doomed", "r")) as worker:
                sub = await admin.request(schema.Subscribe(id=admin.next_id(), pattern="*"))
                assert isinstance(sub, schema.Subscribed)
                refused = await admin.request(
                    schema.DeleteWorkspace(id=admin.next_id(), workspace="doomed")
                )
                assert isinstance(refused, schema.ErrorReply)
                assert refused.code is schema.ErrorCode.CONFLICT
                delete = schema.DeleteWorkspace(id=admin.next_id(), workspace="doomed", force=True)
                await admin.send(delete)
                replies = await admin.expect_all(schema.Ok, schema.Removed)
                assert replies[schema.Ok] == schema.Ok(id=delete.id)
                removed = replies[schema.Removed]
                assert (removed.sub, removed.workspace) == (sub.sub, "doomed")
                assert worker.welcome is not None
                assert removed.epoch == worker.welcome.epoch
            missing = await admin.request(
                schema.HistoryQuery(id=admin.next_id(), workspace="doomed")
            )
            assert isinstance(missing, schema.ErrorReply)
            assert missing.code is schema.ErrorCode.NOT_FOUND
            # The name can be used again, as a new epoch with offsets from 1.
            async with wire_client(broker.url, worker_hello("doomed", "r")) as again:
                assert again.welcome is not None
                assert again.welcome.epoch is not None
                assert again.welcome.epoch > removed.epoch
                assert again.welcome.acked_seq == 0


async def test_resume_from_a_cursor_gets_exactly_the_rest_or_a_gap(
    broker_store: BrokerStore,
) -> None:
    async with broker_store.running_broker(retention_events=20) as broker:
        assert broker.broker is not None
        async with wire_client(broker.url, worker_hello("ws", "r")) as worker:
            await publish(worker, 1, 10)
            epoch = worker.welcome.epoch if worker.welcome else None
            assert epoch is not None
            async with wire_client(broker.url, watcher_hello()) as watcher:
                resume = {"ws": schema.Cursor(epoch=epoch, offset=5)}
                reply = await watcher.request(
                    schema.Subscribe(id=watcher.next_id(), pattern="ws", from_=resume)
                )
                assert isinstance(reply, schema.Subscribed)
                assert reply.recovered
                events = await events_until(watcher, 10)
                assert [event.offset for event in events] == list(range(6, events[-1].offset + 1))
            await publish(worker, 11, 40)
            await broker.broker.apply_retention()
            async with wire_client(broker.url, watcher_hello()) as late:
                reply = await late.request(
                    schema.Subscribe(id=late.next_id(), pattern="ws", from_=resume)
                )
                assert isinstance(reply, schema.Subscribed)
                assert not reply.recovered
                gap = await late.expect(schema.Gap)
                last = reply.snapshot[0].last_offset
                assert (gap.from_offset, gap.to_offset) == (6, last - 20)
                rest = await events_until(late, 50)
                assert [event.offset for event in rest] == list(range(last - 19, last + 1))
            async with wire_client(broker.url, watcher_hello()) as stale:
                old = {"ws": schema.Cursor(epoch=epoch - 1, offset=3)}
                reply = await stale.request(
                    schema.Subscribe(id=stale.next_id(), pattern="ws", from_=old)
                )
                assert isinstance(reply, schema.Subscribed)
                assert not reply.recovered


async def test_history_pages_in_both_directions(broker_store: BrokerStore) -> None:
    async with broker_store.running_broker() as broker:
        async with (
            wire_client(broker.url, worker_hello("ws", "r")) as worker,
            wire_client(broker.url, watcher_hello()) as watcher,
        ):
            await publish(worker, 1, 25)
            newest = await watcher.request(
                schema.HistoryQuery(
                    id=watcher.next_id(), workspace="ws", limit=10, kinds=["scalar"]
                )
            )
            assert isinstance(newest, schema.HistoryPage)
            assert newest.more
            assert [event.seq for event in newest.events] == list(range(25, 15, -1))
            older = await watcher.request(
                schema.HistoryQuery(
                    id=watcher.next_id(),
                    workspace="ws",
                    before=newest.events[-1].offset,
                    limit=100,
                    kinds=["scalar"],
                )
            )
            assert isinstance(older, schema.HistoryPage)
            assert not older.more
            assert [event.seq for event in older.events] == list(range(15, 0, -1))
            forward = await watcher.request(
                schema.HistoryQuery(id=watcher.next_id(), workspace="ws", after=0, limit=1)
            )
            assert isinstance(forward, schema.HistoryPage)
            assert forward.events[0].offset == 1
            assert isinstance(forward.events[0].payload, schema.Presence)


async def test_resuming_behind_a_stream_retention_emptied_gets_a_gap_and_carries_on(
    broker_store: BrokerStore,
) -> None:
    async with (
        broker_store.running_broker(retention_age=datetime.timedelta(0)) as broker,
        wire_client(broker.url, worker_hello("ws", "r")) as worker,
    ):
        assert broker.broker is not None
        assert worker.welcome is not None
        await worker.publish(1, scalars(1, 10))
        while (await worker.expect(schema.Ack)).seq < 10:
            pass
        await broker.broker.apply_retention()
        workspace = broker.broker.workspaces["ws"]
        assert workspace.first_offset == workspace.state.last_offset + 1
        async with wire_client(broker.url, watcher_hello()) as watcher:
            assert worker.welcome.epoch is not None
            resume = {"ws": schema.Cursor(epoch=worker.welcome.epoch, offset=5)}
            reply = await watcher.request(
                schema.Subscribe(id=watcher.next_id(), pattern="ws", from_=resume)
            )
            assert isinstance(reply, schema.Subscribed)
            gap = await watcher.expect(schema.Gap)
            assert (gap.from_offset, gap.to_offset) == (6, workspace.state.last_offset)
            # The session is still serving: a request is answered, and new events arrive.
            stats = await watcher.request(schema.StatsRequest(id=watcher.next_id()))
            assert isinstance(stats, schema.StatsReport)
            await worker.publish(11, scalars(11, 1))
            events = await watcher.expect(schema.Events)
            assert [event.seq for event in events.events] == [11]
