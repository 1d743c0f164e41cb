"""Session lifecycle: takeover by a newer connection of a run, presence, and the test helpers."""

from __future__ import annotations

import subprocess
import sys

import pytest

import schema
from broker._server import BrokerServer
from tests.broker.wire import closed_with, scalars, watcher_hello, wire_client, worker_hello
from tests.support import BrokerStore


@pytest.mark.asyncio
async def test_a_newer_connection_of_the_same_run_takes_over_with_4009(
    broker_store: BrokerStore,
) -> None:
    async with broker_store.running_broker() as broker:
        async with (
            wire_client(broker.url, watcher_hello()) as watcher,
            wire_client(broker.url, worker_hello("ws", "run")) as old,
        ):
            # From the start: the first connect's presence event may be committed already.
            await watcher.request(
                schema.Subscribe(id=watcher.next_id(), pattern="ws", from_="earliest")
            )
            await old.publish(1, scalars(1, 3))
            assert (await old.expect(schema.Ack)).seq == 3
            async with wire_client(broker.url, worker_hello("ws", "run")) as new:
                assert new.welcome is not None
                assert new.welcome.acked_seq == 3
                assert await closed_with(old) == schema.CloseCode.REPLACED
                await new.publish(4, scalars(4, 1))
                assert (await new.expect(schema.Ack)).seq == 4
            presence: list[tuple[str, str]] = []
            while len(presence) < 3:
                frame = await watcher.expect(schema.Events)
                presence.extend(
                    (event.payload.run_id, event.payload.state)
                    for event in frame.events
                    if isinstance(event.payload, schema.Presence)
                )
            # The takeover is one connect, not a disconnect and a connect.
            assert presence == [("run", "connected"), ("run", "connected"), ("run", "disconnected")]


@pytest.mark.asyncio
async def test_the_pytest_fixture_gives_a_running_broker(pierhead_broker: BrokerServer) -> None:
    async with wire_client(pierhead_broker.url, worker_hello("fixture", "r")) as worker:
        assert worker.welcome is not None
        assert worker.welcome.server.startswith("pierhead/")


def test_serve_refuses_a_public_address_without_auth() -> None:
    command = "from pierhead._cli import main; raise SystemExit(main())"
    result = subprocess.run(
        [sys.executable, "-c", command, "serve", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "--insecure" in result.stderr
    assert "Traceback" not in result.stderr
