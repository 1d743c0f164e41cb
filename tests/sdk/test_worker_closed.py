"""A worker the broker stopped for good refuses new events instead of losing them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import schema
import sdk
from broker.testing import broker_process

pytestmark = pytest.mark.asyncio


async def until_closed(worker: sdk.Worker) -> None:
    async for state in worker.state_changes():
        if state is sdk.ConnectionState.CLOSED:
            return


async def test_a_replaced_worker_refuses_events_with_the_cause(tmp_path: Path) -> None:
    async with broker_process(tmp_path / "data") as broker, asyncio.timeout(60):
        async with sdk.Worker(broker.url, "deploy", run_id="run-1") as first:
            await first.connected()
            await first.post_event("before the takeover", timeout=30)
            # A second connection with the same run takes the run over: 4009 for the first.
            async with sdk.Worker(broker.url, "deploy", run_id="run-1") as second:
                await second.connected()
                await until_closed(first)
                assert first.state is sdk.ConnectionState.CLOSED

                with pytest.raises(sdk.ClosedError, match="stopped for good") as raised:
                    await first.event("after the takeover")
                assert isinstance(raised.value.__cause__, sdk.ReplacedError)
                with pytest.raises(sdk.ClosedError) as raised:
                    first.publish_nowait(schema.WorkspaceEvent(message="after, without waiting"))
                assert isinstance(raised.value.__cause__, sdk.ReplacedError)
                assert first.counters["queued"] == 0

                await second.post_event("from the new connection", timeout=30)
        async with sdk.Watcher(broker.url) as watcher:
            stored = [e async for e in watcher.history("deploy", after=0, kinds=["event"])]
        assert [e.payload.message for e in stored] == [  # type: ignore[union-attr]
            "before the takeover",
            "from the new connection",
        ]
