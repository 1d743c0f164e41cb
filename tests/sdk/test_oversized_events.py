"""An event larger than the broker's frames never wedges a worker."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

import sdk
from broker.testing import broker_process

pytestmark = pytest.mark.asyncio

FRAME_BYTES = 4096


async def test_an_oversized_event_queued_before_connecting_is_dropped_and_the_rest_goes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pierhead.sdk")
    async with (
        broker_process(tmp_path / "data", "--max-frame-bytes", str(FRAME_BYTES)) as broker,
        asyncio.timeout(60),
    ):
        worker = sdk.Worker(broker.url, "big", run_id="run-1", reconnect_max_s=0.5)
        # Queued before the worker knows the broker's limit: it cannot refuse them yet.
        await worker.event("before")
        await worker.event("x" * (2 * FRAME_BYTES))
        await worker.event("after")
        sessions = 0
        async with worker:

            async def count_sessions() -> None:
                nonlocal sessions
                async for state in worker.state_changes():
                    sessions += state is sdk.ConnectionState.CONNECTED

            counting = asyncio.create_task(count_sessions())
            await worker.flush(timeout=30)
            assert worker.counters["dropped"] == 1
            assert worker.counters["acked"] == 2

            # Now that the limit is known, such an event is refused at the call.
            with pytest.raises(sdk.EventTooLargeError, match="does not fit the broker's frames"):
                await worker.event("y" * (2 * FRAME_BYTES))
            await worker.post_event("last", timeout=30)
            assert sessions == 1, "the worker reconnected although nothing closed it"
            counting.cancel()
        async with sdk.Watcher(broker.url) as watcher:
            stored = [e async for e in watcher.history("big", after=0, kinds=["event"])]
        assert [e.payload.message for e in stored] == ["before", "after", "last"]  # type: ignore[union-attr]
        assert [e.seq for e in stored] == [1, 2, 3]  # numbered when sent: the dropped one never was
        assert any("larger than the broker's frames" in r.getMessage() for r in caplog.records)
