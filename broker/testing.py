"""Test against a real broker: in process, as a child process, and behind a faulty network.

- ``running_broker()``: ``async with running_broker() as broker: broker.url``. A broker in
  your test's event loop on a free loopback port, its store in a temporary directory (or in
  ``data_dir``, to restart a broker on the same data). pytest users get the
  ``pierhead_broker`` fixture from the ``broker.pytest_plugin`` plugin.
- ``broker_process()`` / ``BrokerProcess``: ``pierhead serve`` as a child process, for the
  faults of the broker itself: SIGKILL, SIGTERM and its drain, SIGSTOP (``pause()``) and a
  restart on the same data directory.
- ``FaultProxy``: a loopback TCP proxy to put between your client and a broker, for the faults
  of the network: ``cut()`` every connection, ``refuse()`` new ones, ``stall()``, ``delay()``
  or ``throttle()`` the bytes; connect to ``proxy.url`` instead of ``broker.url``.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from ._broker_process import BrokerExitedError, BrokerProcess, broker_process
from ._config import BrokerConfig
from ._fault_proxy import FaultProxy
from ._server import BrokerServer

__all__ = [
    "BrokerExitedError",
    "BrokerProcess",
    "FaultProxy",
    "broker_process",
    "running_broker",
]


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
