"""A spooled worker killed with SIGKILL and started again delivers what it had queued."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

import schema
import sdk
from broker.testing import running_broker
from tests.support import free_port

pytestmark = pytest.mark.asyncio

# Queues events, says so on stdout, and then waits to be killed (or finishes when told to).
WORKER = """
import asyncio, sys
import sdk

async def main(url, spool, start, count, flush):
    async with sdk.Worker(url, "spooled", run_id="run-1", spool=spool,
                          reconnect_max_s=0.2, close_timeout_s=30) as worker:
        for i in range(start, start + count):
            await worker.scalar("x", i)
        print("queued", flush=True)
        if flush == "flush":
            await worker.flush(timeout=30)
            print("flushed", flush=True)
        else:
            await asyncio.Event().wait()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]))
"""


async def run_worker(url: str, spool: Path, start: int, count: int, *, flush: bool) -> None:
    """Run the worker script; without ``flush`` it is SIGKILLed as soon as it has queued."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WORKER, url, str(spool), str(start), str(count),
        "flush" if flush else "hang",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        assert await asyncio.wait_for(process.stdout.readline(), 30) == b"queued\n"
        if flush:
            assert await asyncio.wait_for(process.stdout.readline(), 60) == b"flushed\n"
            assert await asyncio.wait_for(process.wait(), 30) == 0
        else:
            os.kill(process.pid, signal.SIGKILL)
            assert await process.wait() == -signal.SIGKILL
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def stored_values(url: str) -> list[tuple[int | None, float]]:
    async with sdk.Watcher(url) as watcher:
        events = [e async for e in watcher.history("spooled", after=0, kinds=["scalar"])]
    return [(e.seq, e.payload.value) for e in events if isinstance(e.payload, schema.Scalar)]


async def test_events_queued_while_offline_survive_sigkill(tmp_path: Path) -> None:
    port = free_port()
    url = f"ws://127.0.0.1:{port}"
    spool = tmp_path / "spool.db"
    await run_worker(url, spool, 0, 300, flush=False)  # no broker: nothing can be acked
    async with running_broker(port=port):
        await run_worker(url, spool, 300, 10, flush=True)
        stored = await stored_values(url)
    assert stored == [(i + 1, float(i)) for i in range(310)]


async def test_events_in_flight_at_sigkill_are_neither_lost_nor_doubled(tmp_path: Path) -> None:
    spool = tmp_path / "spool.db"
    async with running_broker() as broker:
        # Killed right after queueing: some events are acked, some in flight, some unsent.
        await run_worker(broker.url, spool, 0, 2000, flush=False)
        await run_worker(broker.url, spool, 2000, 100, flush=True)
        stored = await stored_values(broker.url)
    assert [value for _, value in stored] == [float(i) for i in range(2100)]
    assert [seq for seq, _ in stored] == list(range(1, 2101))


async def test_a_spool_belongs_to_one_run(tmp_path: Path) -> None:
    spool = tmp_path / "spool.db"
    async with running_broker() as broker:
        async with sdk.Worker(broker.url, "w", run_id="a", spool=spool):
            pass
        with pytest.raises(ValueError, match="holds events of w/a"):
            sdk.Worker(broker.url, "w", run_id="b", spool=spool)
        with pytest.raises(ValueError, match="run_id"):
            sdk.Worker(broker.url, "w", spool=spool)
