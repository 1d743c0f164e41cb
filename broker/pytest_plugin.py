"""pytest plugin: the ``pierhead_broker`` fixture, a real broker per test (needs pytest-asyncio)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from ._server import BrokerServer
from .testing import running_broker


@pytest_asyncio.fixture
async def pierhead_broker(tmp_path: Path) -> AsyncIterator[BrokerServer]:
    """A running broker on a free loopback port, its store in the test's temporary directory."""
    async with running_broker(tmp_path / "pierhead-data") as server:
        yield server
