"""A real HTTP receiver on loopback for the notification tests: it records every request and
answers as the test scripts it.

It speaks just enough HTTP/1.1 for a client like httpx: a request line, headers, a body of
``Content-Length`` bytes, keep-alive. Scripting:

- :meth:`NotifyReceiver.answer` queues answers (a status, headers such as ``Retry-After``, a
  body), used in turn; once they are used up every request gets ``200``;
- ``hold = True``: "never answer": the request is recorded and its connection held open
  without a reply until the receiver stops or ``hold`` is cleared with :meth:`release`;
- ``tls``: HTTPS with the given server context;
- :meth:`stop` / :meth:`start`: down (not listening, open connections closed) and up again on
  the same port.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

from tests.support import free_port

WAIT_S: Final = 15.0
"""The longest :meth:`NotifyReceiver.wait_for` waits before it fails the test."""

_REASONS: Final = {
    200: "OK",
    202: "Accepted",
    204: "No Content",
    301: "Moved Permanently",
    400: "Bad Request",
    404: "Not Found",
    408: "Request Timeout",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass(frozen=True, slots=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    """Names in lower case."""
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True, slots=True)
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class NotifyReceiver:
    """Use ``async with NotifyReceiver() as receiver``; its port is chosen when it is made."""

    def __init__(self, *, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.requests: list[Received] = []
        self.hold = False
        self.port = free_port()
        """Kept across :meth:`stop` and :meth:`start`: outside the ephemeral range, so that no
        client socket takes it while the receiver is down."""
        self._answers: deque[Answer] = deque()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        self._released = asyncio.Event()

    @property
    def url(self) -> str:
        scheme = "http" if self.tls is None else "https"
        return f"{scheme}://127.0.0.1:{self.port}/hook"

    async def __aenter__(self) -> NotifyReceiver:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def answer(self, *answers: Answer) -> None:
        self._answers.extend(answers)

    def release(self) -> None:
        """Stop holding: held requests are answered (in turn, like new ones)."""
        self.hold = False
        self._released.set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True, ssl=self.tls
        )

    async def stop(self) -> None:
        """Stop listening and close every open connection: a client sees the receiver down."""
        if self._server is None:
            return
        self._server.close()
        handlers = list(self._handlers)
        for handler in handlers:
            handler.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def wait_for(self, count: int) -> list[Received]:
        """The requests, once at least ``count`` have arrived."""
        try:
            async with asyncio.timeout(WAIT_S):
                while len(self.requests) < count:
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"timed out waiting for {count} requests, got {len(self.requests)}"
            ) from None
        return self.requests

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        try:
            while (request := await _read_request(reader)) is not None:
                self.requests.append(request)
                self._changed.set()
                while self.hold:
                    self._released.clear()
                    await self._released.wait()
                answer = self._answers.popleft() if self._answers else Answer()
                writer.write(_response(answer))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away mid-request: nothing to answer
        finally:
            self._handlers.discard(handler)
            writer.close()


async def _read_request(reader: asyncio.StreamReader) -> Received | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None  # the client closed the connection between requests
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    method, path, _ = request_line.split(" ", 2)
    headers: dict[str, str] = {}
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Received(method, path, headers, body)


def _response(answer: Answer) -> bytes:
    reason = _REASONS.get(answer.status, "Status")
    lines = [f"HTTP/1.1 {answer.status} {reason}", f"Content-Length: {len(answer.body)}"]
    lines += [f"{name}: {value}" for name, value in answer.headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + answer.body
