from __future__ import annotations

import asyncio

import pytest

from broker._outbox import OutboxClosedError, SessionOutbox

pytestmark = pytest.mark.asyncio


async def test_put_nowait_refuses_once_the_bound_is_reached() -> None:
    outbox = SessionOutbox(10)
    assert outbox.put_nowait(b"12345678")
    assert outbox.put_nowait(b"12345678")  # under the bound when queued: one frame may overshoot
    assert not outbox.put_nowait(b"x")
    assert outbox.queued_bytes == 16
    assert await outbox.get() == b"12345678"
    assert outbox.put_nowait(b"x")


async def test_put_waits_for_room_and_get_waits_for_frames() -> None:
    outbox = SessionOutbox(4)
    await outbox.put(b"full")
    blocked = asyncio.create_task(outbox.put(b"next"))
    await asyncio.sleep(0)
    assert not blocked.done()
    assert await outbox.get() == b"full"
    await blocked
    assert await outbox.get() == b"next"
    waiting = asyncio.create_task(outbox.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    outbox.put_nowait(b"late")
    assert await waiting == b"late"


async def test_close_drains_then_ends_both_sides() -> None:
    outbox = SessionOutbox(4)
    outbox.put_nowait(b"last")
    blocked = asyncio.create_task(outbox.put(b"more"))
    await asyncio.sleep(0)
    outbox.close()
    with pytest.raises(OutboxClosedError):
        await blocked
    assert await outbox.get() == b"last"
    with pytest.raises(OutboxClosedError):
        await outbox.get()
