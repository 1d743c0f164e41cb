"""Hostile clients against a token-authenticated broker, while good clients carry on.

Every test keeps a well-behaved worker and a well-behaved watcher busy for the whole attack
(``GoodPair``: one round of publish, ack and delivery each time the attack makes progress) and
checks at the end that every event the worker published was acknowledged and reached the
watcher exactly once, in order.

All of them run against one ``pierhead serve`` process with small limits, whose memory is
compared before and after the attacks (``-s`` shows the figures). Only the reproduction of a
fault that stops the broker gets a broker of its own.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import json
import os
import pickle
import random
import sys
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import msgspec
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

import schema
from broker._tokens import ROLES, SqliteTokenStore
from broker._worker_session import PACING_WINDOW_BATCHES
from broker.testing import BrokerProcess, broker_process
from schema._limits import MAX_COUNTER, MAX_REQUEST_ID, MAX_TIMEOUT_S
from tests.broker.wire import WireClient, closed_with, watcher_hello, wire_client, worker_hello
from tests.schema.strategies import client_frames, json_values, members
from tests.support import POLL_S, ROOT, memory_kib

pytestmark = pytest.mark.asyncio(loop_scope="module")

MAX_FRAME_BYTES: Final = 64 * 1024
MAX_BATCH: Final = 50
OPEN_TIMEOUT_S: Final = 10.0
"""The websockets server's opening-handshake timeout, which the broker leaves at its default."""
HELLO_TIMEOUT_S: Final = 5.0
"""``BrokerConfig.hello_timeout_s``, the default of ``pierhead serve``."""

ROUND_TIMEOUT_S: Final = 10.0
"""Longest a good round (publish, ack, delivery) may take, whatever the attack."""
MAX_ROUNDS: Final = 3000
"""Rounds of a good pair per test, at most; more nudges than this are ignored."""
RSS_GROWTH_LIMIT_KIB: Final = 100 * 1024

FUZZ_CASES: Final = 11_000
"""Generated cases; the lanes must send at least ``MIN_FUZZ_SENT`` of them."""
MIN_FUZZ_SENT: Final = 10_000
PRE_HELLO_CASES: Final = 150
"""Cases sent as the first frame of a fresh connection, instead of a hello."""
BURST: Final = 12
"""Cases sent back to back between two probes: more than ``max_bad_frames`` (10)."""
PROBE_BASE: Final = 2**53 - 2**40
"""Probe request ids, far from the ids the generator favours (0, 1, 2**53 - 1...)."""
PROBE_TIMEOUT_S: Final = 10.0
REOPEN_WITHIN_S: Final = 30.0
"""How long a lane may be turned away while its workspace is being deleted: the delete waits
for the writer's queue to be durable, which takes longer on a loaded machine than any fixed
number of immediate retries."""
FUZZ_TIME_LIMIT_S: Final = 50.0

SLOW_HTTP_CONNECTIONS: Final = 40
SLOW_HELLO_CONNECTIONS: Final = 10
SLOWLORIS_PACE_S: Final = 0.2
SLOWLORIS_TIME_LIMIT_S: Final = 25.0

ADDRESS_CAP: Final = 20
"""``--max-connections-per-address``; every client here comes from 127.0.0.1."""
TOKEN_CAP: Final = 12
"""``--max-connections-per-token``."""
EVENTS_PER_S: Final = 5000
"""``--max-events-per-s``: far above what a nudged good worker publishes."""
FLOOD_CONNECTIONS: Final = 40
FLOOD_WINDOW: Final = PACING_WINDOW_BATCHES + 5
"""Publish frames a flooding worker has unacknowledged: more than the broker paces (a worker
within the window is held to the rate by its acks, not closed)."""

BROKER_CLOSE_CODES: Final = frozenset(
    {
        1001,  # a workspace being deleted turned a worker away
        schema.CloseCode.MESSAGE_TOO_BIG,
        schema.CloseCode.PROTOCOL_ERROR,
        schema.CloseCode.FORBIDDEN,  # the lane's workspace was deleted under it
        schema.CloseCode.SLOW_CONSUMER,
        schema.CloseCode.REPLACED,
        schema.CloseCode.RATE_LIMITED,
    }
)
"""What a hostile session may be closed with; 1011 or a dropped socket would be a fault."""


# Tokens and memory ----------------------------------------------------------------------------


def make_tokens(data_dir: Path) -> dict[str, str]:
    """Secrets by role in the attacks: the good pair's, two hostile ones with every role (their
    scope keeps them off good-*), a flooder's, made for the good workers' workspaces, and an
    admin's, for the broker's stats."""
    store = SqliteTokenStore(data_dir)
    try:
        return {
            "worker": store.create("good-worker", ["worker"], "good-*")[1],
            "watcher": store.create("good-watcher", ["watcher"], "good-*")[1],
            # Every role, so that the fuzzer reaches every handler.
            "hostile": store.create("hostile", ROLES, "junk*")[1],
            "hostile-2": store.create("hostile-2", ROLES, "junk*")[1],
            "flooder": store.create("flooder", ["worker"], "good-*")[1],
            # Stats of the whole broker need an admin of every workspace.
            "admin": store.create("admin", ["watcher", "admin"], "*")[1],
        }
    finally:
        store.close()


# The good pair --------------------------------------------------------------------------------


def _good_scalar(seq: int) -> schema.Scalar:
    return schema.Scalar(name="good", value=float(seq), step=seq)


class GoodPair:
    """A worker publishing numbered scalars and a watcher following them.

    One round (publish a batch, wait for its ack, wait until the watcher has it) runs each time
    the attack calls ``nudge()``, so the pair keeps pace with the attack, beside it.
    """

    def __init__(self, worker: WireClient, watcher: WireClient, run_id: str, batch: int) -> None:
        self.worker, self.watcher = worker, watcher
        self.run_id, self.batch = run_id, batch
        self.next_seq = 1
        self.acked = 0
        self.delivered: list[tuple[int | None, float]] = []
        self.rounds = 0
        self.slowest_round_s = 0.0
        self.problems: list[str] = []
        self._nudged = asyncio.Event()
        self._arrived = asyncio.Event()
        self._stopping = False
        self._turn = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._watch()),
            asyncio.create_task(self._drive()),
        ]

    def nudge(self) -> None:
        self._nudged.set()

    async def round(self) -> None:
        async with self._turn:  # the test's own rounds and the nudged ones, one at a time
            await self._round()

    async def _round(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        first = self.next_seq
        last = first + self.batch - 1
        now = datetime.datetime.now(datetime.UTC)
        events = [
            schema.Event(payload=_good_scalar(seq), create_time=now)
            for seq in range(first, last + 1)
        ]
        async with asyncio.timeout(ROUND_TIMEOUT_S):
            await self.worker.send(schema.Publish(seq=first, events=events))
            self.next_seq = last + 1
            while self.acked < last:
                frame = await self.worker.receive()
                if isinstance(frame, schema.ErrorReply):
                    raise AssertionError(f"the good worker was refused: {frame}")
                if isinstance(frame, schema.Ack):
                    assert self.acked <= frame.seq <= last, (self.acked, frame.seq, last)
                    self.acked = frame.seq
            while not self.delivered or (self.delivered[-1][0] or 0) < last:
                if self.problems:
                    raise AssertionError(f"the good watcher: {self.problems}")
                self._arrived.clear()
                await self._arrived.wait()
        self.rounds += 1
        self.slowest_round_s = max(self.slowest_round_s, loop.time() - started)

    async def _drive(self) -> None:
        while self.rounds < MAX_ROUNDS:
            await self._nudged.wait()
            self._nudged.clear()
            if self._stopping:
                return
            await self.round()

    async def _watch(self) -> None:
        async for frame in self.watcher.frames_until_closed():
            if isinstance(frame, schema.Events):
                for event in frame.events:
                    if event.run_id == self.run_id:
                        assert isinstance(event.payload, schema.Scalar)
                        self.delivered.append((event.seq, event.payload.value))
            elif isinstance(frame, schema.Gap | schema.ErrorReply | schema.Removed):
                self.problems.append(repr(frame))
            self._arrived.set()
        self.problems.append(f"closed with {self.watcher.connection.close_code}")
        self._arrived.set()

    async def finish(self) -> None:
        """Stop after the round under way, run one more, then check everything arrived once."""
        self._stopping = True
        self._nudged.set()
        await self._tasks[1]
        await self.round()
        last = self.next_seq - 1
        assert not self.problems
        assert self.acked == last
        expected = [(seq, float(seq)) for seq in range(1, last + 1)]
        # Compared as a whole: every event once, in order, nothing else.
        assert self.delivered == expected

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()


@asynccontextmanager
async def good_pair(
    url: str, secrets: dict[str, str], workspace: str, *, batch: int = 5
) -> AsyncIterator[GoodPair]:
    """A good worker and watcher of ``workspace``, served once before the attack begins."""
    run_id = "steady"
    async with (
        wire_client(url, worker_hello(workspace, run_id, token=secrets["worker"])) as worker,
        wire_client(url, watcher_hello(token=secrets["watcher"])) as watcher,
    ):
        reply = await watcher.request(
            schema.Subscribe(id=watcher.next_id(), pattern=workspace, kinds=["scalar"])
        )
        assert isinstance(reply, schema.Subscribed)
        pair = GoodPair(worker, watcher, run_id, batch)
        pair.start()
        try:
            await pair.round()
            yield pair
        finally:
            pair.stop()


def assert_healthy(broker: BrokerProcess, since: int = 0) -> None:
    """The broker process runs and logged no error and nothing outside its JSON logs."""
    assert broker.returncode is None, broker.describe()
    bad = [
        record
        for record in broker.logs[since:]
        if "raw" in record or record.get("level") in ("error", "critical")
    ]
    # Whole records, one per line: pytest would cut a list of dicts short, and the cause of a
    # session_failed is at the end of its record.
    assert not bad, "\n".join(json.dumps(record) for record in bad[:20])


# The broker process under attack --------------------------------------------------------------


@dataclass
class Target:
    broker: BrokerProcess
    secrets: dict[str, str]
    rss_before_kib: int


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def target(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Target]:
    data = tmp_path_factory.mktemp("hostile") / "data"
    secrets = make_tokens(data)
    options = {
        "--auth": "token",
        "--max-frame-bytes": MAX_FRAME_BYTES,
        "--max-batch": MAX_BATCH,
        "--max-events-per-s": EVENTS_PER_S,
        "--max-connections-per-address": ADDRESS_CAP,
        "--max-connections-per-token": TOKEN_CAP,
    }
    arguments = [str(part) for option in options.items() for part in option]
    async with broker_process(data, *arguments) as broker:
        # Warm up first, so that lazy imports and first-use caches do not count as growth.
        async with good_pair(broker.url, secrets, "good-warm") as pair:
            for _ in range(20):
                await pair.round()
            await pair.finish()
        yield Target(broker, secrets, memory_kib(broker.process.pid))


# Hand-made connections ------------------------------------------------------------------------


def upgrade_request(port: int, *, extensions: str | None = None) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        "GET / HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        f"Sec-WebSocket-Protocol: {schema.JSON_CODEC.subprotocol}",
    ]
    if extensions is not None:
        lines.append(f"Sec-WebSocket-Extensions: {extensions}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def client_frame(
    payload: bytes,
    *,
    opcode: int = 0x1,
    fin: bool = True,
    rsv1: bool = False,
    length: int | None = None,
) -> bytes:
    """A masked websocket frame as a client sends it; ``length`` may lie about the payload."""
    size = len(payload) if length is None else length
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    if size < 126:
        header = bytes([first, 0x80 | size])
    elif size < 2**16:
        header = bytes([first, 0x80 | 126]) + size.to_bytes(2, "big")
    else:
        header = bytes([first, 0x80 | 127]) + size.to_bytes(8, "big")
    mask = os.urandom(4)
    repeated = (mask * (len(payload) // 4 + 1))[: len(payload)]
    masked = int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")
    return header + mask + masked.to_bytes(len(payload), "big")


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One frame from the broker (unmasked): its opcode and payload."""
    head = await reader.readexactly(2)
    size = head[1] & 0x7F
    if size >= 126:
        size = int.from_bytes(await reader.readexactly(2 if size == 126 else 8), "big")
    return head[0] & 0x0F, await reader.readexactly(size)


async def read_close(reader: asyncio.StreamReader) -> int | None:
    """Read frames until a close frame: its code; None if the socket just ended."""
    try:
        while True:
            opcode, data = await read_frame(reader)
            if opcode == 0x8:
                return int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


async def read_to_end(reader: asyncio.StreamReader) -> int | None:
    with contextlib.suppress(ConnectionError):
        while await reader.read(4096):
            pass
    return None


async def raw_upgrade(
    port: int, *, extensions: str | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str]:
    """A websocket handshake by hand; the reader, the writer and the response head."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(upgrade_request(port, extensions=extensions))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), OPEN_TIMEOUT_S)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer, head.decode("latin-1")


async def closed_after(
    port: int,
    hello: schema.Hello | None,
    frames: Sequence[bytes],
    *,
    extensions: str | None = None,
) -> int | None:
    """On a hand-made connection (after ``hello`` and its welcome, if given), send ``frames``
    as they are; the code the broker closes with. No websockets client gets in the way."""
    reader, writer, head = await raw_upgrade(port, extensions=extensions)
    try:
        assert "sec-websocket-extensions" not in head.lower(), head
        if hello is not None:
            writer.write(client_frame(schema.JSON_CODEC.encode(hello)))
            _, data = await asyncio.wait_for(read_frame(reader), PROBE_TIMEOUT_S)
            assert isinstance(schema.JSON_CODEC.decode_broker_frame(data), schema.Welcome)
        for frame in frames:
            writer.write(frame)
        return await asyncio.wait_for(read_close(reader), PROBE_TIMEOUT_S)
    finally:
        writer.transport.abort()


async def dribble(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    data: bytes,
    until_closed: Callable[[asyncio.StreamReader], Coroutine[Any, Any, int | None]],
    on_tick: Callable[[], None],
) -> tuple[float, int | None]:
    """Send ``data`` a byte per pace until the broker closes; how long that took, and its
    close code (None when it just dropped the socket)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    closed: asyncio.Task[int | None] = asyncio.create_task(until_closed(reader))
    try:
        for index in range(len(data)):
            done, _ = await asyncio.wait({closed}, timeout=SLOWLORIS_PACE_S)
            if done:
                break
            with contextlib.suppress(ConnectionError):
                writer.write(data[index : index + 1])
            on_tick()
        code = await closed
        return loop.time() - started, code
    finally:
        closed.cancel()
        writer.close()


async def test_slowloris_handshakes_and_hellos_are_cut_off(target: Target) -> None:
    broker, secrets = target.broker, target.secrets
    since = len(broker.logs)
    port = broker.port
    total = SLOW_HTTP_CONNECTIONS + SLOW_HELLO_CONNECTIONS
    dribbling: set[int] = set()
    all_dribbling = asyncio.Event()

    def ticker(index: int, good: GoodPair) -> Callable[[], None]:
        def tick() -> None:
            dribbling.add(index)
            if len(dribbling) == total:
                all_dribbling.set()
            if index == 0:
                good.nudge()

        return tick

    async def slow_http(index: int, good: GoodPair) -> tuple[float, int | None]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        # Never finished: the blank line that ends the request is never sent.
        request = upgrade_request(port)[:-2] + b"X-Padding: " + b"p" * 200 + b"\r\n"
        return await dribble(reader, writer, request, read_to_end, ticker(index, good))

    async def slow_hello(index: int, good: GoodPair) -> tuple[float, int | None]:
        reader, writer, _ = await raw_upgrade(port)
        hello = client_frame(schema.JSON_CODEC.encode(watcher_hello(token=secrets["hostile"])))
        return await dribble(reader, writer, hello, read_close, ticker(index, good))

    async with good_pair(broker.url, secrets, "good-slow") as good:
        async with asyncio.timeout(SLOWLORIS_TIME_LIMIT_S), asyncio.TaskGroup() as tasks:
            http = [tasks.create_task(slow_http(i, good)) for i in range(SLOW_HTTP_CONNECTIONS)]
            hellos = [
                tasks.create_task(slow_hello(i, good)) for i in range(SLOW_HTTP_CONNECTIONS, total)
            ]
            # A newcomer gets in while every slow connection is held open.
            await all_dribbling.wait()
            async with wire_client(broker.url, watcher_hello(token=secrets["watcher"])) as late:
                assert late.welcome is not None
        await good.finish()
    http_times = sorted(task.result()[0] for task in http)
    hello_results = [task.result() for task in hellos]
    # Cut off by the handshake timeout, not by the end of the request, which never came.
    assert http_times[0] >= OPEN_TIMEOUT_S - 1, http_times
    assert http_times[-1] < OPEN_TIMEOUT_S + 5, http_times
    assert {code for _, code in hello_results} == {schema.CloseCode.PROTOCOL_ERROR}, hello_results
    assert all(HELLO_TIMEOUT_S - 1 <= took < HELLO_TIMEOUT_S + 5 for took, _ in hello_results)
    assert good.rounds >= 10
    assert_healthy(broker, since)


# Oversize frames and compression --------------------------------------------------------------


async def test_oversize_frames_close_with_1009(target: Target) -> None:
    broker, secrets = target.broker, target.secrets
    since = len(broker.logs)
    hostile = worker_hello("junk-big", "big", token=secrets["hostile"])
    quarter = b"y" * (MAX_FRAME_BYTES // 4)
    attempts: list[tuple[schema.Hello | None, list[bytes]]] = [
        # After a welcome, and instead of a hello.
        (hello, [client_frame(b"x" * size)])
        for size in (MAX_FRAME_BYTES + 1, 4 * MAX_FRAME_BYTES, 16 * 1024 * 1024)
        for hello in (hostile, None)
    ]
    # Fragments each under the limit, adding up to twice it.
    fragments = [client_frame(quarter, fin=False)]
    fragments += [client_frame(quarter, opcode=0x0, fin=False)] * 6
    fragments += [client_frame(quarter, opcode=0x0)]
    attempts.append((hostile, fragments))
    # A header announcing 2**62 bytes that never come: refused on the header alone.
    attempts.append((hostile, [client_frame(b"", length=2**62)]))
    codes = []
    async with good_pair(broker.url, secrets, "good-big") as good:
        for hello, frames in attempts:
            codes.append(await closed_after(broker.port, hello, frames))
            good.nudge()
        await good.finish()
    assert codes == [schema.CloseCode.MESSAGE_TOO_BIG] * len(attempts)
    assert_healthy(broker, since)


async def test_compression_is_never_negotiated_and_a_bomb_is_refused(target: Target) -> None:
    broker, secrets = target.broker, target.secrets
    since = len(broker.logs)
    hostile = watcher_hello(token=secrets["hostile"])
    offer = "permessage-deflate; client_max_window_bits"
    async with good_pair(broker.url, secrets, "good-bomb") as good:
        # The websockets client offers permessage-deflate; the broker does not take it.
        async with connect(
            broker.url,
            subprotocols=[Subprotocol(schema.JSON_CODEC.subprotocol)],
            compression="deflate",
        ) as connection:
            assert connection.response is not None
            assert connection.response.headers.get("Sec-WebSocket-Extensions") is None
            assert connection.protocol.extensions == []
            await connection.send(schema.JSON_CODEC.encode(hostile).decode())
            welcome = schema.JSON_CODEC.decode_broker_frame(await connection.recv())
            assert isinstance(welcome, schema.Welcome)
        good.nudge()
        # 8 MiB that would deflate to a few KiB go out as they are: just too big.
        big = client_frame(b"a" * (8 * 1024 * 1024))
        assert await closed_after(broker.port, hostile, [big], extensions=offer) == 1009
        good.nudge()
        # Flagged as compressed anyway (RSV1), 32 KiB that would inflate to 32 MiB: a protocol
        # error, and nothing is inflated.
        squeezer = zlib.compressobj(9, zlib.DEFLATED, -15)
        bomb = squeezer.compress(b"\0" * (32 * 1024 * 1024)) + squeezer.flush(zlib.Z_SYNC_FLUSH)
        assert len(bomb) < MAX_FRAME_BYTES
        flagged = client_frame(bomb[:-4], rsv1=True)
        for hello in (hostile, None):
            assert await closed_after(broker.port, hello, [flagged], extensions=offer) == 1002
            good.nudge()
        await good.finish()
    assert_healthy(broker, since)


# Floods ---------------------------------------------------------------------------------------


async def test_a_connection_flood_past_the_caps_is_refused(target: Target) -> None:
    broker, secrets = target.broker, target.secrets
    since = len(broker.logs)

    async def one(stack: contextlib.AsyncExitStack, token: str, good: GoodPair) -> int | None:
        """None when let in (kept open on ``stack``), else the close code."""
        client = await stack.enter_async_context(wire_client(broker.url))
        await client.send(watcher_hello(token=secrets[token]))
        reply = await client.receive()
        good.nudge()
        if isinstance(reply, schema.Welcome):
            return None
        assert isinstance(reply, schema.ErrorReply)
        assert reply.code is schema.ErrorCode.RATE_LIMITED
        return await closed_with(client)

    async def flood(stack: contextlib.AsyncExitStack, token: str, good: GoodPair) -> int:
        """Open ``FLOOD_CONNECTIONS`` at once; how many got in (the rest must be 4029)."""
        outcomes = await asyncio.gather(
            *(one(stack, token, good) for _ in range(FLOOD_CONNECTIONS))
        )
        assert set(outcomes) <= {None, schema.CloseCode.RATE_LIMITED}, outcomes
        return outcomes.count(None)

    async def again(stack: contextlib.AsyncExitStack, token: str, good: GoodPair) -> bool:
        """In once the broker has seen the flood's sockets close (a few tries at most)."""
        for _ in range(50):
            if await one(stack, token, good) is None:
                return True
        return False

    async with good_pair(broker.url, secrets, "good-flood") as good:
        async with contextlib.AsyncExitStack() as stack:
            # The token's cap first; then a second token fills what the address has left.
            first = await flood(stack, "hostile", good)
            second = await flood(stack, "hostile-2", good)
            await good.round()  # served while the address is at its cap
        # Every slot the floods held is free again.
        async with contextlib.AsyncExitStack() as stack:
            refilled = [await again(stack, "hostile", good) for _ in range(first)]
            refilled += [await again(stack, "hostile-2", good) for _ in range(second)]
        await good.finish()
    assert first == TOKEN_CAP
    assert second == ADDRESS_CAP - 2 - TOKEN_CAP  # the good pair holds two
    assert all(refilled)
    assert_healthy(broker, since)


async def test_a_publish_flood_is_cut_off_and_the_good_worker_keeps_its_acks(
    target: Target,
) -> None:
    broker, secrets = target.broker, target.secrets
    since = len(broker.logs)
    codes = []
    async with good_pair(broker.url, secrets, "good-rate", batch=1) as good:
        for flood in range(3):
            # Into the good worker's own workspace, with a token made for it.
            hello = worker_hello("good-rate", f"flood-{flood}", token=secrets["flooder"])
            async with wire_client(broker.url, hello) as client:
                refusal = await _flood(client, good, limit=20 * EVENTS_PER_S)
                assert refusal.code is schema.ErrorCode.RATE_LIMITED
                codes.append(await closed_with(client))
        await good.finish()
    assert codes == [schema.CloseCode.RATE_LIMITED] * 3
    assert good.rounds >= 3
    assert_healthy(broker, since)


async def _flood(client: WireClient, good: GoodPair, *, limit: int) -> schema.ErrorReply:
    """Publish full batches with up to ``FLOOD_WINDOW`` unacknowledged, as fast as acks come,
    until refused; at most ``limit`` events. Stopping at the refusal keeps what is in flight
    small, so the broker's close is not stuck behind frames it no longer reads."""
    seq, acked = 1, 0
    while seq <= limit:
        while seq - 1 - acked < FLOOD_WINDOW * MAX_BATCH and seq <= limit:
            try:
                await client.publish(seq, _scalars(seq, MAX_BATCH))
            except ConnectionClosed:
                break  # refused meanwhile: the refusal is among the frames left to read
            seq += MAX_BATCH
            good.nudge()
        frame = await client.receive()
        if isinstance(frame, schema.Ack):
            acked = frame.seq
        elif isinstance(frame, schema.ErrorReply):
            return frame
    raise AssertionError(f"{limit} events published and never refused")


def _scalars(start: int, count: int) -> Sequence[schema.WorkerPayload]:
    return [schema.Scalar(name="flood", value=float(i)) for i in range(start, start + count)]


# Random frames --------------------------------------------------------------------------------

Case = tuple[str, Any]
"""``("bytes", b)`` and ``("text", s)`` go out as they are; ``("value", v)`` is encoded with
the connection's codec, ``("frame", f)`` is a client frame encoded with it."""

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=24)
)
_PLAUSIBLE = st.sampled_from(
    [
        *["junk-1", "junk-2", "junk*", "*", "good-fuzz", "fuzz-worker-0", "latest", "earliest"],
        *[0, 1, -1, 2**53, 2**63, 1e308, {}, [], {"junk-1": {"epoch": 1, "offset": 0}}],
    ]
)
_FIELDS = [
    "id", "seq", "events", "workspace", "run_id", "role", "protocol", "pattern", "from", "kinds",
    "details", "limit", "args", "payload", "sub", "call", "ok", "result", "error", "force",
    "wait", "timeout_s", "action", "reason", "before", "after", "series", "token", "actions",
]  # fmt: skip
_TAGS = [frame.__struct_config__.tag for frame in members(schema.ClientFrame)]


def _shaped(tag: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {"type": tag, **fields}


def _aimed(frame: Any, aim: bool) -> Any:
    """Point a generated frame at the hostile token's own workspaces, to get past the scope."""
    if not aim or isinstance(frame, schema.Hello):
        return frame
    aims = {"workspace": "junk-1", "pattern": "junk*", "run_id": "fuzz-worker-0"}
    changes = {name: value for name, value in aims.items() if name in frame.__struct_fields__}
    try:
        return msgspec.structs.replace(frame, **changes)
    except (ValueError, TypeError):
        return frame


_SHAPED = st.builds(
    _shaped,
    st.sampled_from([*_TAGS, "", "teleport"]),
    st.dictionaries(st.sampled_from(_FIELDS), _SCALARS | _PLAUSIBLE | json_values, max_size=6),
)
"""Frame-shaped maps: a known (or unknown) type with random values in its usual fields."""
_FRAMES = st.builds(
    _aimed, st.sampled_from(members(schema.ClientFrame)).flatmap(client_frames), st.booleans()
)
"""Well-formed frames of every type, with random field values."""
CASES: Final[st.SearchStrategy[Case]] = st.one_of(
    st.tuples(st.just("bytes"), st.binary(max_size=256)),
    st.tuples(st.just("text"), st.text(max_size=256)),
    st.tuples(st.just("value"), json_values),
    st.tuples(st.just("value"), _SHAPED),
    st.tuples(st.just("frame"), _FRAMES),
)


def generate(count: int, seed: int, out: Callable[[Case], None]) -> None:
    """Feed ``count`` hypothesis-generated cases to ``out``, one at a time."""

    @hypothesis_seed(seed)
    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(CASES)
    def feed(case: Case) -> None:
        out(case)

    feed()


def generator_main(argv: Sequence[str]) -> None:
    """The generator process: ``COUNT SEED``; writes length-prefixed pickled cases to stdout.

    Generating is CPU work that would hold the test process's GIL and starve its event loop
    (and with it the good clients), so it runs in a process of its own.
    """
    count, seed = (int(arg) for arg in argv)
    stdout = sys.stdout.buffer

    def out(case: Case) -> None:
        data = pickle.dumps(case)
        stdout.write(len(data).to_bytes(4, "big") + data)

    generate(count, seed, out)
    stdout.flush()


async def generated(count: int, seed: int, cases: asyncio.Queue[Case | None]) -> None:
    """Run the generator process and queue its cases, then None."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys; from tests.broker.test_hostile import generator_main;"
        " generator_main(sys.argv[1:])",
        str(count),
        str(seed),
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    assert process.stdout is not None
    try:
        while header := await process.stdout.read(4):
            if len(header) < 4:
                header += await process.stdout.readexactly(4 - len(header))
            size = int.from_bytes(header, "big")
            cases.put_nowait(pickle.loads(await process.stdout.readexactly(size)))
        assert await process.wait() == 0, "the generator failed"
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        cases.put_nowait(None)


def encoded(case: Case, codec: schema.Codec) -> bytes | str:
    kind, value = case
    if kind in ("bytes", "text"):
        assert isinstance(value, bytes | str)
        return value
    if kind == "frame":
        data = codec.encode(value)
    else:
        data = msgspec.json.encode(value) if codec.text else msgspec.msgpack.encode(value)
    return data.decode() if codec.text else data


@dataclass
class Tally:
    sent: int = 0
    probes: int = 0
    reopened: int = 0
    closes: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    refusals: list[str] = field(default_factory=list)


class Lane:
    """One hostile session fed random cases, in bursts each followed by a probe request."""

    def __init__(
        self,
        url: str,
        hello: schema.Hello,
        codec: schema.Codec,
        probe: Callable[[int], schema.ClientFrame],
        tally: Tally,
    ) -> None:
        self.url, self.hello, self.codec, self.probe, self.tally = url, hello, codec, probe, tally
        self.name = f"{hello.role}/{codec.subprotocol}"

    async def open(self) -> ClientConnection:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REOPEN_WITHIN_S
        while loop.time() < deadline:
            connection = await connect(
                self.url,
                subprotocols=[Subprotocol(self.codec.subprotocol)],
                compression=None,
                max_size=None,
                open_timeout=OPEN_TIMEOUT_S,
            )
            try:
                await connection.send(encoded(("frame", self.hello), self.codec))
                data = await asyncio.wait_for(connection.recv(decode=False), PROBE_TIMEOUT_S)
                reply = self.codec.decode_broker_frame(data)
                if isinstance(reply, schema.Welcome):
                    return connection
                # A workspace being deleted turns a worker away for a moment (1001).
                self.tally.refusals.append(f"{self.name}: {reply}")
            except ConnectionClosed:
                self.tally.refusals.append(f"{self.name}: closed {connection.close_code}")
            await connection.close()
            await asyncio.sleep(POLL_S)  # a poll of the delete's end, not a wait for it
        raise AssertionError(
            f"{self.name} refused for {REOPEN_WITHIN_S:g} s: {self.tally.refusals[-5:]}"
        )

    async def run(self, cases: asyncio.Queue[Case | None], good: GoodPair) -> None:
        """Bursts of generated cases until they run out, then the edge cases."""
        connection = await self.open()
        try:
            while burst := await _take(cases, BURST):
                connection = await self._burst(connection, burst)
                good.nudge()
            connection = await self._burst(connection, edge_cases())
            good.nudge()
        finally:
            await connection.close()

    async def _burst(self, connection: ClientConnection, burst: list[Case]) -> ClientConnection:
        """Send the cases and a probe; the connection to go on with (a new one if closed)."""
        try:
            for case in burst:
                await connection.send(encoded(case, self.codec))
                self.tally.sent += 1
            await self._probe(connection)
        except ConnectionClosed:
            self.tally.closes[connection.close_code or 1006] += 1
            self.tally.reopened += 1
            return await self.open()
        return connection

    async def _probe(self, connection: ClientConnection) -> None:
        """Send a request that is always answered, and read everything up to its answer."""
        self.tally.probes += 1
        probe_id = PROBE_BASE + self.tally.probes
        await connection.send(encoded(("frame", self.probe(probe_id)), self.codec))
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                while True:
                    frame = self.codec.decode_broker_frame(await connection.recv(decode=False))
                    if isinstance(frame, schema.ErrorReply):
                        self.tally.errors[frame.code.value] += 1
                    if getattr(frame, "id", None) == probe_id:
                        return
        except TimeoutError:
            raise AssertionError(f"{self.name}: probe {probe_id} unanswered") from None


def edge_cases() -> list[Case]:
    """Valid frames at the edges of their ranges, sent by every lane after the random ones, so
    that each run tries them whatever the generator happened to pick."""
    now = datetime.datetime.now(datetime.UTC)
    event = schema.Event(payload=schema.Scalar(name="edge", value=1.0), create_time=now)
    frames: list[schema.ClientFrame] = [
        schema.HistoryQuery(id=0, workspace="junk-1", after=MAX_COUNTER, limit=1000),
        schema.HistoryQuery(id=0, workspace="junk-1", before=MAX_COUNTER, after=MAX_COUNTER),
        schema.Subscribe(
            id=MAX_REQUEST_ID,
            pattern="junk*",
            from_={"junk-1": schema.Cursor(epoch=MAX_COUNTER, offset=MAX_COUNTER)},
        ),
        schema.MutexAcquire(id=MAX_REQUEST_ID, wait=True, timeout_s=MAX_TIMEOUT_S),
        schema.ActionCall(
            id=1, workspace="junk-1", run_id="fuzz-worker-0", action="a", timeout_s=MAX_TIMEOUT_S
        ),
        schema.Catch(id=1, reason="r" * 4096),
        schema.Publish(seq=MAX_COUNTER, events=[event]),
    ]
    return [*(("frame", frame) for frame in frames), ("value", seqs_past_the_top())]


def seqs_past_the_top() -> dict[str, Any]:
    """A publish whose second event's seq is 2**63, one past what the store holds. Plain data:
    a client need not run the schema's checks before sending."""
    event = {
        "payload": {"kind": "scalar", "name": "edge", "value": 1.0},
        "create_time": datetime.datetime.now(datetime.UTC).isoformat(),
    }
    return {"type": "publish", "seq": MAX_COUNTER, "events": [event, event]}


async def _take(cases: asyncio.Queue[Case | None], count: int) -> list[Case]:
    """Up to ``count`` cases; fewer (or none) once the generator is done."""
    burst: list[Case] = []
    while len(burst) < count:
        case = await cases.get()
        if case is None:
            cases.put_nowait(None)  # the end, for the other lanes too
            break
        burst.append(case)
    return burst


async def first_frames(
    url: str, cases: asyncio.Queue[Case | None], tally: Tally, good: GoodPair
) -> None:
    """Cases sent instead of a hello, each on a fresh connection; hellos are left out, since a
    refused token would count against the address in the failure throttle."""
    codec = schema.JSON_CODEC
    while tally.sent < PRE_HELLO_CASES and (burst := await _take(cases, 1)):
        data = encoded(burst[0], codec)
        with contextlib.suppress(schema.SchemaError):
            if isinstance(codec.decode_client_frame(data), schema.Hello):
                continue
        async with wire_client(url) as client:
            await client.send_raw(data)
            tally.sent += 1
            code = await closed_with(client)
            tally.closes[code or 1006] += 1
        good.nudge()


async def test_random_frames_from_hostile_sessions(target: Target) -> None:
    broker, secrets = target.broker, target.secrets
    since = len(broker.logs)
    seed = random.getrandbits(32)
    hostile = secrets["hostile"]
    cases: asyncio.Queue[Case | None] = asyncio.Queue()

    def stats(request_id: int) -> schema.ClientFrame:
        return schema.StatsRequest(id=request_id)

    def release(request_id: int) -> schema.ClientFrame:
        return schema.MutexRelease(id=request_id)

    tally, first = Tally(), Tally()
    action = schema.ActionSpec(name="a")
    lanes = [
        Lane(
            broker.url,
            # Workers offer an action, so that calls reach them (and are never answered).
            worker_hello(workspace, f"fuzz-worker-{index}", token=hostile, actions=[action])
            if role == "worker"
            else watcher_hello(token=hostile),
            codec,
            release if role == "worker" else stats,
            tally,
        )
        for index, (role, codec, workspace) in enumerate(
            [
                ("worker", schema.JSON_CODEC, "junk-1"),
                ("watcher", schema.JSON_CODEC, ""),
                ("worker", schema.MSGPACK_CODEC, "junk-2"),
                ("watcher", schema.MSGPACK_CODEC, ""),
            ]
        )
    ]
    async with good_pair(broker.url, secrets, "good-fuzz") as good:
        rounds_before = good.rounds
        try:
            async with asyncio.timeout(FUZZ_TIME_LIMIT_S), asyncio.TaskGroup() as tasks:
                tasks.create_task(generated(FUZZ_CASES, seed, cases))
                tasks.create_task(first_frames(broker.url, cases, first, good))
                for lane in lanes:
                    tasks.create_task(lane.run(cases, good))
        except BaseException as exc:
            exc.add_note(f"seed {seed}; {broker.describe()}")
            raise
        attack_rounds = good.rounds - rounds_before
        await good.finish()
    context = f"seed {seed}: {tally}, first frames: {first}"
    assert tally.sent + first.sent >= MIN_FUZZ_SENT, context
    assert first.sent == PRE_HELLO_CASES, context
    assert set(first.closes) <= {schema.CloseCode.PROTOCOL_ERROR, 1009}, context
    assert set(tally.closes) <= BROKER_CLOSE_CODES, context
    assert tally.errors[schema.ErrorCode.BAD_FRAME.value] > 0, context
    assert schema.ErrorCode.INTERNAL.value not in tally.errors, context
    assert attack_rounds >= 10, context
    assert good.slowest_round_s < ROUND_TIMEOUT_S
    assert_healthy(broker, since)


async def test_a_publish_at_the_top_of_the_seq_range_leaves_the_broker_serving(
    tmp_path: Path,
) -> None:
    """Found by the fuzzer: seqs ``2**63 - 1`` and ``2**63`` in one publish. The store cannot
    hold the second; the broker must refuse the frame, not let a failed commit stop it for
    everyone. Its own broker, so that the shared one survives for the other attacks even when
    this fails."""
    secrets = make_tokens(tmp_path / "data")
    hostile = worker_hello("junk-top", "top", token=secrets["hostile"])
    async with (
        broker_process(tmp_path / "data", "--auth", "token") as broker,
        good_pair(broker.url, secrets, "good-top") as good,
    ):
        async with wire_client(broker.url, hostile) as client:
            await client.send_raw(msgspec.json.encode(seqs_past_the_top()).decode())
            # Anything that answers: a request after it, so its outcome has come by the answer.
            await client.send(schema.MutexRelease(id=1))
            replies = [frame async for frame in _answers_up_to(client, 1)]
            good.nudge()
        try:
            await good.finish()
        except BaseException as exc:
            exc.add_note(f"the hostile worker got {replies}; {broker.describe()}")
            raise
        async with wire_client(broker.url, watcher_hello(token=secrets["watcher"])) as late:
            assert late.welcome is not None
        assert_healthy(broker)


async def _answers_up_to(client: WireClient, request_id: int) -> AsyncIterator[Any]:
    """Frames up to the answer to ``request_id``, or until the socket closes."""
    async with asyncio.timeout(PROBE_TIMEOUT_S):
        async for frame in client.frames_until_closed():
            yield frame
            if getattr(frame, "id", None) == request_id:
                return


async def test_the_broker_process_is_up_and_its_memory_bounded_after_the_attacks(
    target: Target,
) -> None:
    """Runs last: the memory the attacks above left behind, and the sessions they did not."""
    broker, secrets = target.broker, target.secrets
    before = target.rss_before_kib
    after = memory_kib(broker.process.pid)
    peak = memory_kib(broker.process.pid, "VmHWM")
    print(f"broker RSS: {before} -> {after} KiB (peak {peak} KiB)")  # noqa: T201
    async with (
        good_pair(broker.url, secrets, "good-after") as good,
        wire_client(broker.url, watcher_hello(token=secrets["admin"])) as admin,
    ):
        counters: dict[str, int | float] = {}
        for _ in range(100):
            report = await admin.request(schema.StatsRequest(id=admin.next_id()))
            assert isinstance(report, schema.StatsReport)
            counters = report.counters
            if (counters["workers"], counters["watchers"]) == (1, 2):
                break
        # Only the good pair and this session: no hostile session outlived its socket.
        assert (counters["workers"], counters["watchers"]) == (1, 2), counters
        await good.finish()
    assert after - before < RSS_GROWTH_LIMIT_KIB
    assert peak - before < RSS_GROWTH_LIMIT_KIB
    assert_healthy(broker)
