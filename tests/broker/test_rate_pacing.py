"""The per-session rate limit paces a worker by holding back its acks.

The decision is :class:`broker._limits.PublishPacer`, tested here with the time passed in; then
the real SDK worker against a ``pierhead serve`` process with a low limit: it is held to the
rate (acks held back) and never closed, while a client that ignores the acks is closed with
4029 once it runs too far ahead.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Final

import pytest
from websockets.exceptions import ConnectionClosed

import schema
import sdk
from broker._limits import PublishPacer
from broker.testing import broker_process
from tests.broker.wire import closed_with, scalars, watcher_hello, wire_client, worker_hello

RATE: Final = 200
MAX_BATCH: Final = 10
WINDOW_BATCHES: Final = 16
EVENTS: Final = 600
"""Three times the burst (one second's worth at RATE): two thirds of them must be paced."""


# The decision -------------------------------------------------------------------------------


def test_within_the_burst_every_ack_goes_out_at_once() -> None:
    pacer = PublishPacer(100, burst=100, window=50, now=0.0)
    assert pacer.publish(1, 60, now=0.0)
    assert pacer.publish(61, 40, now=0.0)
    assert pacer.ackable(100, now=0.0) == 100
    assert pacer.next_due() is None
    assert pacer.paced == 0


def test_beyond_the_burst_an_ack_is_held_until_the_bucket_has_refilled_past_it() -> None:
    pacer = PublishPacer(100, burst=100, window=50, now=0.0)
    assert pacer.publish(1, 100, now=0.0)
    assert pacer.publish(101, 20, now=0.0)  # 20 events of debt: due at 0.2 s
    assert pacer.publish(121, 10, now=0.1)  # refilled 10, 20 of debt again: due at 0.3 s
    assert pacer.paced == 2
    assert pacer.ackable(130, now=0.0) == 100
    assert pacer.next_due() == pytest.approx(0.2)
    assert pacer.ackable(130, now=0.19) == 100
    assert pacer.ackable(130, now=0.2) == 120
    assert pacer.next_due() == pytest.approx(0.3)
    assert pacer.ackable(130, now=0.31) == 130
    assert pacer.next_due() is None


def test_an_ack_is_never_beyond_what_is_durable() -> None:
    pacer = PublishPacer(100, burst=10, window=100, now=0.0)
    assert pacer.publish(1, 10, now=0.0)
    assert pacer.publish(11, 10, now=0.0)
    assert pacer.ackable(5, now=0.0) == 5  # before the held batch
    assert pacer.ackable(15, now=0.0) == 10  # the held batch starts at 11
    assert pacer.ackable(15, now=1.0) == 15


def test_a_client_that_runs_beyond_the_window_is_refused_and_not_charged() -> None:
    pacer = PublishPacer(100, burst=100, window=50, now=0.0)
    assert pacer.publish(1, 100, now=0.0)
    assert pacer.publish(101, 50, now=0.0)  # exactly the window: still paced
    assert not pacer.publish(151, 1, now=0.0)
    assert pacer.publish(151, 10, now=0.1)  # 10 refilled: room for 10 more
    assert not pacer.publish(161, 1, now=0.1)


def test_a_client_held_to_its_window_is_paced_forever_never_refused() -> None:
    """Acks at the rate: a window of W batches in flight never exceeds the window."""
    batch, window_batches, rate = 10, 4, 100.0
    pacer = PublishPacer(rate, burst=20, window=window_batches * batch, now=0.0)
    in_flight: list[int] = []  # last seq of each unacked batch
    now, seq, acked = 0.0, 1, 0
    while seq < 5000:
        while len(in_flight) < window_batches:
            assert pacer.publish(seq, batch, now)
            in_flight.append(seq + batch - 1)
            seq += batch
        due = pacer.next_due()
        now = max(now, due) if due is not None else now
        acked = pacer.ackable(seq - 1, now)
        in_flight = [last for last in in_flight if last > acked]
    # 5000 events, 20 of them in the burst: the rest took at least (5000 - 20) / rate.
    assert now >= (seq - 1 - 20 - window_batches * batch) / rate
    assert pacer.paced > 0


# Against a broker process -----------------------------------------------------------------


async def _stats(url: str) -> dict[str, int | float]:
    async with wire_client(url, watcher_hello()) as watcher:
        report = await watcher.request(schema.StatsRequest(id=1))
    assert isinstance(report, schema.StatsReport)
    return report.counters


@pytest.mark.asyncio
async def test_an_sdk_worker_over_the_limit_is_paced_not_closed(tmp_path: Path) -> None:
    options = ("--max-events-per-s", str(RATE), "--max-batch", str(MAX_BATCH))
    async with broker_process(tmp_path / "data", *options) as broker:
        async with sdk.Worker(broker.url, "paced", run_id="paced-1") as worker:
            for i in range(EVENTS):
                await worker.scalar("n", float(i))
            await worker.flush(timeout=60)
            acked = worker.counters["acked"]
        counters = await _stats(broker.url)
        async with wire_client(broker.url, watcher_hello()) as watcher:
            page = await watcher.request(
                schema.HistoryQuery(id=1, workspace="paced", after=0, limit=1000)
            )
        rate_limited = broker.events("rate_limited")
        paced_logs = broker.events("publish_paced")
    assert isinstance(page, schema.HistoryPage)
    seqs = [event.seq for event in page.events if event.run_id == "paced-1"]
    presence = [e.payload for e in page.events if isinstance(e.payload, schema.Presence)]
    assert acked == EVENTS
    assert seqs == list(range(1, EVENTS + 1))  # each stored once
    assert rate_limited == []
    # One session from start to end: no 4029, no reconnect, no presence churn. (Its
    # "disconnected" may not be stored yet when the history is read.)
    assert [p.state for p in presence if p.state == "connected"] == ["connected"]
    # The events beyond the burst came in batches of at most MAX_BATCH, and some of them
    # found the bucket short and had their ack held back.
    assert counters["acks_paced"] >= 1
    assert len(paced_logs) == 1


@pytest.mark.asyncio
async def test_a_client_that_ignores_acks_is_closed_with_4029(tmp_path: Path) -> None:
    options = ("--max-events-per-s", str(RATE), "--max-batch", str(MAX_BATCH))
    async with broker_process(tmp_path / "data", *options) as broker:
        async with wire_client(broker.url, worker_hello("flood", "f-1")) as client:
            refused = asyncio.Event()

            async def read() -> schema.ErrorReply:
                while True:
                    frame = await client.receive()
                    if isinstance(frame, schema.ErrorReply):
                        refused.set()
                        return frame

            reader = asyncio.create_task(read())
            seq = 1
            # Far more than the burst and the window, never waiting for an ack; the reader
            # gets its turn after every frame, so the flood stops soon after the refusal.
            limit = 20 * (RATE + WINDOW_BATCHES * MAX_BATCH)
            with contextlib.suppress(ConnectionClosed):
                while seq <= limit and not refused.is_set():
                    await client.publish(seq, scalars(seq, MAX_BATCH))
                    seq += MAX_BATCH
                    await asyncio.sleep(0)
            refusal = await reader
            code = await closed_with(client)
    assert refusal.code is schema.ErrorCode.RATE_LIMITED
    assert code == schema.CloseCode.RATE_LIMITED
