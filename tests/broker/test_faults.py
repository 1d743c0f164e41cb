"""Faults of the broker process itself: SIGKILL mid-stream and restart on the same data, SIGTERM,
SIGSTOP.

Every test runs ``pierhead serve`` as a child process on a real store (SQLite, and Redis
except for the tests of the process alone) and talks to it over real sockets with the raw wire
client. Nothing sleeps to synchronise: each step waits for
the frames or the condition it needs, with a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

import schema
from broker.testing import broker_process
from tests.broker.wire import WireClient, scalars, watcher_hello, wire_client, worker_hello
from tests.support import BrokerStore, until

pytestmark = pytest.mark.asyncio

WORKSPACE = "faults"
RUN = "run-1"
WAIT = 15.0
"""The longest any one step may take before the test fails."""


class Reader:
    """Reads every frame of one connection in the background until the broker closes it."""

    def __init__(self, client: WireClient) -> None:
        self.client = client
        self.frames: list[schema.BrokerFrame] = []
        self.closed = False
        self.close_code: int | None = None
        self._changed = asyncio.Event()

    async def run(self) -> None:
        async for frame in self.client.frames_until_closed():
            self.frames.append(frame)
            self.on_frame(frame)
            self._changed.set()
        self.closed = True
        self.close_code = self.client.connection.close_code
        self._changed.set()

    def on_frame(self, frame: schema.BrokerFrame) -> None:
        """Bookkeeping for one frame (overridden)."""

    async def until(self, predicate: Callable[[], bool], what: str) -> None:
        """Wait until ``predicate()`` holds; fail if the socket closes or time runs out first."""

        def holds() -> bool:
            if predicate():
                return True
            if self.closed:
                raise AssertionError(f"closed ({self.close_code}) before {what}")
            return False

        await until(holds, what, timeout=WAIT, changed=self._changed)

    async def until_closed(self) -> None:
        await until(lambda: self.closed, "the socket to close", timeout=WAIT, changed=self._changed)

    def index_of(self, frame_type: type[Any]) -> list[int]:
        return [i for i, frame in enumerate(self.frames) if isinstance(frame, frame_type)]


class Publisher(Reader):
    """A worker publishing scalars whose value is their seq, ``batch`` per frame, as fast as
    its acks allow (at most ``window`` frames unacknowledged), until the socket closes."""

    def __init__(
        self, client: WireClient, *, start: int = 0, batch: int = 1000, window: int = 4
    ) -> None:
        super().__init__(client)
        self.batch = batch
        self.window = window
        self.sent = start
        """The highest seq handed to the socket: everything the worker holds."""
        self.acked = start

    def on_frame(self, frame: schema.BrokerFrame) -> None:
        if isinstance(frame, schema.Ack):
            assert frame.seq >= self.acked, "acks are cumulative"
            assert frame.seq <= self.sent, "nothing is acked before it is sent"
            self.acked = frame.seq

    async def run(self) -> None:
        publishing = asyncio.create_task(self._publish())
        try:
            await super().run()
        finally:
            publishing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await publishing

    async def _publish(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while not self.closed:
                if self.sent - self.acked >= self.window * self.batch:
                    self._changed.clear()
                    await self._changed.wait()
                    continue
                seq = self.sent + 1
                self.sent = seq + self.batch - 1
                await self.client.publish(seq, scalars(seq, self.batch))


class Follower(Reader):
    """A watcher collecting the events of its subscription."""

    def __init__(self, client: WireClient) -> None:
        super().__init__(client)
        self.events: list[schema.EventMsg] = []

    def on_frame(self, frame: schema.BrokerFrame) -> None:
        if isinstance(frame, schema.Events):
            self.events.extend(frame.events)

    @property
    def last_offset(self) -> int:
        return self.events[-1].offset if self.events else 0

    def seqs(self, run_id: str = RUN) -> list[int]:
        return [e.seq for e in self.events if e.run_id == run_id and e.seq is not None]

    def offsets(self) -> list[int]:
        return [event.offset for event in self.events]


@asynccontextmanager
async def background(*jobs: Coroutine[Any, Any, None]) -> AsyncIterator[list[asyncio.Task[None]]]:
    """Run ``jobs`` as tasks; on exit, cancel whichever still run and collect them all."""
    tasks = [asyncio.create_task(job) for job in jobs]
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                raise result


async def stored_events(url: str, workspace: str = WORKSPACE) -> list[schema.EventMsg]:
    """Every stored event of ``workspace``, oldest first, paged through ``history``."""
    events: list[schema.EventMsg] = []
    async with wire_client(url, watcher_hello(client="history")) as reader:
        while True:
            after = events[-1].offset if events else 0
            query = schema.HistoryQuery(
                id=reader.next_id(), workspace=workspace, after=after, limit=1000
            )
            page = await reader.request(query)
            assert isinstance(page, schema.HistoryPage), page
            events.extend(page.events)
            if not page.more:
                return events


def run_seqs(events: list[schema.EventMsg], run_id: str = RUN) -> list[int]:
    return [e.seq for e in events if e.run_id == run_id and e.seq is not None]


def check_stream(stored: list[schema.EventMsg]) -> int:
    """The stored stream is gapless, holds each seq of the run once, in order, with its own
    value; returns the run's highest stored seq."""
    assert [event.offset for event in stored] == list(range(1, len(stored) + 1))
    seqs = run_seqs(stored)
    assert seqs == list(range(1, len(seqs) + 1)), "every seq stored once, none missing"
    for event in stored:
        if isinstance(event.payload, schema.Scalar):
            assert event.payload.value == event.seq
    return seqs[-1] if seqs else 0


async def check_restored(url: str, *, acked: int, sent: int, seen: list[schema.EventMsg]) -> int:
    """After a restart: every acked event is stored once, nothing unsent is, and everything a
    watcher was shown is stored as shown; returns the run's highest stored seq."""
    if sent == 0:
        return 0  # nothing was published yet
    stored = await stored_events(url)
    durable = check_stream(stored)
    assert acked <= durable <= sent
    check_seen_are_stored(seen, stored)
    return durable


def same_event(a: schema.EventMsg, b: schema.EventMsg) -> bool:
    return (a.offset, a.run_id, a.seq, a.payload) == (b.offset, b.run_id, b.seq, b.payload)


def check_seen_are_stored(seen: list[schema.EventMsg], stored: list[schema.EventMsg]) -> None:
    """A watcher was only ever shown events a crash cannot take back."""
    by_offset = {event.offset: event for event in stored}
    for event in seen:
        assert event.offset in by_offset, f"offset {event.offset} was delivered, then lost"
        assert same_event(event, by_offset[event.offset])


async def subscribe(
    client: WireClient, start: schema.StartPosition | dict[str, schema.Cursor]
) -> schema.Subscribed:
    subscribed = await client.request(
        schema.Subscribe(id=client.next_id(), pattern=WORKSPACE, from_=start)
    )
    assert isinstance(subscribed, schema.Subscribed), subscribed
    return subscribed


async def acquire_mutex(client: WireClient) -> int:
    granted = await client.request(schema.MutexAcquire(id=client.next_id()))
    assert isinstance(granted, schema.MutexGranted), granted
    return granted.fence


async def acked_up_to(client: WireClient, seq: int) -> None:
    """Read acks until one covers ``seq``."""
    while True:
        ack = await client.expect(schema.Ack)
        assert ack.seq <= seq
        if ack.seq == seq:
            return


async def test_sigkill_mid_stream_loses_nothing_acked_and_restores_everything(
    broker_store: BrokerStore,
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    async with (
        broker_store.broker_process(data, "--grace", "30") as first,
        wire_client(first.url, worker_hello(WORKSPACE, RUN)) as worker,
        wire_client(first.url, watcher_hello(client="watcher")) as watcher,
    ):
        fence = await acquire_mutex(worker)
        caught = await watcher.request(
            schema.Catch(id=watcher.next_id(), workspace=WORKSPACE, reason="hold")
        )
        assert isinstance(caught, schema.Ok), caught
        epoch = (await subscribe(watcher, "earliest")).snapshot[0].epoch
        publisher, follower = Publisher(worker), Follower(watcher)
        async with background(publisher.run(), follower.run()):
            await publisher.until(lambda: publisher.acked >= 5000, "5000 events acked")
            await follower.until(lambda: len(follower.seqs()) >= 2000, "2000 events seen")
            first.kill()
            assert await first.wait() < 0
            await publisher.until_closed()
            await follower.until_closed()
    acked, sent, seen = publisher.acked, publisher.sent, follower.events
    last_offset = follower.last_offset
    assert acked <= sent

    async with broker_store.broker_process(data, "--grace", "30") as second:
        # Every acked event is back, each once; everything the watcher saw was durable.
        durable = await check_restored(second.url, acked=acked, sent=sent, seen=seen)

        async with wire_client(second.url, watcher_hello(client="watcher")) as watcher:
            resumed = await subscribe(watcher, {WORKSPACE: schema.Cursor(epoch, last_offset)})
            assert resumed.recovered is True
            follower = Follower(watcher)
            async with (
                background(follower.run()),
                wire_client(second.url, worker_hello(WORKSPACE, RUN)) as worker,
            ):
                welcome = worker.welcome
                assert welcome is not None
                assert welcome.acked_seq == durable
                assert welcome.epoch == epoch
                semaphores = welcome.semaphores
                assert semaphores is not None
                assert semaphores.caught is True
                assert (semaphores.has_mutex, semaphores.holder) == (True, RUN)
                assert semaphores.fence == fence

                # The restored lease belongs to the returning run, not to anyone else.
                async with wire_client(second.url, worker_hello(WORKSPACE, "run-2")) as other:
                    refused = await other.request(schema.MutexAcquire(id=other.next_id()))
                    assert isinstance(refused, schema.ErrorReply), refused
                    assert refused.code == schema.ErrorCode.CONFLICT
                    assert refused.detail == {"holder": RUN}
                assert await acquire_mutex(worker) == fence

                # Resend from well below acked_seq, in frames that straddle it, then continue.
                for seq in range(max(1, durable - 150), sent + 1, 100):
                    await worker.publish(seq, scalars(seq, min(100, sent + 1 - seq)))
                final = sent + 1
                await worker.publish(final, [schema.Status(key="phase", value="done")])
                await acked_up_to(worker, final)

                stored = await stored_events(second.url)
                assert check_stream(stored) == final
                await follower.until(lambda: final in follower.seqs(), "the final event")

        # The resumed watcher got exactly the rest: from its offset + 1, no gap, no duplicate,
        # each event as stored (read again: the worker's disconnect may have reached it too).
        offsets = follower.offsets()
        assert offsets == list(range(last_offset + 1, last_offset + 1 + len(offsets)))
        check_seen_are_stored(follower.events, await stored_events(second.url))
        assert follower.index_of(schema.Gap) == []


async def test_a_holder_that_does_not_return_loses_the_mutex_after_the_grace(
    broker_store: BrokerStore,
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    async with (
        broker_store.broker_process(data, "--grace", "30") as first,
        wire_client(first.url, worker_hello(WORKSPACE, RUN)) as worker,
    ):
        fence = await acquire_mutex(worker)
        await worker.publish(1, scalars(1, 10))
        await acked_up_to(worker, 10)
        first.kill()
        await first.wait()

    async with broker_store.broker_process(data, "--grace", "1") as second:
        async with wire_client(second.url, watcher_hello(client="watcher")) as watcher:
            await subscribe(watcher, "earliest")
            follower = Follower(watcher)

            def semaphores() -> list[schema.SemaphoresChange]:
                return [
                    e.payload
                    for e in follower.events
                    if isinstance(e.payload, schema.SemaphoresChange)
                ]

            def presence() -> list[tuple[str, str]]:
                return [
                    (e.payload.run_id, e.payload.state)
                    for e in follower.events
                    if isinstance(e.payload, schema.Presence)
                ]

            async with background(follower.run()):
                await follower.until(
                    lambda: (RUN, "expired") in presence() and not semaphores()[-1].has_mutex,
                    "the lease to expire",
                )
        held, lost = semaphores()[-2:]
        assert (held.has_mutex, held.holder, held.fence) == (True, RUN, fence)
        assert (lost.has_mutex, lost.holder, lost.fence) == (False, None, fence)
        assert presence() == [
            (RUN, "connected"),
            (RUN, "disconnected"),  # made at boot: the run's session did not survive
            (RUN, "expired"),
        ]

        async with wire_client(second.url, worker_hello(WORKSPACE, "run-2")) as other:
            assert await acquire_mutex(other) == fence + 1


async def stream_then_sigterm(
    broker_store: BrokerStore, data: Path, *, acked: int, sent: int, seen: list[schema.EventMsg]
) -> tuple[Publisher, Follower]:
    """Restart on ``data``, check what the last run left, carry the run on from
    welcome.acked_seq with a watcher following, SIGTERM mid-stream and check the drain."""
    async with broker_store.broker_process(data, "--drain-timeout", "5") as broker:
        durable = await check_restored(broker.url, acked=acked, sent=sent, seen=seen)
        async with (
            wire_client(broker.url, worker_hello(WORKSPACE, RUN)) as worker,
            wire_client(broker.url, watcher_hello(client="watcher")) as watcher,
        ):
            assert worker.welcome is not None
            assert worker.welcome.acked_seq == durable
            await subscribe(watcher, "latest")
            publisher, follower = Publisher(worker, start=durable), Follower(watcher)
            async with background(publisher.run(), follower.run()):
                await publisher.until(lambda: publisher.acked >= durable + 5000, "5000 acks")
                await follower.until(lambda: len(follower.seqs()) >= 2000, "2000 events seen")
                code, elapsed = await broker.timed_exit()
                await publisher.until_closed()
                await follower.until_closed()
        assert code == 0, broker.describe()
        assert elapsed < 8.0, broker.describe()
        for session in (publisher, follower):
            assert len(session.index_of(schema.Draining)) == 1
            assert session.close_code == 1001
        assert broker.events("draining")
        assert broker.events("stopped")
    return publisher, follower


async def test_sigterm_mid_stream_drains_within_the_bound(
    broker_store: BrokerStore, tmp_path: Path
) -> None:
    # Three drains in a row on one data directory; after each restart the run carries on the
    # way a worker does: from welcome.acked_seq, resending what was not acknowledged.
    data = tmp_path / "data"
    acked = sent = 0
    seen: list[schema.EventMsg] = []
    for _ in range(3):
        publisher, follower = await stream_then_sigterm(
            broker_store, data, acked=acked, sent=sent, seen=seen
        )
        acked, sent, seen = publisher.acked, publisher.sent, follower.events
    async with broker_store.broker_process(data) as broker:
        await check_restored(broker.url, acked=acked, sent=sent, seen=seen)


async def test_a_paused_broker_answers_nothing_until_resumed(
    broker_store: BrokerStore, tmp_path: Path
) -> None:
    async with (
        broker_store.broker_process(tmp_path / "data") as broker,
        wire_client(broker.url, worker_hello(WORKSPACE, RUN)) as worker,
    ):
        await worker.publish(1, scalars(1, 10))
        await acked_up_to(worker, 10)
        broker.pause()
        await worker.publish(11, scalars(11, 10))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(worker.expect(schema.Ack), 0.3)
        assert broker.returncode is None
        broker.resume()
        await acked_up_to(worker, 20)


async def test_sigterm_as_soon_as_it_listens_drains(tmp_path: Path) -> None:
    # Whoever sees ``listening`` may signal at once: the handlers are in place by then.
    async with broker_process(tmp_path / "data") as broker:
        code, _ = await broker.timed_exit()
        assert code == 0, broker.describe()
        assert broker.events("stopped")
