"""No request of the worker waits forever: bad arguments are refused before sending, and a
broker that does not answer ends the wait with a typed timeout."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import schema
import sdk
from broker.testing import broker_process

pytestmark = pytest.mark.asyncio

GUARD_S = 60
"""Only a guard against a hang: every wait below ends long before it."""


async def test_mutex_timeout_zero_is_refused_before_sending(tmp_path: Path) -> None:
    async with broker_process(tmp_path / "data") as broker, asyncio.timeout(GUARD_S):
        async with sdk.Worker(broker.url, "deploy") as worker:
            await worker.connected()
            with pytest.raises(sdk.InvalidArgumentError, match="mutex timeout must be None"):
                async with worker.mutex(timeout=0):
                    pass
            # Above the schema's largest timeout: refused by the check of every request.
            with pytest.raises(sdk.InvalidArgumentError, match="invalid mutex_acquire request"):
                async with worker.mutex(timeout=10**9):
                    pass
            async with worker.mutex(timeout=5) as lease:
                assert lease.fence >= 1


async def test_overlong_details_are_refused_before_sending(tmp_path: Path) -> None:
    too_long = schema.WorkspaceDetails(current_host="h" * 5000)
    async with broker_process(tmp_path / "data") as broker, asyncio.timeout(GUARD_S):
        async with sdk.Worker(broker.url, "deploy") as worker:
            await worker.connected()
            with pytest.raises(sdk.InvalidArgumentError, match="current_host") as raised:
                await worker.post_details(too_long)
            assert raised.value.code is schema.ErrorCode.TOO_LARGE
            await worker.post_details(schema.WorkspaceDetails(current_host="db-1"))
        with pytest.raises(sdk.InvalidArgumentError, match="invalid workspace details"):
            sdk.Worker(broker.url, "deploy", details=too_long)


async def test_a_broker_that_never_answers_ends_in_a_typed_timeout(tmp_path: Path) -> None:
    async with broker_process(tmp_path / "data") as broker, asyncio.timeout(GUARD_S):
        async with sdk.Worker(broker.url, "deploy") as worker:
            await worker.connected()
            worker._connection.request_timeout_s = 0.5  # the default is 30 s
            broker.pause()  # SIGSTOP: the socket stays open, nothing is answered
            try:
                with pytest.raises(sdk.PierheadTimeoutError, match="did not answer catch"):
                    await worker.post_catch("frozen broker")
                with pytest.raises(sdk.PierheadTimeoutError):
                    await worker.post_details(schema.WorkspaceDetails(current_host="db-1"))
            finally:
                broker.resume()
            await worker.post_catch("the broker is back")
            assert isinstance(sdk.PierheadTimeoutError("x"), TimeoutError)
