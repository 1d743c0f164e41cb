"""``FaultProxy``: a loopback TCP proxy that cuts, refuses, stalls, delays and throttles.

Put it between a websocket client and a broker (or any TCP server) to see how both sides
cope with a bad network, without changing either::

    async with running_broker() as broker, FaultProxy(broker.port) as proxy:
        async with connect(proxy.url) as websocket:  # through the proxy
            proxy.stall(True)  # frames are held from now on, in both directions
            ...
            proxy.stall(False)  # and flow again, none lost

Every command takes effect at once and can be given at any time, also between two awaits
of a running exchange. Commands are for the event loop the proxy runs on; call them from that
loop, not from another thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections import deque
from types import TracebackType

HOLD_LIMIT = 1024 * 1024
"""Bytes one direction of one connection may hold; past this the proxy stops reading, so a
stalled, delayed or throttled connection pushes back on its sender like a slow network."""
CHUNK = 64 * 1024
"""The most bytes read from a socket at once."""
_SLICES_PER_SECOND = 20
"""A throttled direction sends this many slices a second, so throughput stays even and a new
rate applies within one slice, instead of a whole chunk going out at once and then a long
pause."""


class FaultProxy:
    """A TCP proxy on 127.0.0.1 and a free port in front of ``target_host:target_port``.

    Each connection to ``port`` gets its own connection to the target, made when it is
    accepted. ``target_host`` and ``target_port`` may be changed at any time: new connections
    go to the new target (a broker restarted on a new port), open ones stay where they are.

    Counters: ``connections_total`` (connections forwarded, refused ones not included),
    ``open_connections``, ``refusals``, ``cuts`` (connections aborted by ``cut()``),
    ``bytes_up`` (forwarded to the target), ``bytes_down`` (forwarded to clients) and
    ``bytes_held`` (received, not forwarded yet).
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.connections_total = 0
        self.refusals = 0
        self.cuts = 0
        self.bytes_up = 0
        self.bytes_down = 0
        self._server: asyncio.Server | None = None
        self._closed = False
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._refusing = False
        self._stalled = False
        self._delay = 0.0
        self._rate: int | None = None
        # Set, then replaced by a fresh one, on every command: whatever waits on the current
        # settings (a stall, a delay, a throttle slice) wakes up and looks at them again.
        self._changed = asyncio.Event()

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Listen on 127.0.0.1 and a free port (``port``)."""
        assert self._server is None, "the proxy was already started"
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, limit=CHUNK)

    async def close(self) -> None:
        """Stop listening, abort every connection and wait until nothing of the proxy runs."""
        self._closed = True
        if self._server is not None:
            self._server.close()
        for link in self._links:
            link.reset()
        self._links.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        for result in results:
            # Cancellation is how the tasks end here; anything else is a bug worth seeing.
            if isinstance(result, Exception):
                raise result

    @property
    def port(self) -> int:
        """The port the proxy listens on."""
        assert self._server is not None, "the proxy is not running"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:PORT``: connect here instead of to the target."""
        return f"ws://127.0.0.1:{self.port}"

    @property
    def open_connections(self) -> int:
        """Client connections accepted and neither closed nor cut yet."""
        return len(self._links)

    @property
    def bytes_held(self) -> int:
        """Bytes received from either side and not forwarded yet, over all connections."""
        return sum(pipe.held_bytes for link in self._links for pipe in link.pipes)

    def cut(self) -> None:
        """Abort every open connection now, on both sides, with a TCP reset.

        Whatever is held is dropped and neither side gets a websocket close frame: clients
        see close code 1006. New connections are accepted as before.
        """
        links = list(self._links)
        self._links.clear()
        for link in links:
            link.reset()
            self.cuts += 1
            if link.task is not None:
                link.task.cancel()

    def refuse(self, on: bool = True) -> None:
        """While on, close every new connection as soon as it is accepted (with a reset).

        Open connections are left alone; connecting through the proxy fails.
        """
        self._refusing = on

    def stall(self, on: bool = True) -> None:
        """While on, forward nothing in either direction; bytes are held, not dropped.

        Connections stay open and a stalled sender is pushed back once ``HOLD_LIMIT`` bytes
        are held. Off again, everything held flows on in order.
        """
        self._stalled = on
        self._wake()

    def delay(self, seconds: float) -> None:
        """Forward every chunk ``seconds`` after it arrived, each direction (0: no delay).

        The order is kept: a chunk never overtakes an earlier one, also when the delay changes
        while chunks wait. The new delay applies to chunks already waiting, too.
        """
        if seconds < 0:
            raise ValueError(f"a delay cannot be negative: {seconds}")
        self._delay = float(seconds)
        self._wake()

    def throttle(self, bytes_per_second: int | None) -> None:
        """Forward at most ``bytes_per_second`` per direction per connection (None: no cap)."""
        if bytes_per_second is not None and bytes_per_second <= 0:
            raise ValueError(f"a throttle must be positive or None: {bytes_per_second}")
        self._rate = bytes_per_second
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A plain callback rather than a coroutine: asyncio does not keep the tasks it makes
        # for coroutine callbacks, and the proxy must be able to cancel and await every task.
        if self._refusing or self._closed:
            self.refusals += 1
            _reset(writer.transport)
            return
        self.connections_total += 1
        link = _Link(writer)
        self._links.add(link)
        task = asyncio.create_task(self._serve(link, reader))
        link.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, link: _Link, client_reader: asyncio.StreamReader) -> None:
        clean = False
        try:
            target_reader, target_writer = await asyncio.open_connection(
                self.target_host, self.target_port, limit=CHUNK
            )
            link.target = target_writer
            link.pipes = [
                _Pipe(self, client_reader, target_writer, upstream=True),
                _Pipe(self, target_reader, link.client, upstream=False),
            ]
            async with asyncio.TaskGroup() as group:
                for pipe in link.pipes:
                    group.create_task(pipe.receive())
                    group.create_task(pipe.forward())
            clean = True
        except* OSError:
            # A target that cannot be reached, or a reset or write error on either side: the
            # other side gets a reset too, the way a broken network path looks to both ends.
            pass
        finally:
            self._links.discard(link)
            if clean:
                # Both sides closed their sending half and everything was forwarded.
                link.close()
            else:
                link.reset()


class _Link:
    """One client connection and the proxy's connection to the target for it."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.target: asyncio.StreamWriter | None = None
        self.pipes: list[_Pipe] = []
        self.task: asyncio.Task[None] | None = None

    def reset(self) -> None:
        _reset(self.client.transport)
        if self.target is not None:
            _reset(self.target.transport)

    def close(self) -> None:
        self.client.close()
        if self.target is not None:
            self.target.close()


class _Pipe:
    """One direction of a link: ``receive()`` reads into a held queue, ``forward()`` sends
    from it when the proxy's settings let it.

    Two tasks, not one, so a delay is latency rather than a pause per chunk: chunks keep
    arriving and each waits out its own delay, counted from when it arrived.
    """

    def __init__(
        self,
        proxy: FaultProxy,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        *,
        upstream: bool,
    ) -> None:
        self._proxy = proxy
        self._source = source
        self._sink = sink
        self._upstream = upstream
        # (arrival time, bytes); b"" marks the sender's end of stream.
        self._held: deque[tuple[float, bytes]] = deque()
        self.held_bytes = 0
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        self._next_slice_at = 0.0
        """When the throttle lets the next slice go (0: not throttled until now)."""

    async def receive(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            # Not reading is the backpressure: the socket buffers fill up and the sender's
            # writes block, instead of the proxy holding an unbounded amount of memory.
            while self.held_bytes >= HOLD_LIMIT:
                self._room.clear()
                await self._room.wait()
            data = await self._source.read(CHUNK)
            self._held.append((loop.time(), data))
            self._arrived.set()
            if not data:
                return
            self.held_bytes += len(data)

    async def forward(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._held:
                self._arrived.clear()
                await self._arrived.wait()
            arrived, data = self._held[0]
            # The end of stream is held and delayed like bytes, so a stalled connection does
            # not close early, but it is not throttled: it takes no bandwidth.
            await self._wait_turn(arrived, throttled=bool(data))
            if not data:
                # Pass the sender's half-close on; the other direction may still carry data.
                self._sink.write_eof()
                return
            rate = self._proxy._rate
            size = len(data) if rate is None else max(1, rate // _SLICES_PER_SECOND)
            piece = data[:size]
            if len(piece) < len(data):
                self._held[0] = (arrived, data[len(piece) :])
            else:
                self._held.popleft()
            self.held_bytes -= len(piece)
            if self.held_bytes < HOLD_LIMIT:
                self._room.set()
            self._sink.write(piece)
            self._next_slice_at = 0.0 if rate is None else loop.time() + len(piece) / rate
            if self._upstream:
                self._proxy.bytes_up += len(piece)
            else:
                self._proxy.bytes_down += len(piece)
            await self._sink.drain()

    async def _wait_turn(self, arrived: float, *, throttled: bool) -> None:
        """Wait until the stall, the delay and the throttle all let the next bytes go."""
        loop = asyncio.get_running_loop()
        proxy = self._proxy
        while True:
            changed = proxy._changed
            if proxy._stalled:
                await changed.wait()
                continue
            due = arrived + proxy._delay
            if throttled and proxy._rate is not None:
                due = max(due, self._next_slice_at)
            wait = due - loop.time()
            if wait <= 0:
                return
            # Wake at the due time or at the next command, whichever comes first: a command
            # may move the due time either way.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await changed.wait()


def _reset(transport: asyncio.WriteTransport) -> None:
    """Close at once with a TCP reset, dropping anything unsent."""
    # A zero linger makes close() send RST instead of FIN, so the peer sees a connection reset
    # rather than an orderly end of stream. It fails harmlessly on a socket already closed.
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
