"""Requests that wait for the store or another node: at most so many per session, and each one
answered whatever happens to it. A broker in this process (SQLite store), its requests made
directly with recording peers, so that when each one ends is up to the test."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

import schema
from broker._store import StoreUnavailableError
from broker.testing import running_broker
from tests.broker.routing_support import FakePeer
from tests.support import until

pytestmark = pytest.mark.asyncio


async def answered_when(event: asyncio.Event, peer: FakePeer, request_id: int) -> None:
    await event.wait()
    peer.send(schema.Ok(id=request_id))


async def test_a_session_has_at_most_so_many_requests_waiting() -> None:
    async with running_broker(max_waiting_requests_per_session=2) as server:
        broker = server.broker
        assert broker is not None
        busy, other = FakePeer("busy"), FakePeer("other")
        go = asyncio.Event()
        broker.answer_later(busy, 1, answered_when(go, busy, 1))
        broker.answer_later(busy, 2, answered_when(go, busy, 2))
        broker.answer_later(busy, 3, answered_when(go, busy, 3))
        # Another session's requests do not count against this one's.
        broker.answer_later(other, 1, answered_when(go, other, 1))
        (refused,) = busy.sent
        assert isinstance(refused, schema.ErrorReply)
        assert (refused.id, refused.code) == (3, schema.ErrorCode.RATE_LIMITED)
        assert "at most 2 requests waiting" in refused.message
        assert other.sent == []
        go.set()
        await until(lambda: len(busy.sent) == 3 and len(other.sent) == 1, "the answers")
        assert busy.sent[1:] == [schema.Ok(id=1), schema.Ok(id=2)]
        # Answered, they no longer count.
        broker.answer_later(busy, 4, answered_when(go, busy, 4))
        await until(lambda: len(busy.sent) == 4, "the fourth answer")
        assert busy.sent[-1] == schema.Ok(id=4)


async def fails_with(error: Exception) -> None:
    raise error


async def test_a_request_that_fails_is_answered_and_no_longer_counts() -> None:
    async with running_broker(max_waiting_requests_per_session=1) as server:
        broker = server.broker
        assert broker is not None
        peer = FakePeer("watcher")
        unreachable = StoreUnavailableError("Redis cannot be reached: no reply in time")
        broker.answer_later(peer, 1, fails_with(unreachable))
        await until(lambda: len(peer.sent) == 1, "the first answer")
        with capture_logs() as logs:
            broker.answer_later(peer, 2, fails_with(RuntimeError("a fault in a handler")))
            await until(lambda: len(peer.sent) == 2, "the second answer")
        first, second = peer.sent
        assert isinstance(first, schema.ErrorReply)
        assert isinstance(second, schema.ErrorReply)
        assert (first.id, first.code) == (1, schema.ErrorCode.INTERNAL)
        assert "the store cannot be reached; try again" in first.message
        assert "no reply in time" in first.message
        assert (second.id, second.code) == (2, schema.ErrorCode.INTERNAL)
        assert "failed to carry out the request" in second.message
        assert "a fault in a handler" not in second.message
        assert [log["event"] for log in logs if log["log_level"] == "error"] == ["request_failed"]
