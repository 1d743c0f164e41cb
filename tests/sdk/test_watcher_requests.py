"""Watcher requests: bad arguments are refused before sending, and no request waits forever."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

import schema
import sdk
from broker.testing import broker_process, running_broker

pytestmark = pytest.mark.asyncio

GUARD_S = 20
"""Only a guard against hanging the suite: each refusal comes at once."""

Request = Callable[[sdk.Watcher], Awaitable[object]]


async def _history(watcher: sdk.Watcher, workspace: str, **query: object) -> None:
    async for _ in watcher.history(workspace, **query):  # type: ignore[arg-type]
        pass


BAD_REQUESTS: dict[str, Request] = {
    "catch bad!": lambda w: w.catch("bad!"),
    "catch over-long reason": lambda w: w.catch("ok", reason="r" * 5000),
    "release bad!": lambda w: w.release("bad!"),
    "break_mutex bad!": lambda w: w.break_mutex("bad!"),
    "delete bad!": lambda w: w.delete_workspace("bad!"),
    "workspaces a%b": lambda w: w.workspaces("a%b"),
    "history bad!": lambda w: _history(w, "bad!"),
    "history page_size 0": lambda w: _history(w, "ok", page_size=0),
    "call bad/run": lambda w: w.call("ws", "bad/run", "x"),
    "call bad action": lambda w: w.call("ws", "run", "no way"),
    "call timeout 0": lambda w: w.call("ws", "run", "add", {"a": 1}, timeout=0),
    "call unsendable args": lambda w: w.call("ws", "run", "add", {"a": object()}),
    "subscribe a b": lambda w: w.subscribe("a b"),
    "subscribe bad kind": lambda w: w.subscribe("*", kinds=["nope"]),  # type: ignore[list-item]
}


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
async def test_a_bad_argument_is_refused_at_the_call_and_the_watcher_goes_on(name: str) -> None:
    async with running_broker() as broker, sdk.Watcher(broker.url) as watcher:
        await watcher.connected()
        async with asyncio.timeout(GUARD_S):
            with pytest.raises(sdk.InvalidArgumentError) as refused:
                await BAD_REQUESTS[name](watcher)
            assert isinstance(refused.value, sdk.PierheadError)
            assert isinstance(refused.value, ValueError)
            assert str(refused.value)
            # The watcher is still fine: a good request on it is answered.
            assert await watcher.workspaces() == []


async def test_the_message_says_what_was_wrong() -> None:
    async with running_broker() as broker, sdk.Watcher(broker.url) as watcher:
        with pytest.raises(sdk.InvalidArgumentError, match=r"invalid subscribe request.*pattern"):
            await asyncio.wait_for(watcher.subscribe("a b"), GUARD_S)
        with pytest.raises(
            sdk.InvalidArgumentError, match=r"invalid catch request.*reason"
        ) as long:
            await asyncio.wait_for(watcher.catch("ok", reason="r" * 5000), GUARD_S)
        assert long.value.code is schema.ErrorCode.TOO_LARGE
        # A refused subscribe leaves nothing behind to resubscribe later.
        assert watcher._subscriptions == []


async def test_a_broker_that_never_answers_ends_each_request_in_a_timeout(tmp_path: Path) -> None:
    async with broker_process(tmp_path / "data") as broker:
        async with sdk.Watcher(broker.url, request_timeout_s=0.5) as watcher:
            await asyncio.wait_for(watcher.connected(), GUARD_S)
            broker.pause()
            try:
                for request in (
                    lambda: watcher.workspaces(),
                    lambda: watcher.catch("frozen"),
                    lambda: watcher.stats(),
                    lambda: watcher.subscribe("*"),
                    lambda: watcher.call("frozen", "r", "act", timeout=0.5),
                ):
                    with pytest.raises(sdk.PierheadTimeoutError) as timed_out:
                        await asyncio.wait_for(request(), GUARD_S)
                    assert isinstance(timed_out.value, TimeoutError)
                    assert "no answer from the broker" in str(timed_out.value)
            finally:
                broker.resume()
            # Once the broker answers again, so do requests.
            assert await asyncio.wait_for(watcher.workspaces(), GUARD_S) == []


async def test_a_request_while_the_broker_is_gone_ends_in_a_timeout(tmp_path: Path) -> None:
    async with broker_process(tmp_path / "data") as broker:
        watcher = sdk.Watcher(broker.url, request_timeout_s=0.5, reconnect_max_s=0.2)
        await watcher.start()
        try:
            await asyncio.wait_for(watcher.connected(), GUARD_S)
            broker.kill()
            await broker.wait()
            # The reply to this one is lost with the connection, or it waits for a broker
            # that is not coming back: either way it ends, with a typed error.
            with pytest.raises((sdk.PierheadTimeoutError, sdk.ConnectionLostError)):
                await asyncio.wait_for(watcher.workspaces(), GUARD_S)
            with pytest.raises(sdk.PierheadTimeoutError):
                await asyncio.wait_for(watcher.workspaces(), GUARD_S)
        finally:
            await watcher.close()
