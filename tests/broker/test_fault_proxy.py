"""``FaultProxy`` in front of a real broker: cut, refuse, stall, delay and throttle.

The clients are the raw wire client; the broker is ``running_broker()`` in the test's loop.
Nothing sleeps to synchronise: each step waits for the frame it needs. The only fixed waits are
the short windows in which something must *not* happen (an ack while stalled).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from websockets.exceptions import ConnectionClosed, InvalidHandshake

import schema
from broker._server import BrokerServer
from broker.testing import FaultProxy, running_broker
from tests.broker.wire import WireClient, scalars, watcher_hello, wire_client, worker_hello

pytestmark = pytest.mark.asyncio

WORKSPACE = "proxied"
RUN = "run-1"
QUIET = 0.3
"""How long something that must not happen is given to happen anyway."""


@asynccontextmanager
async def proxied_broker() -> AsyncIterator[tuple[BrokerServer, FaultProxy]]:
    async with running_broker() as broker, FaultProxy(broker.port) as proxy:
        yield broker, proxy


async def acked_up_to(client: WireClient, seq: int) -> list[int]:
    """Read acks until one covers ``seq``; every ack seen, in order."""
    acks: list[int] = []
    while not acks or acks[-1] < seq:
        frame = await client.receive()
        assert not isinstance(frame, schema.ErrorReply), frame
        if isinstance(frame, schema.Ack):
            acks.append(frame.seq)
    assert acks[-1] == seq
    return acks


async def subscribe(watcher: WireClient) -> int:
    subscribed = await watcher.request(
        schema.Subscribe(id=watcher.next_id(), pattern=WORKSPACE, from_="latest")
    )
    assert isinstance(subscribed, schema.Subscribed), subscribed
    return subscribed.id


async def events_up_to(watcher: WireClient, seq: int) -> list[int]:
    """Read events until the run's ``seq`` arrives; the run's seqs, in order of arrival."""
    seqs: list[int] = []
    while seq not in seqs:
        frame = await watcher.expect(schema.Events)
        seqs.extend(e.seq for e in frame.events if e.run_id == RUN and e.seq is not None)
    return seqs


async def test_traffic_flows_through_the_proxy() -> None:
    async with proxied_broker() as (_, proxy):
        assert proxy.url == f"ws://127.0.0.1:{proxy.port}"
        async with wire_client(proxy.url, worker_hello(WORKSPACE, RUN)) as worker:
            assert (proxy.connections_total, proxy.open_connections) == (1, 1)
            await worker.publish(1, scalars(1, 10))
            assert await acked_up_to(worker, 10) == [10]
            await worker.publish(11, scalars(11, 10))
            assert await acked_up_to(worker, 20) == [20]
            assert proxy.bytes_up > 0
            assert proxy.bytes_down > 0
            assert proxy.bytes_held == 0
        # The closing handshake went through both ways: the broker's close frame arrived and
        # the half-closes were passed on, or closing would have waited for its timeout.
        assert worker.connection.close_code == 1000
        assert proxy.cuts == 0


async def test_cut_aborts_open_connections_and_new_ones_work() -> None:
    async with proxied_broker() as (_, proxy):
        async with wire_client(proxy.url, worker_hello(WORKSPACE, RUN)) as worker:
            await worker.publish(1, scalars(1, 10))
            await acked_up_to(worker, 10)

            proxy.cut()
            assert (proxy.cuts, proxy.open_connections) == (1, 0)
            with pytest.raises(ConnectionClosed):
                await worker.receive()
            assert worker.connection.close_code == 1006  # no close frame: the TCP link broke

        async with wire_client(proxy.url, worker_hello(WORKSPACE, RUN)) as again:
            assert again.welcome is not None
            assert again.welcome.acked_seq == 10
            await again.publish(11, scalars(11, 10))
            await acked_up_to(again, 20)
            assert (proxy.connections_total, proxy.open_connections, proxy.cuts) == (2, 1, 1)


async def test_stall_holds_frames_both_ways_until_released() -> None:
    async with (
        proxied_broker() as (broker, proxy),
        wire_client(proxy.url, worker_hello("other", RUN)) as proxied_worker,
        wire_client(proxy.url, watcher_hello(client="watcher")) as proxied_watcher,
        wire_client(broker.url, worker_hello(WORKSPACE, RUN)) as direct_worker,
    ):
        await subscribe(proxied_watcher)
        proxy.stall(True)
        up, down = proxy.bytes_up, proxy.bytes_down

        # Upstream: the proxied worker's publish is held, so no ack can come.
        await proxied_worker.publish(1, scalars(1, 10))
        # Downstream: a direct worker's events reach the broker, not the proxied watcher.
        await direct_worker.publish(1, scalars(1, 10))
        await acked_up_to(direct_worker, 10)

        ack = asyncio.create_task(acked_up_to(proxied_worker, 10))
        events = asyncio.create_task(events_up_to(proxied_watcher, 10))
        done, _ = await asyncio.wait([ack, events], timeout=QUIET)
        assert not done, "frames got through a stalled proxy"
        assert (proxy.bytes_up, proxy.bytes_down) == (up, down)
        assert proxy.bytes_held > 0

        proxy.stall(False)
        assert await ack == [10]
        assert await events == list(range(1, 11))
        assert proxy.bytes_held == 0
        assert proxy.open_connections == 2  # the direct worker does not count


async def test_delay_adds_latency_and_keeps_order() -> None:
    async with (
        proxied_broker() as (_, proxy),
        wire_client(proxy.url, worker_hello(WORKSPACE, RUN)) as worker,
        wire_client(proxy.url, watcher_hello(client="watcher")) as watcher,
    ):
        await subscribe(watcher)
        proxy.delay(0.15)
        started = time.monotonic()
        await worker.publish(1, scalars(1, 5))
        assert await acked_up_to(worker, 5) == [5]
        assert time.monotonic() - started >= 2 * 0.15, "there and back again, each way delayed"

        # Nineteen frames back to back, the delay changed halfway: nothing overtakes anything.
        for seq in range(6, 101, 5):
            await worker.publish(seq, scalars(seq, 5))
            if seq == 51:
                proxy.delay(0.05)
        acks = await acked_up_to(worker, 100)
        assert acks == sorted(acks)
        assert await events_up_to(watcher, 100) == list(range(1, 101))

        # A longer delay holds what waits; turning it off lets it go at once.
        proxy.delay(30)
        await worker.publish(101, scalars(101, 1))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(worker.expect(schema.Ack), QUIET)
        proxy.delay(0)
        assert await acked_up_to(worker, 101) == [101]
        with pytest.raises(ValueError, match="negative"):
            proxy.delay(-1)


async def test_throttle_caps_the_bytes_per_second() -> None:
    rate = 20_000
    async with (
        proxied_broker() as (_, proxy),
        wire_client(proxy.url, worker_hello(WORKSPACE, RUN)) as worker,
    ):
        proxy.throttle(rate)
        up, started = proxy.bytes_up, time.monotonic()
        await worker.publish(1, scalars(1, 250))
        await acked_up_to(worker, 250)
        throttled = time.monotonic() - started
        sent = proxy.bytes_up - up
        assert sent > 15_000, "the frame should take most of a second at this rate"
        # The first slice goes at once, every next one a slice's worth of time later.
        assert throttled >= 0.9 * (sent - rate / 20) / rate, (sent, throttled)

        proxy.throttle(None)
        started = time.monotonic()
        await worker.publish(251, scalars(251, 250))
        await acked_up_to(worker, 500)
        assert time.monotonic() - started < throttled / 2
        with pytest.raises(ValueError, match="positive"):
            proxy.throttle(0)


async def test_refuse_makes_connecting_fail() -> None:
    async with proxied_broker() as (_, proxy):
        proxy.refuse(True)
        with pytest.raises((OSError, InvalidHandshake)):
            async with wire_client(proxy.url, worker_hello(WORKSPACE, RUN)):
                pass
        assert (proxy.refusals, proxy.connections_total, proxy.open_connections) == (1, 0, 0)

        proxy.refuse(False)
        async with wire_client(proxy.url, worker_hello(WORKSPACE, RUN)) as worker:
            await worker.publish(1, scalars(1, 1))
            await acked_up_to(worker, 1)
        assert (proxy.refusals, proxy.connections_total) == (1, 1)


async def test_a_stalled_proxy_holds_a_bounded_amount_and_pushes_back() -> None:
    # A plain TCP sink as the target: the broker would refuse megabytes of junk.
    received = hashlib.sha256()
    total = 0

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal total
        while data := await reader.read(1 << 16):
            received.update(data)
            total += len(data)
        writer.close()

    payload = bytes(range(256)) * (32 * 4096)  # 32 MiB, more than the kernel buffers take
    server = await asyncio.start_server(sink, "127.0.0.1", 0)
    async with server, FaultProxy(server.sockets[0].getsockname()[1]) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        proxy.stall(True)
        writer.write(payload)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(writer.drain(), QUIET)
        assert 0 < proxy.bytes_held < 1024 * 1024 + 64 * 1024
        assert proxy.bytes_up == 0

        proxy.stall(False)
        await writer.drain()
        writer.write_eof()
        assert await reader.read() == b"", "the sink's close comes back through the proxy"
        writer.close()
        await writer.wait_closed()
        assert total == len(payload) == proxy.bytes_up
        assert received.digest() == hashlib.sha256(payload).digest()
