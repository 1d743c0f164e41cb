"""The blocking clients: the async clients' API exactly, subscriptions that start at the call,
timeouts that leave things usable, and a close that keeps its promises."""

from __future__ import annotations

import asyncio
import inspect
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import schema
import sdk
from broker.testing import broker_process
from sdk import sync
from sdk._connection import ConnectionOwner

GUARD_S = 20
"""Only a guard against hanging the suite."""

PAIRS = [(sdk.Worker, sync.Worker), (sdk.Watcher, sync.Watcher)]

CONNECTION_CALLBACKS = {name for name in dir(ConnectionOwner) if not name.startswith("_")}
"""The async clients' side of their connection: public to it, not to users."""

SYNC_TIMEOUT = "timeout"
"""The one parameter a blocking twin may add, last, where its async method has no bound."""


def public_names(cls: type, instance: object) -> dict[str, str]:
    """Each public name of the class and of an instance: ``method``, or ``value`` for
    properties and attributes alike (an attribute in one may be a property in the other)."""
    names: dict[str, str] = {}
    for name, member in inspect.getmembers(cls):
        if name.startswith("_") or name in CONNECTION_CALLBACKS:
            continue
        names[name] = "method" if callable(member) else "value"
    for name in vars(instance):
        if not name.startswith("_"):
            names[name] = "value"
    return names


def parameters(function: Any) -> list[tuple[str, Any, Any, Any]]:
    hints = typing.get_type_hints(function)
    return [
        (p.name, p.kind, p.default, hints.get(p.name, p.annotation))
        for p in inspect.signature(function).parameters.values()
    ]


def assert_same_signature(name: str, asynchronous: Any, blocking: Any) -> None:
    expected, actual = parameters(asynchronous), parameters(blocking)
    if actual != expected and actual[:-1] == expected and actual[-1][0] == SYNC_TIMEOUT:
        assert SYNC_TIMEOUT not in [p[0] for p in expected], name
        assert actual[-1][2] is None, f"{name}: the added timeout defaults to no bound"
        return
    assert actual == expected, name


@pytest.fixture
def instances() -> Iterator[list[tuple[object, object]]]:
    """One of each client, never connected: signatures and attributes are all we look at."""
    url = "ws://127.0.0.1:9"
    asynchronous = [sdk.Worker(url, "w", run_id="r"), sdk.Watcher(url, reconnect=False)]
    blocking = [sync.Worker(url, "w", run_id="r"), sync.Watcher(url, reconnect=False)]
    try:
        yield list(zip(asynchronous, blocking, strict=True))
    finally:
        for client in blocking:
            client.close()


def test_the_blocking_clients_have_the_async_clients_api_exactly(
    instances: list[tuple[object, object]],
) -> None:
    for (asynchronous, blocking), (async_instance, sync_instance) in zip(
        PAIRS, instances, strict=True
    ):
        expected = public_names(asynchronous, async_instance)
        actual = public_names(blocking, sync_instance)
        assert actual == expected, asynchronous.__name__
        assert_same_signature(
            f"{asynchronous.__name__}()",
            vars(asynchronous)["__init__"],
            vars(blocking)["__init__"],
        )
        for name, kind in expected.items():
            if kind == "method":
                assert_same_signature(
                    f"{asynchronous.__name__}.{name}",
                    getattr(asynchronous, name),
                    getattr(blocking, name),
                )


def test_a_blocking_client_used_after_close_raises_closed_error() -> None:
    worker = sync.Worker("ws://127.0.0.1:9", "w", run_id="r", close_timeout_s=0)
    worker.start()
    worker.close()
    assert worker.state is sdk.ConnectionState.CLOSED
    assert worker.counters["queued"] == 0
    for use in (
        lambda: worker.event("late"),
        lambda: worker.flush(1),
        lambda: worker.queue_event("late"),
        lambda: worker.connected(1),
    ):
        with pytest.raises(sdk.ClosedError):
            use()
    worker.close()  # a second close does nothing
    watcher = sync.Watcher("ws://127.0.0.1:9", reconnect=False)
    watcher.close()
    with pytest.raises(sdk.ClosedError):
        watcher.workspaces()
    assert watcher.connection_state is sdk.ConnectionState.CLOSED


@pytest.mark.asyncio
async def test_a_subscription_starts_at_the_call_and_survives_a_timeout(tmp_path: Path) -> None:
    async with broker_process(tmp_path / "data") as broker:
        worker = await asyncio.to_thread(sync.Worker, broker.url, "ws", run_id="r")
        watcher = await asyncio.to_thread(sync.Watcher, broker.url)
        try:
            await asyncio.to_thread(worker.start)
            await asyncio.to_thread(worker.connected, GUARD_S)
            deliveries = await asyncio.to_thread(
                watcher.subscribe, "ws", kinds=["event"], timeout=0.2
            )
            # Nothing published yet: the wait ends, typed, and the iterator stays usable.
            with pytest.raises(sdk.PierheadTimeoutError):
                await asyncio.to_thread(next, deliveries)
            # Published (and stored) between the call and the next ``next``: not missed.
            await asyncio.to_thread(worker.post_event, "hello", timeout=GUARD_S)
            first = await asyncio.to_thread(next, deliveries)
            assert isinstance(first, schema.EventMsg)
            assert first.payload == schema.WorkspaceEvent(message="hello")
            await asyncio.to_thread(worker.post_event, "again", timeout=GUARD_S)
            second = await asyncio.to_thread(next, deliveries)
            assert isinstance(second, schema.EventMsg)
            assert second.payload == schema.WorkspaceEvent(message="again")
        finally:
            await asyncio.to_thread(watcher.close)
            await asyncio.to_thread(worker.close)


@pytest.mark.asyncio
async def test_close_flushes_for_as_long_as_close_timeout_s(tmp_path: Path) -> None:
    async with broker_process(tmp_path / "data") as broker:
        worker = await asyncio.to_thread(
            sync.Worker, broker.url, "slow", run_id="r", close_timeout_s=120
        )
        await asyncio.to_thread(worker.start)
        await asyncio.to_thread(worker.connected, GUARD_S)
        broker.pause()
        try:
            await asyncio.to_thread(worker.event, "stored before the close returns")
            closing = asyncio.ensure_future(asyncio.to_thread(worker.close))
            # Asked for 120 s, the close is still flushing past the 5 s flush and the 10 s
            # overall bound that it used to impose whatever it was asked for.
            done, _ = await asyncio.wait([closing], timeout=12)
            assert not done
        finally:
            broker.resume()
        await asyncio.wait_for(closing, GUARD_S)
        assert worker.counters == {"queued": 0, "in_flight": 0, "acked": 1, "dropped": 0}
