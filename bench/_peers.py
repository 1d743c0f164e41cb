"""The clients of the broker benchmarks, one process each: ``python -m bench._peers ROLE PARAMS``.

``PARAMS`` is a JSON object. Every role talks either to a pierhead broker (``"target":
"broker"``, over the real protocol) or to the bare relay (``"target": "relay"``, sending the
same encoded frames), so both sides of a comparison run the same client code. A role reports on
stdout with one JSON line per step (see :mod:`bench._procs`), takes commands on stdin, stops at
its ``deadline_s`` whatever happens, and exits when stdin closes.

Roles:

``publish``
    One worker connection. On ``warm`` it publishes ``warm`` events and answers ``warmed``;
    on ``go`` it publishes ``events`` more and answers ``result`` with the start time and, for
    the broker, the time the last cumulative ``ack`` arrived. ``mode`` is ``flood`` (batches
    of ``batch`` events with at most ``window`` batches unacknowledged; to the relay, as fast
    as the socket takes them) or ``paced`` (``rate`` events per second, each stamped with its
    send time). A flood sends :data:`LOG_EVENT` over and over unless ``payload`` is
    ``scalar``: then every event is built as it is sent, a ``Scalar`` named :data:`SCALAR_NAME`
    with the event's seq as its step, stamped with the time its batch was built. With
    ``error_every`` N (a ``log`` flood), every event whose seq is a multiple of N is
    :data:`ERROR_EVENT` instead, which sets off notifications.
``watch``
    ``connections`` watcher connections following ``pattern``. Answers ``ready`` once all are
    subscribed, ``warmed`` once each has received ``warm`` events, and ``result`` once each has
    received ``warm + events``, with the time of the last arrival and, with ``latency``, every
    event's delay from its send time.
``operator``
    On ``go``, sends ``count`` alternate ``catch`` and ``release`` requests for ``workspace``,
    ``gap_s`` apart, and answers ``result`` with their send times.
``catch_worker``
    A worker of ``workspace`` that records when each ``semaphores`` push arrives, until it has
    ``count`` of them.
``sdk_publish``
    An SDK ``Worker`` of ``workspace`` (broker only), with its default batching: on ``warm``
    and on ``go`` it enqueues ``warm`` (then ``events``) ``Scalar`` events named
    :data:`SCALAR_NAME` with ``await worker.scalar(...)`` and waits for ``flush()``. Answers
    ``result`` like ``publish``: the start time and the time the flush returned.
``sessions``
    Watcher sessions opened and closed one after another (broker only) from ``concurrency``
    loops side by side: connect, ``hello``, ``welcome``, close. On ``warm`` it opens ``warm``
    of them, on ``go`` ``sessions`` more, and answers ``result`` with the start and end times.

With a ``token`` in ``PARAMS``, every ``hello`` presents it (a broker run with ``--auth token``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import random
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from typing import Any, Final

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

import schema
import sdk

from . import codec as codec_bench
from ._relay import READY

CODECS: Final = {"json": schema.JSON_CODEC, "msgpack": schema.MSGPACK_CODEC}

LOG_EVENT: Final = codec_bench.sample_frame().events[0]
"""The flood's event: a ~200-byte ``LogRecord``, as in the codec benchmark."""

ERROR_EVENT: Final = schema.Event(
    payload=schema.WorkspaceEvent(
        message="checkpoint write failed: No space left on device", severity="error"
    ),
    create_time=LOG_EVENT.create_time,
)
"""A ``WorkspaceEvent`` of severity ``error``: what a ``--notify`` sink's ``event`` trigger
posts. A ``log`` flood with ``error_every`` mixes it in."""

ENVELOPE_FIRST_OFFSET: Final = 1_000_001
"""Offset and seq of the first event in the relay's ``events`` frames: numbers as long as a
broker sends a million events into a stream."""


def envelope_frame(
    codec: schema.Codec, events: Sequence[schema.Event], *, workspace: str, run_id: str
) -> bytes:
    """The ``events`` frame a broker would send a watcher for ``events``, each in its full
    envelope; what the relay forwards when the publisher sends ``events`` frames."""
    stamped = schema.stamp(
        events,
        workspace=workspace,
        run_id=run_id,
        first_offset=ENVELOPE_FIRST_OFFSET,
        first_seq=ENVELOPE_FIRST_OFFSET,
        received_time=datetime.datetime.now(datetime.UTC),
    )
    return codec.encode(schema.Events(sub=1, events=stamped))


SCALAR_NAME: Final = "loss"
"""Name of the ``Scalar`` events of a ``scalar`` flood and of the SDK worker."""

STAMP_NAME: Final = "publish_to_watcher"
"""Name of the paced events' ``Scalar``; its ``step`` is the send time in ns since the epoch."""

OPEN_TIMEOUT_S: Final = 20.0

Params = dict[str, Any]


def emit(kind: str, **fields: Any) -> None:
    print(json.dumps({"kind": kind, **fields}), flush=True)


# Just enough of a frame to count events and read their stamps. It decodes both the broker's
# `events` frames and the `publish` frames the relay forwards; unknown fields are skipped.
class _Payload(msgspec.Struct):
    kind: str = ""
    step: int | None = None


class _Event(msgspec.Struct):
    payload: _Payload


class _Frame(msgspec.Struct):
    type: str = ""
    events: list[_Event] = []


_LIGHT_DECODERS: Final[dict[str, Callable[[bytes], _Frame]]] = {
    "json": msgspec.json.Decoder(_Frame).decode,
    "msgpack": msgspec.msgpack.Decoder(_Frame).decode,
}


class Commands:
    """Command lines from stdin, read on the event loop.

    End of input means the benchmark that started this process is gone: the role is cancelled.
    """

    def __init__(self, role: asyncio.Task[None]) -> None:
        self._role = role
        self._lines: asyncio.Queue[str] = asyncio.Queue()
        self._buffer = b""
        self._fd = sys.stdin.fileno()
        asyncio.get_running_loop().add_reader(self._fd, self._readable)

    def _readable(self) -> None:
        data = os.read(self._fd, 4096)
        if not data:
            asyncio.get_running_loop().remove_reader(self._fd)
            self._role.cancel()
            return
        self._buffer += data
        while b"\n" in self._buffer:
            line, _, self._buffer = self._buffer.partition(b"\n")
            self._lines.put_nowait(line.decode().strip())

    async def expect(self, command: str) -> None:
        line = await self._lines.get()
        if line != command:
            raise RuntimeError(f"got command {line!r} while waiting for {command!r}")


async def _open(stack: AsyncExitStack, params: Params, path: str = "") -> ClientConnection:
    codec = CODECS[params["codec"]]
    subprotocols = [Subprotocol(codec.subprotocol)] if params["target"] == "broker" else None
    return await stack.enter_async_context(
        connect(
            params["url"] + path,
            subprotocols=subprotocols,
            compression=None,
            max_size=None,
            open_timeout=OPEN_TIMEOUT_S,
        )
    )


async def _send(ws: ClientConnection, codec: schema.Codec, frame: schema.ClientFrame) -> None:
    await ws.send(codec.encode(frame), text=codec.text)


async def _receive(ws: ClientConnection, codec: schema.Codec) -> schema.BrokerFrame:
    frame = codec.decode_broker_frame(await ws.recv(decode=False))
    if isinstance(frame, schema.ErrorReply):
        raise RuntimeError(f"the broker refused a frame: {frame.code}: {frame.message}")
    return frame


async def _hello(ws: ClientConnection, codec: schema.Codec, hello: schema.Hello) -> None:
    await _send(ws, codec, hello)
    reply = await _receive(ws, codec)
    if not isinstance(reply, schema.Welcome):
        raise RuntimeError(f"expected welcome, got {type(reply).__name__}")


async def _reply(ws: ClientConnection, codec: schema.Codec, request_id: int) -> None:
    """Wait for the broker's answer to request ``request_id``; it must be ``ok``."""
    while True:
        frame = await _receive(ws, codec)
        if isinstance(frame, schema.Ok) and frame.id == request_id:
            return


async def _relay_subscribe(ws: ClientConnection) -> None:
    first = await ws.recv(decode=False)
    if first != READY:
        raise RuntimeError(f"the relay greeted with {first!r}")


def _worker_hello(params: Params) -> schema.Hello:
    return schema.Hello(
        protocol=1,
        role="worker",
        client="pierhead-bench",
        token=params.get("token"),
        workspace=params["workspace"],
        run_id=params["run_id"],
    )


# publish ------------------------------------------------------------------------------------


class Acks:
    """The highest cumulative ``ack``, read by a task beside the publisher."""

    def __init__(self) -> None:
        self.acked = 0
        self.failure: BaseException | None = None
        self._changed = asyncio.Event()

    async def read(self, ws: ClientConnection, codec: schema.Codec) -> None:
        try:
            while True:
                frame = await _receive(ws, codec)
                if isinstance(frame, schema.Ack):
                    self.acked = max(self.acked, frame.seq)
                    self._changed.set()
        except Exception as exc:
            self.failure = exc
            self._changed.set()

    async def reach(self, seq: int) -> None:
        """Wait until every event up to ``seq`` is acknowledged."""
        while self.acked < seq:
            if self.failure is not None:
                raise RuntimeError(f"reading acks failed: {self.failure!r}")
            self._changed.clear()
            await self._changed.wait()


class Publisher:
    def __init__(self, ws: ClientConnection, params: Params, acks: Acks | None) -> None:
        self.ws = ws
        self.codec = CODECS[params["codec"]]
        self.params = params
        self.acks = acks
        self.seq = 1
        self._envelopes = params.get("frames") == "events"
        self._envelope_frames: dict[int, bytes] = {}
        """By event count. The same frame each time: the relay does not read it, and the
        watchers only count its events."""

    async def _send(self, events: list[schema.Event]) -> None:
        if self._envelopes:
            frame = self._envelope_frames.get(len(events))
            if frame is None:
                frame = self._envelope_frames[len(events)] = envelope_frame(
                    self.codec,
                    events,
                    workspace=self.params["workspace"],
                    run_id=self.params["run_id"],
                )
        else:
            frame = self.codec.encode(schema.Publish(seq=self.seq, events=events))
        await self.ws.send(frame, text=self.codec.text)
        self.seq += len(events)

    async def _acked(self, last: int) -> int:
        if self.acks is not None:
            await self.acks.reach(last)
        return time.time_ns()

    async def flood(self, count: int) -> int:
        """Publish ``count`` events; the time they are all acknowledged (broker) or sent."""
        batch, acks = self.params["batch"], self.acks
        in_flight_limit = self.params["window"] * batch
        scalars = self.params.get("payload", "log") == "scalar"
        last = self.seq + count - 1
        while self.seq <= last:
            size = min(batch, last - self.seq + 1)
            if acks is not None:
                # Room for this frame: what would then be unacknowledged fits in the window.
                room_from = self.seq - 1 + size - in_flight_limit
                await acks.reach(room_from)
            await self._send(self._scalars(size) if scalars else self._logs(size))
        return await self._acked(last)

    def _logs(self, size: int) -> list[schema.Event]:
        """The next ``size`` events of a ``log`` flood: :data:`LOG_EVENT`, with
        :data:`ERROR_EVENT` at each seq that is a multiple of ``error_every``."""
        events = [LOG_EVENT] * size
        every = self.params.get("error_every", 0)
        if every:
            for index in range(-self.seq % every, size, every):
                events[index] = ERROR_EVENT
        return events

    def _scalars(self, size: int) -> list[schema.Event]:
        """The next ``size`` events of a ``scalar`` flood, built now, as a raw client would."""
        created = datetime.datetime.now(datetime.UTC)
        return [
            schema.Event(
                payload=schema.Scalar(name=SCALAR_NAME, value=0.5, step=self.seq + index),
                create_time=created,
            )
            for index in range(size)
        ]

    async def paced(self, count: int) -> int:
        """Publish ``count`` events at ``rate`` per second, each stamped with its send time."""
        rate, tick, batch = self.params["rate"], self.params["tick_s"], self.params["batch"]
        loop = asyncio.get_running_loop()
        last = self.seq + count - 1
        start = loop.time()
        sent = 0
        while sent < count:
            due = min(count, int((loop.time() - start) * rate) + 1) - sent
            if due > 0:
                size = min(due, batch)
                created = datetime.datetime.now(datetime.UTC)
                stamp = time.time_ns()
                await self._send(
                    [
                        schema.Event(
                            payload=schema.Scalar(
                                name=STAMP_NAME, value=float(self.seq + index), step=stamp
                            ),
                            create_time=created,
                        )
                        for index in range(size)
                    ]
                )
                sent += size
            ticks_done = int((loop.time() - start) / tick) + 1
            await asyncio.sleep(max(0.0, start + ticks_done * tick - loop.time()))
        return await self._acked(last)


async def publish(params: Params, commands: Commands) -> None:
    codec = CODECS[params["codec"]]
    acks: Acks | None = None
    async with AsyncExitStack() as stack:
        if params["target"] == "broker":
            if params.get("frames", "publish") != "publish":
                raise RuntimeError("a worker sends the broker `publish` frames only")
            ws = await _open(stack, params)
            await _hello(ws, codec, _worker_hello(params))
            tracker = acks = Acks()
            reader = asyncio.create_task(tracker.read(ws, codec))
            stack.callback(reader.cancel)
        else:
            ws = await _open(stack, params, "/pub/text" if codec.text else "/pub/binary")
        publisher = Publisher(ws, params, acks)
        run = publisher.flood if params["mode"] == "flood" else publisher.paced
        emit("ready")
        await commands.expect("warm")
        await run(params["warm"])
        emit("warmed")
        await commands.expect("go")
        cpu = time.process_time()
        start_ns = time.time_ns()
        end_ns = await run(params["events"])
        cpu_s = time.process_time() - cpu
        emit("result", start_ns=start_ns, end_ns=end_ns, events=params["events"], cpu_s=cpu_s)


# watch --------------------------------------------------------------------------------------


class Follower:
    """One watcher connection's count of the events it was sent."""

    __slots__ = ("count", "frames", "last_ns", "latencies_us", "warmed")

    def __init__(self) -> None:
        self.count = 0
        self.frames = 0
        """Frames that brought measured events (after the warm-up)."""
        self.last_ns = 0
        self.warmed = False
        self.latencies_us: list[int] = []


async def _follow(
    ws: ClientConnection, follower: Follower, params: Params, on_warm: Callable[[], None]
) -> None:
    decode = _LIGHT_DECODERS[params["codec"]]
    kind, warm, latency = params["payload_kind"], params["warm"], params["latency"]
    total = warm + params["events"]
    if warm == 0:
        follower.warmed = True
        on_warm()
    while follower.count < total:
        data = await ws.recv(decode=False)
        now = time.time_ns()
        frame = decode(data)
        if frame.type in ("gap", "error", "removed"):
            raise RuntimeError(f"unexpected {frame.type!r} frame: {bytes(data)[:300]!r}")
        before = follower.count
        for event in frame.events:
            payload = event.payload
            if payload.kind != kind:
                continue  # presence and other broker-made events
            follower.count += 1
            if latency and follower.count > warm and payload.step is not None:
                follower.latencies_us.append((now - payload.step) // 1000)
        if follower.count > max(before, warm):
            follower.frames += 1
        follower.last_ns = now
        if not follower.warmed and follower.count >= warm:
            follower.warmed = True
            on_warm()
    if follower.count != total:
        raise RuntimeError(f"received {follower.count} events, {total} were published")


async def _watcher_connection(stack: AsyncExitStack, params: Params) -> ClientConnection:
    codec = CODECS[params["codec"]]
    if params["target"] != "broker":
        ws = await _open(stack, params, "/sub")
        await _relay_subscribe(ws)
        return ws
    ws = await _open(stack, params)
    hello = schema.Hello(
        protocol=1, role="watcher", client="pierhead-bench", token=params.get("token")
    )
    await _hello(ws, codec, hello)
    await _send(ws, codec, schema.Subscribe(id=1, pattern=params["pattern"], from_="latest"))
    while not isinstance(await _receive(ws, codec), schema.Subscribed):
        pass
    return ws


async def watch(params: Params, commands: Commands) -> None:
    followers = [Follower() for _ in range(params["connections"])]
    warmed = 0
    cpu = 0.0

    def on_warm() -> None:
        nonlocal warmed, cpu
        warmed += 1
        if warmed == len(followers):
            cpu = time.process_time()
            emit("warmed")

    async with AsyncExitStack() as stack:
        sockets = await asyncio.gather(*(_watcher_connection(stack, params) for _ in followers))
        emit("ready")
        async with asyncio.TaskGroup() as tasks:
            for ws, follower in zip(sockets, followers, strict=True):
                tasks.create_task(_follow(ws, follower, params, on_warm))
    latencies = [value for follower in followers for value in follower.latencies_us]
    emit(
        "result",
        events=sum(follower.count - params["warm"] for follower in followers),
        frames=sum(follower.frames for follower in followers),
        last_ns=max(follower.last_ns for follower in followers),
        latencies_us=latencies,
        cpu_s=time.process_time() - cpu,
    )


# catch --------------------------------------------------------------------------------------


async def operator(params: Params, commands: Commands) -> None:
    codec = CODECS[params["codec"]]
    broker = params["target"] == "broker"
    workspace, gap_s = params["workspace"], params["gap_s"]
    sent_ns: list[int] = []
    async with AsyncExitStack() as stack:
        if broker:
            ws = await _open(stack, params)
            hello = schema.Hello(protocol=1, role="watcher", client="pierhead-bench-operator")
            await _hello(ws, codec, hello)
        else:
            ws = await _open(stack, params, "/pub/text" if codec.text else "/pub/binary")
        emit("ready")
        await commands.expect("go")
        for index in range(params["count"]):
            request_id = index + 1
            frame: schema.ClientFrame = (
                schema.Catch(id=request_id, workspace=workspace)
                if index % 2 == 0
                else schema.Release(id=request_id, workspace=workspace)
            )
            data = codec.encode(frame)
            sent_ns.append(time.time_ns())
            await ws.send(data, text=codec.text)
            if broker:
                await _reply(ws, codec, request_id)
            # Jittered, so that the requests do not fall into step with a timer of the broker.
            await asyncio.sleep(gap_s * random.uniform(1.0, 1.5))
    emit("result", sent_ns=sent_ns)


async def catch_worker(params: Params, commands: Commands) -> None:
    codec = CODECS[params["codec"]]
    pushes: list[tuple[int, bool]] = []
    async with AsyncExitStack() as stack:
        if params["target"] == "broker":
            ws = await _open(stack, params)
            await _hello(ws, codec, _worker_hello(params))
            emit("ready")
            while len(pushes) < params["count"]:
                frame = await _receive(ws, codec)
                if isinstance(frame, schema.SemaphoresPush):
                    pushes.append((time.time_ns(), frame.caught))
        else:
            ws = await _open(stack, params, "/sub")
            await _relay_subscribe(ws)
            emit("ready")
            decode = _LIGHT_DECODERS[params["codec"]]
            while len(pushes) < params["count"]:
                kind = decode(await ws.recv(decode=False)).type
                pushes.append((time.time_ns(), kind == "catch"))
    emit("result", pushes=pushes)


# sessions -----------------------------------------------------------------------------------


async def _open_sessions(params: Params, count: int) -> None:
    """``count`` sessions, from ``concurrency`` loops side by side, each opened and closed in
    turn: connect, hello, welcome, close."""
    codec = CODECS[params["codec"]]
    hello = schema.Hello(
        protocol=1, role="watcher", client="pierhead-bench", token=params.get("token")
    )

    async def loop(sessions: int) -> None:
        for _ in range(sessions):
            async with AsyncExitStack() as stack:
                await _hello(await _open(stack, params), codec, hello)

    concurrency = params["concurrency"]
    share, extra = divmod(count, concurrency)
    await asyncio.gather(
        *(loop(share + (1 if index < extra else 0)) for index in range(concurrency))
    )


async def sessions(params: Params, commands: Commands) -> None:
    if params["target"] != "broker":
        raise RuntimeError("sessions are opened with a broker")
    emit("ready")
    await commands.expect("warm")
    await _open_sessions(params, params["warm"])
    emit("warmed")
    await commands.expect("go")
    cpu = time.process_time()
    start_ns = time.time_ns()
    await _open_sessions(params, params["sessions"])
    end_ns = time.time_ns()
    cpu_s = time.process_time() - cpu
    emit("result", start_ns=start_ns, end_ns=end_ns, sessions=params["sessions"], cpu_s=cpu_s)


# sdk_publish --------------------------------------------------------------------------------


async def _enqueue_scalars(worker: sdk.Worker, first_step: int, count: int) -> None:
    scalar = worker.scalar
    for step in range(first_step, first_step + count):
        await scalar(SCALAR_NAME, 0.5, step=step)


async def sdk_publish(params: Params, commands: Commands) -> None:
    if params["target"] != "broker":
        raise RuntimeError("the SDK worker only talks to a broker")
    warm, events = params["warm"], params["events"]
    async with sdk.Worker(params["url"], params["workspace"], run_id=params["run_id"]) as worker:
        await worker.connected()
        emit("ready")
        await commands.expect("warm")
        await _enqueue_scalars(worker, 0, warm)
        await worker.flush()
        emit("warmed")
        await commands.expect("go")
        cpu = time.process_time()
        start_ns = time.time_ns()
        await _enqueue_scalars(worker, warm, events)
        await worker.flush()
        end_ns = time.time_ns()
        cpu_s = time.process_time() - cpu
        counters = worker.counters
    if counters["acked"] != warm + events or counters["dropped"]:
        raise RuntimeError(f"{warm + events} events enqueued, the outbox says {counters}")
    emit("result", start_ns=start_ns, end_ns=end_ns, events=events, cpu_s=cpu_s)


Role = Callable[[Params, Commands], Awaitable[None]]

ROLES: Final[dict[str, Role]] = {
    "publish": publish,
    "watch": watch,
    "operator": operator,
    "catch_worker": catch_worker,
    "sdk_publish": sdk_publish,
    "sessions": sessions,
}


async def _run(role: Role, params: Params) -> None:
    task = asyncio.current_task()
    assert task is not None
    commands = Commands(task)
    deadline_s = params["deadline_s"]
    try:
        async with asyncio.timeout(deadline_s):
            await role(params, commands)
    except TimeoutError:
        raise RuntimeError(f"not done within its deadline of {deadline_s:g} s") from None


def main(argv: Sequence[str] | None = None) -> int:
    role_name, raw_params = sys.argv[1:3] if argv is None else argv
    try:
        asyncio.run(_run(ROLES[role_name], json.loads(raw_params)))
    except asyncio.CancelledError:
        return 1  # stdin closed: nobody is left to report to
    except Exception as exc:
        traceback.print_exc()
        with contextlib.suppress(BrokenPipeError):
            emit("error", message=f"{type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
