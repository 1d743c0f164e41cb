"""Notifications through faults, with real ``pierhead serve`` processes: a broker SIGKILLed
between an event's commit and its POST, a receiver down for a while, several nodes on Redis."""

from __future__ import annotations

import collections
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import schema
from broker._notify import QUEUE_DELAY_MOST_S
from broker._sqlite_store import DATABASE_NAME
from broker.testing import BrokerProcess, broker_process
from tests.broker.cluster_support import QUICK_FAILOVER, nodes_on_redis
from tests.broker.wire import WireClient, watcher_hello, wire_client, worker_hello
from tests.notify_receiver import NotifyReceiver, Received
from tests.support import BrokerStore, until_answered

pytestmark = pytest.mark.asyncio


def notify_file(
    directory: Path,
    url: str,
    *,
    coalesce: float = 0.0,
    triggers: str = '["event"]',
    queue_delay: float = 0.25,
) -> str:
    path = directory / "notify.toml"
    path.write_text(
        f"""
queue_delay = {queue_delay}

[[sink]]
name = "hook"
kind = "webhook"
url = "{url}"
triggers = {triggers}
coalesce = {coalesce}
timeout = 2
retry_max = 0.5
"""
    )
    return str(path)


async def publish_errors(worker: WireClient, seq: int, messages: list[str]) -> None:
    """One ``publish`` of error events, each its own, waited for until acknowledged."""
    payloads: list[schema.WorkerPayload] = [
        schema.WorkspaceEvent(message=message, severity="error") for message in messages
    ]
    await worker.publish(seq, payloads)
    last = seq + len(payloads) - 1
    while (await worker.expect(schema.Ack)).seq < last:
        pass


async def counters(url: str) -> dict[str, Any]:
    async with wire_client(url, watcher_hello()) as client:
        report = await client.request(schema.StatsRequest(id=client.next_id()))
        assert isinstance(report, schema.StatsReport)
        return dict(report.counters)


async def every_queue_empty(nodes: list[BrokerProcess]) -> bool:
    return all([await queue_empty(node.url) for node in nodes])


def summaries(requests: list[Received]) -> list[str]:
    return [request.json()["summary"] for request in requests]


async def queue_empty(url: str) -> bool:
    stats = await counters(url)
    return stats.get("notify.hook.queued") == 0


async def test_a_broker_killed_before_posting_posts_after_its_restart_once(
    broker_store: BrokerStore, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    receiver = NotifyReceiver()
    await receiver.start()
    await receiver.stop()  # its port is known; nothing listens there until the restart
    options = ("--notify", notify_file(tmp_path, receiver.url))
    async with broker_store.broker_process(data, *options) as broker:
        async with wire_client(broker.url, worker_hello("deploy", "r1")) as worker:
            # Acknowledged means committed, and the notification was committed with it.
            await publish_errors(worker, 1, ["disk full"])
        broker.kill()
        await broker.wait()
    async with receiver:
        async with broker_store.broker_process(data, *options) as broker:
            (request,) = await receiver.wait_for(1)
            await until_answered(lambda: queue_empty(broker.url), "the queue emptied")
            stats = await counters(broker.url)
        assert len(receiver.requests) == 1
    body = request.json()
    assert body["summary"] == "disk full"
    assert request.headers["idempotency-key"] == body["id"]
    assert body["id"].endswith(":2:event")  # offset 1: the worker's presence
    assert stats["notify.hook.sent"] == 1


def stored(data: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows of a stopped broker's SQLite database."""
    with sqlite3.connect(data / DATABASE_NAME) as conn:
        found = conn.execute(sql).fetchall()
    conn.close()
    return found


async def test_notifications_a_killed_broker_left_waiting_are_made_again_at_its_restart(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    receiver = NotifyReceiver()
    await receiver.start()
    await receiver.stop()
    # The longest: nothing made is queued before the kill, only the mark is committed.
    options = ("--notify", notify_file(tmp_path, receiver.url, queue_delay=QUEUE_DELAY_MOST_S))
    async with broker_process(data, *options) as broker:
        async with wire_client(broker.url, worker_hello("deploy", "r1")) as worker:
            await publish_errors(worker, 1, ["disk full"])
            await publish_errors(worker, 2, ["disk still full"])
        broker.kill()
        await broker.wait()
    assert stored(data, "SELECT workspace, from_offset FROM notify_marks") == [("deploy", 2)]
    assert stored(data, "SELECT count(*) FROM notifications") == [(0,)]
    async with receiver:
        async with broker_process(data, *options) as broker:
            requests = await receiver.wait_for(2)
            await until_answered(lambda: queue_empty(broker.url), "the queue emptied")
        assert len(receiver.requests) == 2
    assert summaries(requests) == ["disk full", "disk still full"]
    assert [request.json()["id"].rsplit(":", 2)[1] for request in requests] == ["2", "3"]
    assert stored(data, "SELECT * FROM notify_marks") == []


async def test_a_broker_restarted_without_notify_drops_the_marks_it_finds(tmp_path: Path) -> None:
    data = tmp_path / "data"
    delay = QUEUE_DELAY_MOST_S
    options = ("--notify", notify_file(tmp_path, "http://127.0.0.1:9/hook", queue_delay=delay))
    async with broker_process(data, *options) as broker:
        async with wire_client(broker.url, worker_hello("deploy", "r1")) as worker:
            await publish_errors(worker, 1, ["disk full"])
        broker.kill()
        await broker.wait()
    assert stored(data, "SELECT workspace FROM notify_marks") == [("deploy",)]
    async with broker_process(data) as broker:
        broker.terminate()  # drains: what the start submitted is committed
        await broker.wait()
    (dropped,) = broker.events("notifications_not_made_again")
    assert dropped["workspaces"] == 1
    # Nothing holds retention back any more.
    assert stored(data, "SELECT * FROM notify_marks") == []


async def test_a_receiver_down_for_a_while_gets_every_notification_once_in_order(
    broker_store: BrokerStore, tmp_path: Path
) -> None:
    receiver = NotifyReceiver()
    await receiver.start()
    await receiver.stop()
    options = ("--notify", notify_file(tmp_path, receiver.url))
    async with broker_store.broker_process(tmp_path / "data", *options) as broker:
        async with (
            wire_client(broker.url, worker_hello("a", "r1")) as a,
            wire_client(broker.url, worker_hello("b", "r1")) as b,
        ):
            for step in range(5):
                await publish_errors(a, step + 1, [f"a{step}"])
                await publish_errors(b, step + 1, [f"b{step}"])
        stats = await counters(broker.url)
        assert stats["notify.hook.queued"] == 10

        async def tried() -> bool:
            return int((await counters(broker.url))["notify.hook.failed_attempts"]) >= 1

        await until_answered(tried, "the sender tried the receiver while it was down")
        async with receiver:
            requests = await receiver.wait_for(10)
            await until_answered(lambda: queue_empty(broker.url), "the queue emptied")
            assert len(receiver.requests) == 10
    said = summaries(requests)
    assert [s for s in said if s.startswith("a")] == [f"a{n}" for n in range(5)]
    assert [s for s in said if s.startswith("b")] == [f"b{n}" for n in range(5)]
    keys = [request.headers["idempotency-key"] for request in requests]
    assert len(set(keys)) == 10


async def test_with_several_nodes_on_redis_exactly_one_node_sends_each_notification(
    tmp_path: Path,
) -> None:
    async with NotifyReceiver() as receiver:
        options = ("--notify", notify_file(tmp_path, receiver.url))
        async with nodes_on_redis(tmp_path, 2, *options) as (_, nodes):
            # A workspace written by each node: both commit notifications to the same sink.
            async with (
                wire_client(nodes[0].url, worker_hello("on-a", "r1")) as a,
                wire_client(nodes[1].url, worker_hello("on-b", "r1")) as b,
            ):
                for step in range(20):
                    await publish_errors(a, step + 1, [f"on-a {step}"])
                    await publish_errors(b, step + 1, [f"on-b {step}"])
            requests = await receiver.wait_for(40)
            await until_answered(lambda: every_queue_empty(nodes), "the queues emptied")
            stats = [await counters(node.url) for node in nodes]
        assert len(receiver.requests) == 40
    keys = collections.Counter(request.headers["idempotency-key"] for request in requests)
    assert len(keys) == 40
    assert set(keys.values()) == {1}
    said = summaries(requests)
    for workspace in ("on-a", "on-b"):
        assert [s for s in said if s.startswith(workspace)] == [
            f"{workspace} {n}" for n in range(20)
        ]
    # One node held the sink's lease and sent everything; the other sent nothing.
    assert sorted(s["notify.hook.sent"] for s in stats) == [0, 40]
    assert sorted(s["notify.hook.sending"] for s in stats) == [0, 1]


async def test_a_node_taking_over_a_workspace_knows_which_of_its_runs_had_finished(
    tmp_path: Path,
) -> None:
    async with NotifyReceiver() as receiver:
        notify = notify_file(tmp_path, receiver.url, triggers='["expired"]')
        options = ("--notify", notify, *QUICK_FAILOVER)
        async with nodes_on_redis(tmp_path, 2, *options) as (_redis, nodes):
            a, b = nodes
            async with (
                wire_client(a.url, worker_hello("job", "done")) as done,
                wire_client(a.url, worker_hello("job", "lost")),
            ):
                await done.publish(1, [schema.Status(key="state", value="succeeded")])
                while (await done.expect(schema.Ack)).seq < 1:
                    pass
                a.kill()
                await a.wait()
            # Node B takes the workspace over by itself once the dead node's claim has lapsed
            # (a run is still shown connected there), and expires the runs after the grace.
            (request,) = await receiver.wait_for(1)
            (adopted,) = b.events("workspace_claimed")
            assert adopted["workspace"] == "job"
            await until_answered(lambda: queue_empty(b.url), "the queue emptied")
        assert len(receiver.requests) == 1
    body = request.json()
    assert (body["trigger"], body["run_id"], body["count"]) == ("expired", "lost", 1)
