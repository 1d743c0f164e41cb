"""Fixtures shared across the test packages."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.support import STORE_KINDS, BrokerStore

if TYPE_CHECKING:
    # Only its type: the module is a plugin (below), which pytest imports itself.
    from tests.redis_server import RedisServer

pytest_plugins = ["tests.terminal", "tests.secret_scan", "tests.redis_server"]


@pytest.fixture(params=STORE_KINDS)
def broker_store(request: pytest.FixtureRequest) -> Iterator[BrokerStore]:
    """The store the test's brokers run on, once each: SQLite, then the session's Redis
    server (emptied after the test)."""
    if request.param == "sqlite":
        yield BrokerStore("sqlite")
        return
    server: RedisServer = request.getfixturevalue("emptied_redis")
    yield BrokerStore("redis", server)
