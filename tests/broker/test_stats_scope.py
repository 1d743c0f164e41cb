"""``stats`` under a scoped admin token, the retention interval option, and the broker's
fire-and-forget tasks."""

from __future__ import annotations

import asyncio
import datetime
from pathlib import Path

import pytest

import schema
from broker._config import BrokerConfig
from broker._tokens import SqliteTokenStore
from broker._worker_session import WorkerSession
from broker.testing import broker_process, running_broker
from tests.broker.wire import scalars, watcher_hello, wire_client, worker_hello

LOG_WAIT_S = 20.0


@pytest.mark.asyncio
async def test_a_scoped_admin_sees_only_the_counters_of_its_workspaces(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = SqliteTokenStore(data)
    scoped = store.create("deploy-admin", ["watcher", "admin"], "deploy-*")[1]
    everything = store.create("root", ["worker", "watcher", "admin"], "*")[1]
    store.close()
    async with running_broker(data, auth="token") as broker:
        async with (
            wire_client(broker.url, worker_hello("deploy-1", "a", token=everything)),
            wire_client(broker.url, worker_hello("prod-1", "b", token=everything)) as prod,
            wire_client(broker.url, worker_hello("prod-2", "c", token=everything)),
        ):
            await prod.publish(1, scalars(0, 5))
            assert (await prod.expect(schema.Ack)).seq == 5
            async with wire_client(broker.url, watcher_hello(token=scoped)) as admin:
                report = await admin.request(schema.StatsRequest(id=1))
            async with wire_client(broker.url, watcher_hello(token=everything)) as root:
                full = await root.request(schema.StatsRequest(id=1))
    assert isinstance(report, schema.StatsReport)
    assert report.counters == {"workspaces": 1, "workers": 1}
    assert isinstance(full, schema.StatsReport)
    assert full.counters["workspaces"] == 3
    assert full.counters["workers"] == 3
    assert full.counters["events_committed"] >= 5


@pytest.mark.asyncio
async def test_the_retention_interval_is_an_option_of_serve(tmp_path: Path) -> None:
    async with broker_process(
        tmp_path / "data", "--retention-interval", "0.2", "--retention-events", "3"
    ) as process:
        async with wire_client(process.url, worker_hello("w", "r")) as worker:
            await worker.publish(1, scalars(0, 10))
            assert (await worker.expect(schema.Ack)).seq == 10
            async with asyncio.timeout(LOG_WAIT_S):
                while not process.events("retention_applied"):
                    await asyncio.sleep(0.05)
        async with wire_client(process.url, watcher_hello()) as watcher:
            page = await watcher.request(schema.HistoryQuery(id=1, workspace="w", after=0))
    assert isinstance(page, schema.HistoryPage)
    # The oldest events are gone (a presence event may have come since the pass).
    assert page.events[0].offset > 1


@pytest.mark.asyncio
async def test_a_sessions_close_task_is_kept_by_the_broker() -> None:
    async with running_broker() as server:
        assert server.broker is not None
        broker = server.broker
        async with wire_client(server.url, worker_hello("w", "r")) as worker:
            session = broker.workers["w"]["r"]
            assert isinstance(session, WorkerSession)
            before = set(broker._tasks)
            session.abort(schema.CloseCode.FORBIDDEN, "test close")
            kept = set(broker._tasks) - before
            closing = [task for task in kept if not task.done()]
            async for _ in worker.frames_until_closed():
                pass
            code = worker.connection.close_code
    assert len(closing) == 1
    assert code == schema.CloseCode.FORBIDDEN


def test_serve_refuses_a_retention_interval_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="retention interval"):
        BrokerConfig(retention_interval_s=0)
    with pytest.raises(ValueError, match="forgotten"):
        BrokerConfig(forget_runs_after=datetime.timedelta(0))
