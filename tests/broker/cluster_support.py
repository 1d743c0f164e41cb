"""Broker nodes sharing one Redis store, as real ``pierhead serve`` processes, for the tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import sdk
from broker.testing import BrokerProcess, broker_process
from schema import EventMsg
from tests.redis_server import RedisServer, running_redis
from tests.support import until

QUICK_FAILOVER = (
    "--claim-lease", "2",
    "--position-check", "1",
    "--grace", "2",
    "--heartbeat", "0.5",
    "--heartbeat-timeout", "2",
)  # fmt: skip
"""Node settings under which a dead node's workspaces move within seconds."""


@contextlib.asynccontextmanager
async def nodes_on_redis(
    directory: Path, count: int, *options: str, redis: RedisServer | None = None
) -> AsyncIterator[tuple[RedisServer, list[BrokerProcess]]]:
    """``count`` broker processes on one Redis server (a new one unless ``redis`` is given)."""
    async with contextlib.AsyncExitStack() as stack:
        if redis is None:
            redis = stack.enter_context(running_redis())
        nodes = await stack.enter_async_context(nodes_on(directory, count, redis.url, *options))
        yield redis, nodes


@contextlib.asynccontextmanager
async def nodes_on(
    directory: Path, count: int, store: str, *options: str
) -> AsyncIterator[list[BrokerProcess]]:
    """``count`` broker processes on the Redis store at ``store``."""
    async with contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(
                broker_process(directory / f"node{index}", "--store", store, *options)
            )
            for index in range(count)
        ]


async def collect(
    subscription: sdk.Subscription, workspace: str, last_offset: int
) -> list[EventMsg]:
    """The events of ``workspace`` a subscription delivers, up to ``last_offset``; fails on a
    gap (a ``Missed``): nothing here is old enough for retention."""
    events: list[EventMsg] = []
    while not events or events[-1].offset < last_offset:
        delivery = await subscription.__anext__()
        assert isinstance(delivery, EventMsg), f"unexpected delivery {delivery!r}"
        if delivery.workspace == workspace:
            events.append(delivery)
    return events


def offsets(events: Sequence[EventMsg]) -> list[int]:
    return [event.offset for event in events]


async def stored(url: str, workspace: str) -> list[EventMsg]:
    """Every stored event of ``workspace``, oldest first, read through the node at ``url``."""
    async with sdk.Watcher(url) as watcher:
        return [event async for event in watcher.history(workspace, after=0, page_size=1000)]


async def last_offset(url: str, workspace: str) -> int:
    """The last offset of ``workspace`` as the node at ``url`` holds it. Ask the node that
    writes it for what was acknowledged: a node that follows it learns of a commit when it
    next reads the workspace (after a failed read, half a second later), and may not list a
    workspace created a moment ago at all."""
    async with sdk.Watcher(url) as watcher:
        (state,) = await watcher.workspaces(workspace)
    return state.last_offset


async def wait_for_log(node: BrokerProcess, event: str, *, timeout: float = 30.0) -> None:
    """Until ``node`` has logged ``event``."""
    await until(lambda: bool(node.events(event)), f"{event} in the node's log", timeout=timeout)
