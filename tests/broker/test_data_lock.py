"""One broker per data directory: a second one refuses to start; token commands still work."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from broker._sqlite_store import DataDirectoryInUseError, SQLiteStore
from broker.testing import BrokerExitedError, BrokerProcess, broker_process
from tests.support import pierhead


def test_a_store_holds_its_directory_until_closed(tmp_path: Path) -> None:
    first = SQLiteStore(tmp_path)
    try:
        with pytest.raises(
            DataDirectoryInUseError, match=f"in use by another broker \\(pid {os.getpid()}\\)"
        ):
            SQLiteStore(tmp_path)
    finally:
        first.close()
    SQLiteStore(tmp_path).close()


async def refused_start(data: Path) -> BrokerProcess:
    """A broker on ``data`` that must exit before listening."""
    second = BrokerProcess(data)
    try:
        with pytest.raises(BrokerExitedError):
            await second.start()
        await second.wait()
    finally:
        await second.close()
    return second


@pytest.mark.asyncio
async def test_a_second_broker_on_the_same_data_refuses_to_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with broker_process(data) as first:
        second = await refused_start(data)
        assert second.returncode == 1, second.describe()
        assert second.logs[-1] == {
            "raw": f"pierhead serve: data directory {data} is in use by another broker"
            f" (pid {first.process.pid})"
        }, second.describe()
        assert not second.events("listening")

        # Token commands share the directory with a live broker.
        code, stdout, stderr = await pierhead(
            "token", "create", "--name", "ci", "--role", "worker", "--data", str(data), cwd=tmp_path
        )
        assert code == 0, stderr
        code, stdout, stderr = await pierhead("token", "list", "--data", str(data), cwd=tmp_path)
        assert code == 0, stderr
        assert stdout.splitlines()[1].startswith("ci ")

        first.terminate()
        assert await first.wait() == 0
    # The lock goes with the broker that held it: drained, or killed.
    async with broker_process(data) as third:
        third.kill()
        await third.wait()
    async with broker_process(data) as fourth:
        assert fourth.events("listening")
