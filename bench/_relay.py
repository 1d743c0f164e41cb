"""The baseline of the broker benchmarks: a bare websockets relay, ``python -m bench._relay``.

It forwards every message of a publisher connection, unchanged and unparsed, to every
subscriber connection, and stores nothing: what is left of a broker once sessions, decoding,
durability and the state fold are taken away. It is what the same websockets library on the
same machine manages, so the broker's figures are read against it.

Paths: ``/sub`` subscribes (the relay answers ``{"type":"relay_ready"}`` once the connection
is counted), ``/pub/text`` and ``/pub/binary`` publish (messages are forwarded as text or
binary frames). It prints ``{"kind": "listening", "port": N}`` on stdout once it accepts
connections, and runs until SIGTERM, until stdin closes, or for ``--lifetime`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Sequence
from typing import Final

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

READY: Final = b'{"type":"relay_ready"}'
"""Sent to a subscriber once it receives everything published from then on."""

HIGH_WATER_BYTES: Final = 64 * 1024
"""A subscriber with more than this queued in user space holds the publisher back."""

LIFETIME_S: Final = 900.0


class Relay:
    def __init__(self) -> None:
        self.subscribers: set[ServerConnection] = set()

    async def handle(self, connection: ServerConnection) -> None:
        path = connection.request.path if connection.request is not None else ""
        if path == "/sub":
            await self._subscriber(connection)
        elif path in ("/pub/text", "/pub/binary"):
            await self._publisher(connection, text=path == "/pub/text")
        else:
            await connection.close(4004, "unknown path")

    async def _subscriber(self, connection: ServerConnection) -> None:
        try:
            await connection.send(READY, text=True)
        except ConnectionClosed:
            return
        self.subscribers.add(connection)
        try:
            await connection.wait_closed()
        finally:
            self.subscribers.discard(connection)

    async def _publisher(self, connection: ServerConnection, *, text: bool) -> None:
        subscribers = self.subscribers
        with contextlib.suppress(ConnectionClosed):
            while True:
                message = await connection.recv(decode=False)
                broadcast(subscribers, message, text=text)
                # broadcast() never waits; without this, a subscriber slower than the publisher
                # would queue without bound. Wait for it, as a broker's outbox would.
                for subscriber in list(subscribers):
                    if subscriber.transport.get_write_buffer_size() > HIGH_WATER_BYTES:
                        await subscriber.drain()


async def _serve(lifetime_s: float) -> None:
    relay = Relay()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    # Stdin closing means the benchmark that started this process is gone.
    loop.add_reader(sys.stdin.fileno(), _on_stdin, stop)
    async with serve(
        relay.handle,
        "127.0.0.1",
        0,
        compression=None,
        max_size=None,
        ping_interval=None,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        print(json.dumps({"kind": "listening", "port": port}), flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), lifetime_s)


def _on_stdin(stop: asyncio.Event) -> None:
    if not os.read(sys.stdin.fileno(), 4096):
        asyncio.get_running_loop().remove_reader(sys.stdin.fileno())
        stop.set()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench._relay", description=__doc__)
    parser.add_argument("--lifetime", type=float, default=LIFETIME_S, help="seconds at most")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.lifetime))
    return 0


if __name__ == "__main__":
    sys.exit(main())
