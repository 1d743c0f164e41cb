"""Run a real broker inside your tests: ``async with running_broker() as broker: broker.url``.

The broker listens on a free loopback port and keeps its store in a temporary directory
(or in ``data_dir``, to restart a broker on the same data). pytest users get the
``pierhead_broker`` fixture from the ``broker.pytest_plugin`` plugin.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from ._config import BrokerConfig
from ._server import BrokerServer


@asynccontextmanager
async def running_broker(
    data_dir: Path | None = None, **settings: Any
) -> AsyncIterator[BrokerServer]:
    """A broker on 127.0.0.1 and a free port; ``settings`` override BrokerConfig fields."""
    settings.setdefault("port", 0)
    if data_dir is not None:
        async with BrokerServer(BrokerConfig(data_dir=data_dir, **settings)) as server:
            yield server
        return
    with tempfile.TemporaryDirectory(prefix="pierhead-") as temporary:
        async with BrokerServer(BrokerConfig(data_dir=Path(temporary), **settings)) as server:
            yield server
