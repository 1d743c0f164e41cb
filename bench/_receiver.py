"""A notification receiver for ``notify-ingest``: ``python -m bench._receiver dead|live``.

``dead`` accepts every TCP connection and holds it open without ever reading an answer's worth
or writing a byte: a webhook whose server hangs. Unlike a closed port, the broker's sender
connects, sends its request and waits for an answer until its timeout. ``live`` answers every
HTTP/1.1 request ``200`` at once, on a kept-alive connection.

It prints ``{"kind": "listening", "port": N}`` on stdout once it accepts connections. On the
command ``report`` (a line on stdin) it answers ``{"kind": "report", "connections": C,
"requests": R}``: connections accepted and requests answered so far (``dead`` answers none). It
runs until SIGTERM, until stdin closes, or for ``--lifetime`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Sequence
from typing import Final, Literal

Mode = Literal["dead", "live"]

LIFETIME_S: Final = 1800.0
ANSWER: Final = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


def content_length(head: bytes) -> int:
    """The ``Content-Length`` of a request's head (its lines up to the blank one); 0 without."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


class Receiver:
    def __init__(self, mode: Mode) -> None:
        self.mode = mode
        self.connections = 0
        self.requests = 0
        self.open: set[asyncio.StreamWriter] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open.add(writer)
        try:
            if self.mode == "dead":
                # Read and drop whatever comes, so the sender's request is sent in full and it
                # waits for an answer, until it gives up and closes the connection.
                while await reader.read(65536):
                    pass
            else:
                await self._answer(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return  # the sender closed its connection between requests
            await reader.readexactly(content_length(head))
            writer.write(ANSWER)
            await writer.drain()
            self.requests += 1


async def _commands(receiver: Receiver, stop: asyncio.Event) -> None:
    """``report`` lines from stdin; end of input means the benchmark is gone."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        if line.strip() == b"report":
            report = {
                "kind": "report",
                "connections": receiver.connections,
                "requests": receiver.requests,
            }
            print(json.dumps(report), flush=True)
    stop.set()


async def _serve(mode: Mode, lifetime_s: float) -> None:
    receiver = Receiver(mode)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        print(json.dumps({"kind": "listening", "port": port}), flush=True)
        commands = asyncio.create_task(_commands(receiver, stop))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), lifetime_s)
        commands.cancel()
        # Held connections would keep the server's close waiting: end them.
        server.close()
        for writer in list(receiver.open):
            writer.transport.abort()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench._receiver", description=__doc__)
    parser.add_argument("mode", choices=["dead", "live"])
    parser.add_argument("--lifetime", type=float, default=LIFETIME_S, help="seconds at most")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.mode, args.lifetime))
    return 0


if __name__ == "__main__":
    sys.exit(main())
