"""A connection that drops while a request is still being sent leaves nothing for asyncio to
complain about: no "Future exception was never retrieved" in the application's logs.

The broker is frozen (SIGSTOP) so that a large request fills the socket buffers and its send
waits for room; then the broker is killed. The receive loop ends first and fails every reply
the connection still waits for, and only then does the blocked send fail: the request ends
with the send's error, and the reply it gave up on must not be left with an exception nobody
looked at.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

import sdk
from broker.testing import BrokerProcess, broker_process
from tests.support import until

pytestmark = pytest.mark.asyncio

GUARD_S = 60
"""Only a guard against a hang: every wait below ends long before it."""

LARGE_ARGUMENT = "x" * (32 * 1024 * 1024)
"""More than the kernel's socket buffers of both ends hold, so the send has to wait."""


@asynccontextmanager
async def unretrieved_exceptions() -> AsyncIterator[list[dict[str, Any]]]:
    """What the loop's exception handler is told about futures and tasks whose exception
    nobody retrieved, while the block runs and when its garbage is collected at the end."""
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    reports: list[dict[str, Any]] = []

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if "never retrieved" in context.get("message", ""):
            reports.append(context)
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    try:
        yield reports
        # A future is reported when it is collected; some sit in reference cycles (through
        # the tracebacks of the errors raised meanwhile).
        gc.collect()
    finally:
        loop.set_exception_handler(previous)


def _write_buffer(watcher: sdk.Watcher) -> int:
    socket = watcher._connection._socket
    return 0 if socket is None else socket.transport.get_write_buffer_size()


async def _frozen_with_a_full_buffer(broker: BrokerProcess, watcher: sdk.Watcher) -> Any:
    """Freeze the broker and start a call too large for the socket buffers: the call's send
    waits for room that never comes. Returns the call's task."""
    await watcher.connected()
    broker.pause()
    call = asyncio.create_task(watcher.call("ws", "run", "act", {"blob": LARGE_ARGUMENT}))
    await until(lambda: _write_buffer(watcher) > 0, "the call's send to wait for room")
    return call


async def test_a_request_whose_send_fails_after_the_drop_leaves_no_unretrieved_reply(
    tmp_path: Path,
) -> None:
    async with unretrieved_exceptions() as reports, asyncio.timeout(GUARD_S):
        async with broker_process(tmp_path / "data") as broker, sdk.Watcher(broker.url) as watcher:
            call = await _frozen_with_a_full_buffer(broker, watcher)
            broker.kill()
            with pytest.raises(sdk.ConnectionLostError):
                await call
            del call
    assert reports == []


async def test_a_subscribe_whose_send_fails_after_the_drop_leaves_no_unretrieved_confirmation(
    tmp_path: Path,
) -> None:
    async with unretrieved_exceptions() as reports, asyncio.timeout(GUARD_S):
        async with broker_process(tmp_path / "data") as broker:
            watcher = sdk.Watcher(broker.url)
            await watcher.start()
            try:
                call = await _frozen_with_a_full_buffer(broker, watcher)
                # Queued behind the call: its send waits for room as well.
                subscribe = asyncio.create_task(watcher.subscribe("*"))
                await until(lambda: bool(watcher._confirmations), "the subscribe to be sent")
                broker.kill()
                with pytest.raises(sdk.ConnectionLostError):
                    await call
                # The subscribe waits for the next connection; there is none before the close.
                await until(lambda: not watcher._confirmations, "the subscribe to give up its try")
            finally:
                await watcher.close()
            with pytest.raises(sdk.ClosedError):
                await subscribe
            del call, subscribe
    assert reports == []
