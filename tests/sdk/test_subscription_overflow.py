"""A subscription nobody reads must not hold up the rest of its watcher, and loses nothing."""

from __future__ import annotations

import asyncio

import pytest

import schema
import sdk
from broker.testing import running_broker

pytestmark = pytest.mark.asyncio

EVENTS = 600
GUARD_S = 30
"""Only a guard against hanging the suite: the awaited answers come in well under it."""


async def test_an_unread_subscription_lets_replies_through_and_later_delivers_everything() -> None:
    async with running_broker() as broker:
        async with sdk.Worker(broker.url, "busy", run_id="r") as worker:
            for i in range(EVENTS):
                await worker.scalar("x", i)
            await worker.flush(timeout=GUARD_S)
        async with sdk.Watcher(broker.url, subscription_buffer=4) as watcher:
            subscription = await watcher.subscribe("busy", since="earliest", kinds=["scalar"])
            # The first delivery proves the backlog is arriving: far more than the buffer.
            deliveries = aiter(subscription)
            first = await asyncio.wait_for(anext(deliveries), GUARD_S)
            # Nobody reads the subscription now; a reply on the same watcher still arrives.
            states = await asyncio.wait_for(watcher.workspaces("busy"), GUARD_S)
            assert [state.name for state in states] == ["busy"]
            assert states[0].last_offset >= EVENTS
            rest: list[sdk.Delivery] = []
            async with asyncio.timeout(GUARD_S):
                async for item in subscription:
                    rest.append(item)
                    if len(rest) == EVENTS - 1:
                        break
            assert subscription.recovered
    delivered = [first, *rest]
    assert all(isinstance(item, schema.EventMsg) for item in delivered)
    values = [item.payload.value for item in delivered]  # type: ignore[union-attr]
    assert values == [float(i) for i in range(EVENTS)]
    offsets = [item.offset for item in delivered]  # type: ignore[union-attr]
    assert offsets == sorted(set(offsets))


async def test_events_published_while_a_subscription_is_paused_arrive_once_in_order() -> None:
    async with running_broker() as broker:
        async with (
            sdk.Worker(broker.url, "live", run_id="r") as worker,
            sdk.Watcher(broker.url, subscription_buffer=2) as watcher,
        ):
            await worker.connected()
            subscription = await watcher.subscribe("live", kinds=["scalar"])
            for i in range(50):
                await worker.scalar("x", i)
            await worker.flush(timeout=GUARD_S)
            # The subscription overflowed long ago; requests keep working meanwhile.
            assert await asyncio.wait_for(watcher.stats(), GUARD_S)
            for i in range(50, 100):
                await worker.scalar("x", i)
            await worker.flush(timeout=GUARD_S)
            seen: list[float] = []
            async with asyncio.timeout(GUARD_S):
                async for item in subscription:
                    assert isinstance(item, schema.EventMsg)
                    assert isinstance(item.payload, schema.Scalar)
                    seen.append(item.payload.value)
                    if len(seen) == 100:
                        break
    assert seen == [float(i) for i in range(100)]


async def test_block_is_still_there_for_those_who_want_it() -> None:
    async with running_broker() as broker:
        async with (
            sdk.Worker(broker.url, "blocky", run_id="r") as worker,
            sdk.Watcher(broker.url, subscription_buffer=2) as watcher,
        ):
            subscription = await watcher.subscribe("blocky", kinds=["event"], overflow="block")
            assert subscription.overflow == "block"
            for i in range(10):
                await worker.event(f"e{i}")
            messages: list[str] = []
            async with asyncio.timeout(GUARD_S):
                async for item in subscription:
                    assert isinstance(item, schema.EventMsg)
                    messages.append(item.payload.message)  # type: ignore[union-attr]
                    if len(messages) == 10:
                        break
    assert messages == [f"e{i}" for i in range(10)]
    with pytest.raises(sdk.InvalidArgumentError):
        sdk.Watcher("ws://127.0.0.1:9", subscription_buffer=0)


async def test_a_reader_that_keeps_up_takes_whole_pages_without_overflowing() -> None:
    """The default buffer holds several of the broker's pages: with one smaller than a page,
    every page overflowed however fast the reader was, and each overflow cost a round of
    unsubscribe and subscribe (a backlog of 100,000 events took minutes to read)."""
    pages = 3
    count = pages * 1000
    async with running_broker() as broker:
        async with sdk.Worker(broker.url, "pages", run_id="r") as worker:
            for i in range(count):
                await worker.scalar("x", i)
            await worker.flush(timeout=GUARD_S)
        async with sdk.Watcher(broker.url) as watcher:
            subscription = await watcher.subscribe("pages", since="earliest", kinds=["scalar"])
            seen = 0
            async with asyncio.timeout(GUARD_S):
                async for delivery in subscription:
                    assert not subscription.paused, f"overflowed after {seen} events"
                    assert isinstance(delivery, schema.EventMsg)
                    seen += 1
                    if seen == count:
                        break
