"""Clients given several broker addresses: checked up front, tried in order, failing over to the
next one when a broker dies, and back round to the first.

The brokers here are independent (each its own store): what is tested is the client's failover,
not what the brokers share.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

import schema
import sdk
from broker.testing import BrokerProcess, broker_process, running_broker
from sdk import sync
from tests.support import free_port

GUARD_S = 30
"""Only a guard against hanging the suite."""


@pytest.fixture
def dead_url() -> Iterator[str]:
    """An address where connections are refused: a port bound, never listening, held by the
    test so nothing else can take it."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield f"ws://127.0.0.1:{bound.getsockname()[1]}"


async def messages(subscription: sdk.Subscription, count: int) -> list[str]:
    """The messages of the next ``count`` workspace events the subscription delivers."""
    seen: list[str] = []
    async with asyncio.timeout(GUARD_S):
        async for item in subscription:
            if isinstance(item, schema.EventMsg) and isinstance(
                item.payload, schema.WorkspaceEvent
            ):
                seen.append(item.payload.message)
                if len(seen) == count:
                    return seen
    raise AssertionError(f"the subscription ended after {seen}")


async def reconnected_to(states: AsyncIterator[sdk.ConnectionState], client: sdk.Watcher) -> str:
    """Wait for the client to lose its connection and get a new one; the address it got."""
    async with asyncio.timeout(GUARD_S):
        async for state in states:
            if state is sdk.ConnectionState.RECONNECTING:
                break
        async for state in states:
            if state is sdk.ConnectionState.CONNECTED:
                return client.url
    raise AssertionError("the watcher closed")


@asynccontextmanager
async def killed_on_exit(broker: BrokerProcess) -> AsyncIterator[BrokerProcess]:
    try:
        yield broker
    finally:
        await broker.close()


# Addresses are checked at the constructor -------------------------------------------------


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ([], "no broker url"),
        (["ws://127.0.0.1:9", "http://127.0.0.1:9"], "'http://127.0.0.1:9'"),
        (["ws://127.0.0.1:9", "not a url"], "'not a url'"),
        ("ws://127.0.0.1:9,ws://127.0.0.1:10", "pass them as a list"),
        ("ws://127.0.0.1:9, wss://example.com", "pass them as a list"),
        ("http://127.0.0.1:9", "'http://127.0.0.1:9'"),
    ],
)
def test_bad_addresses_are_refused_at_the_constructor(url: str | list[str], named: str) -> None:
    for client in (
        lambda: sdk.Worker(url, "w", run_id="r"),
        lambda: sdk.Watcher(url),
        lambda: sync.Worker(url, "w", run_id="r"),
        lambda: sync.Watcher(url),
    ):
        with pytest.raises(sdk.InvalidArgumentError, match="url") as refused:
            client()
        assert named in str(refused.value)


def test_a_list_is_taken_and_a_comma_inside_one_address_is_not_a_separator() -> None:
    worker = sdk.Worker(("ws://127.0.0.1:9", "wss://example.com/x"), "w", run_id="r")
    assert worker.url == "ws://127.0.0.1:9"  # the first, until a reconnect moves on
    watcher = sdk.Watcher("ws://127.0.0.1:9/path?tags=a,b")
    assert watcher.url == "ws://127.0.0.1:9/path?tags=a,b"


# Failover ---------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_worker_given_a_dead_address_first_connects_to_the_next(
    dead_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pierhead.sdk")
    async with running_broker() as broker:
        async with sdk.Worker([dead_url, broker.url], "job", run_id="r") as worker:
            await worker.post_event("stored", timeout=GUARD_S)
            assert worker.url == broker.url
            scheduled = [r for r in caplog.records if "reconnect_scheduled" in r.msg]
            connected = [r for r in caplog.records if r.msg.startswith("pierhead connected")]
            # The attempt after the refused one goes to the next address, and says so.
            assert [getattr(r, "url", None) for r in scheduled] == [broker.url]
            assert [getattr(r, "url", None) for r in connected] == [broker.url]
        async with sdk.Watcher(broker.url) as watcher:
            (state,) = await watcher.workspaces("job")
            assert state.last_event is not None


@pytest.mark.asyncio
async def test_a_blocking_worker_given_a_dead_address_first_connects_to_the_next(
    dead_url: str,
) -> None:
    async with running_broker() as broker:

        def publish() -> str:
            with sync.Worker([dead_url, broker.url], "job", run_id="r") as worker:
                worker.post_event("stored", timeout=GUARD_S)
                return worker.url

        assert await asyncio.to_thread(publish) == broker.url


@pytest.mark.asyncio
async def test_a_watcher_fails_over_when_its_broker_is_killed_and_comes_round_again(
    tmp_path: Path,
) -> None:
    first = BrokerProcess(tmp_path / "a", "--port", str(free_port()))
    await first.start()
    async with killed_on_exit(first), broker_process(tmp_path / "b") as second:
        first_url, first_port = first.url, first.port
        async with sdk.Watcher([first_url, second.url]) as watcher:
            subscription = await watcher.subscribe("job-*", since="earliest")
            states = watcher.state_changes()
            await anext(states)  # the current state
            async with sdk.Worker(first_url, "job-a", run_id="r") as worker:
                await worker.post_event("on the first", timeout=GUARD_S)
            assert await messages(subscription, 1) == ["on the first"]

            first.kill()
            assert await reconnected_to(states, watcher) == second.url
            async with sdk.Worker(second.url, "job-b", run_id="r") as worker:
                await worker.post_event("on the second", timeout=GUARD_S)
            assert await messages(subscription, 1) == ["on the second"]

            # Round robin: when the second dies, the first (back on its address) is next.
            third = BrokerProcess(tmp_path / "a", "--port", str(first_port))
            await third.start()
            async with killed_on_exit(third):
                second.kill()
                assert await reconnected_to(states, watcher) == first_url
                async with sdk.Worker(first_url, "job-a", run_id="r2") as worker:
                    await worker.post_event("on the first again", timeout=GUARD_S)
                assert await messages(subscription, 1) == ["on the first again"]


@pytest.mark.asyncio
async def test_a_worker_fails_over_and_sends_what_follows_to_the_next_broker(
    tmp_path: Path,
) -> None:
    async with broker_process(tmp_path / "a") as first, broker_process(tmp_path / "b") as second:
        async with sdk.Worker([first.url, second.url], "job", run_id="r") as worker:
            states = worker.state_changes()
            await worker.post_event("one", timeout=GUARD_S)
            assert worker.url == first.url
            first.kill()
            async with asyncio.timeout(GUARD_S):
                async for state in states:
                    if state is sdk.ConnectionState.RECONNECTING:
                        break
            await worker.post_event("two", timeout=GUARD_S)
            assert worker.url == second.url
        async with sdk.Watcher(second.url) as watcher:
            stored = [e async for e in watcher.history("job", after=0, kinds=["event"])]
        assert [e.payload.message for e in stored] == ["two"]  # type: ignore[union-attr]
        assert [e.seq for e in stored] == [2]  # the run's numbering goes on
