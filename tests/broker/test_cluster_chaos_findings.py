"""What the chaos scenario on three nodes found, each reduced to one deterministic case on real
processes (``python -m tests.chaos.run_chaos --cluster``).

- A worker's connection that reaches the workspace's writer late, through another node's
  relay, takes the run over from the worker's newer, live connection, which the SDK then
  takes for another process of the same run (4009) and stops for good. In the scenario, a
  node read a worker's ``hello``, was paused before relaying it, the worker meanwhile
  reconnected to the writer itself, and the relay delivered the old ``hello`` on resume.
- A watcher resuming on a node whose copy of the workspace lags behind the watcher's cursor
  (the node follows the writer through the store, a moment behind) is told ``recovered:
  false`` and is sent again what it has, although nothing was lost. In the scenario, watchers
  moved from one node to another after cuts and pauses.
- A watcher resuming on a node that has not read the workspace yet (a node that just started
  learns of workspaces from its first position check or the next commit's notice) gets an
  empty snapshot, ``recovered: false``, and then, when the node learns of the workspace, a
  ``joined`` at offset 0 and every event from offset 1 again: the application receives
  duplicates (in the scenario, a watcher's stream went 485 -> 1 after a node restart).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

import schema
import sdk
from broker.testing import BrokerProcess, FaultProxy, broker_process
from tests.broker.cluster_support import collect, offsets
from tests.broker.wire import worker_hello
from tests.redis_server import running_redis
from tests.support import until, until_answered

pytestmark = pytest.mark.asyncio

WS = "deploy"
GUARD_S = 30.0
"""Only a guard against a hanging test."""


async def open_with_hello(url: str, hello: schema.Hello) -> asyncio.StreamWriter:
    """A websocket to ``url`` opened the way a client does, with ``hello`` sent at once behind
    the opening handshake; nothing of it is read."""
    protocol = ClientProtocol(
        parse_uri(url), subprotocols=[Subprotocol(schema.JSON_CODEC.subprotocol)]
    )
    protocol.send_request(protocol.connect())
    request = b"".join(protocol.data_to_send())
    frame = Frame(Opcode.TEXT, schema.JSON_CODEC.encode(hello)).serialize(mask=True)
    _reader, writer = await asyncio.open_connection("127.0.0.1", int(url.rsplit(":", 1)[1]))
    writer.write(request + frame)
    await writer.drain()
    return writer


async def test_a_late_relayed_hello_does_not_take_the_run_from_its_live_connection(
    tmp_path: Path,
) -> None:
    # Node A is reached by the other nodes through a proxy, to hold a relay on its way there.
    with running_redis() as redis:
        async with (
            FaultProxy(0) as to_a,
            broker_process(tmp_path / "a", "--store", redis.url, "--advertise-url", to_a.url) as a,
            broker_process(tmp_path / "b", "--store", redis.url) as b,
        ):
            to_a.target_port = a.port
            async with sdk.Worker(a.url, WS, run_id="starter") as starter:
                await starter.scalar("step", 0)
                await starter.flush(timeout=GUARD_S)  # node A writes the workspace
            # The run's first connection reaches node B, whose relay to A is held on the way.
            to_a.stall(True)
            first = await open_with_hello(b.url, worker_hello(WS, "job"))
            await until(lambda: to_a.bytes_held > 0, timeout=GUARD_S)
            # The worker gives that connection up and connects to node A itself.
            first.close()
            await first.wait_closed()
            live = sdk.Worker(a.url, WS, run_id="job", reconnect_max_s=0.2)
            async with live:
                await live.scalar("step", 1)
                await live.flush(timeout=GUARD_S)
                # The held relay goes on; node B closes it, its client being gone.
                to_a.stall(False)
                await until(lambda: to_a.open_connections == 0, timeout=GUARD_S)
                await live.scalar("step", 2)
                await live.flush(timeout=GUARD_S)
                assert live.counters["acked"] == 2, live.counters


async def known_offset(url: str) -> int:
    """The last offset of the workspace as the node at ``url`` knows it (0: unknown there)."""
    async with sdk.Watcher(url) as watcher:
        states = await watcher.workspaces(WS)
    return states[0].last_offset if states else 0


@contextlib.asynccontextmanager
async def follower_behind_a_proxy(
    directory: Path,
) -> AsyncIterator[tuple[BrokerProcess, BrokerProcess, FaultProxy]]:
    """Two nodes on one Redis: A reaches it directly, B through a proxy, to stall B's view."""
    with running_redis() as redis:
        async with (
            FaultProxy(redis.port) as link,
            broker_process(directory / "a", "--store", redis.url) as a,
            broker_process(directory / "b", "--store", f"redis://127.0.0.1:{link.port}/0") as b,
        ):
            yield a, b, link


async def test_a_resume_on_a_node_that_lags_behind_the_cursor_is_exact(tmp_path: Path) -> None:
    async with follower_behind_a_proxy(tmp_path) as (a, b, link):
        async with sdk.Worker(a.url, WS, run_id="job") as job:
            for index in range(10):
                await job.scalar("step", index)
            await job.flush(timeout=GUARD_S)
            synced = await known_offset(a.url)

            async def caught_up() -> bool:
                return await known_offset(b.url) >= synced

            await until_answered(caught_up, "node B to catch up", timeout=GUARD_S)
            # B stops hearing from the store; A goes on, and a watcher there reads it all.
            link.stall(True)
            for index in range(10, 20):
                await job.scalar("step", index)
            await job.flush(timeout=GUARD_S)
            async with sdk.Watcher(a.url) as watcher:
                (state,) = await watcher.workspaces(WS)
            cursor = schema.Cursor(epoch=state.epoch, offset=state.last_offset)
            # The watcher resumes on B, which is still where it was before the stall.
            async with sdk.Watcher(b.url) as resumed:
                subscription = await resumed.subscribe(WS, since={WS: cursor})
                assert resumed.state[WS].last_offset == synced < cursor.offset
                link.stall(False)
                for index in range(20, 30):
                    await job.scalar("step", index)
                await job.flush(timeout=GUARD_S)
                end = await known_offset(a.url)
                delivered = await asyncio.wait_for(collect(subscription, WS, end), GUARD_S)
                assert subscription.recovered
        assert offsets(delivered) == list(range(cursor.offset + 1, end + 1))


async def test_a_resume_on_a_node_that_has_not_read_the_workspace_yet_sends_nothing_twice(
    tmp_path: Path,
) -> None:
    async with follower_behind_a_proxy(tmp_path) as (a, b, link):
        # B hears nothing from the store while the workspace is made and written on A.
        link.stall(True)
        async with sdk.Worker(a.url, WS, run_id="job") as job:
            for index in range(10):
                await job.scalar("step", index)
            await job.flush(timeout=GUARD_S)
            async with sdk.Watcher(a.url) as watcher:
                (state,) = await watcher.workspaces(WS)
            cursor = schema.Cursor(epoch=state.epoch, offset=state.last_offset)
            async with sdk.Watcher(b.url) as resumed:
                subscription = await resumed.subscribe(WS, since={WS: cursor})
                assert WS not in resumed.state  # B has not read the workspace yet
                link.stall(False)
                await job.scalar("step", 10)
                await job.flush(timeout=GUARD_S)
                end = await known_offset(a.url)
                delivered = await asyncio.wait_for(collect(subscription, WS, end), GUARD_S)
                assert offsets(delivered) == list(range(cursor.offset + 1, end + 1))
                assert subscription.recovered
