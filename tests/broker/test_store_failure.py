"""A broker whose store fails exits non-zero, saying why, so that its supervisor restarts it.

The store is made to fail for real: the broker process's file size limit (RLIMIT_FSIZE, set
from outside with prlimit) is lowered to just above what its files hold, so SQLite's next writes
past it fail with EFBIG (Python ignores SIGXFSZ), as on a full disk. Permissions would not do:
the tests may run as root.
"""

from __future__ import annotations

import resource
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

import schema
from broker.testing import broker_process
from tests.broker.wire import scalars, wire_client, worker_hello

pytestmark = pytest.mark.asyncio

HEADROOM = 256 * 1024
"""Bytes the store's files may still grow by once limited: less than what is published after."""


async def test_a_store_failure_exits_non_zero_with_the_cause_last(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with broker_process(data) as broker:
        async with wire_client(broker.url, worker_hello("w", "run")) as worker:
            await worker.publish(1, scalars(1, 10))
            ack = await worker.expect(schema.Ack)
            assert ack.seq == 10
            largest = max(path.stat().st_size for path in data.iterdir())
            limit = largest + HEADROOM
            resource.prlimit(broker.process.pid, resource.RLIMIT_FSIZE, (limit, limit))
            # Batch after batch, each acknowledged before the next, as the SDK does, until the
            # broker stops taking them: far fewer than the 20 MiB this would be.
            acked = True
            first = 11
            while acked and first < 200_000:
                await worker.publish(first, scalars(first, 1000))
                first += 1000
                try:
                    acked = isinstance(await worker.receive(), schema.Ack)
                except ConnectionClosed:
                    break
            # Read on, as a client does, so that the broker's closing handshake completes.
            async for _ in worker.frames_until_closed():
                pass
        code = await broker.wait()
        assert code == 1, broker.describe()
        last = broker.logs[-1]
        assert last["event"] == "broker_failed", broker.describe()
        assert "the store failed" in last["cause"], broker.describe()
        assert "OperationalError" in last["cause"], broker.describe()
        assert broker.events("store_commit_failed"), broker.describe()
        # The sessions it cut end with a line each, not a traceback each.
        assert not broker.events("session_failed"), broker.describe()
    # Restarted (without the limit), it serves on the same data.
    async with broker_process(data) as again, wire_client(again.url, worker_hello("w", "run")):
        pass
