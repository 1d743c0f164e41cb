"""A session's outbound queue, bounded in bytes.

Replies and pushes go in without waiting (``put_nowait``): a session that lets them pile up
past the bound is a slow consumer and is closed by its owner. Event delivery waits for room
(``put``), so a lagging subscriber falls behind in the store instead of in memory.
"""

from __future__ import annotations

import asyncio
from collections import deque


class OutboxClosedError(Exception):
    pass


class SessionOutbox:
    __slots__ = ("_closed", "_frames", "_queued_bytes", "_readable", "_writable", "limit_bytes")

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self._frames: deque[bytes] = deque()
        self._queued_bytes = 0
        self._closed = False
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    def put_nowait(self, frame: bytes) -> bool:
        """Queue a frame; False when the bound is already exceeded (the frame is not queued).

        A frame is accepted while the queue is under its bound, so one frame larger than the
        bound still goes out, alone.
        """
        if self._closed:
            return True  # the session is ending; nothing more will be sent
        if self._queued_bytes >= self.limit_bytes:
            return False
        self._append(frame)
        return True

    async def put(self, frame: bytes) -> None:
        """Queue a frame once there is room."""
        while self._queued_bytes >= self.limit_bytes:
            if self._closed:
                raise OutboxClosedError
            self._writable.clear()
            await self._writable.wait()
        if self._closed:
            raise OutboxClosedError
        self._append(frame)

    async def get(self) -> bytes:
        """The next frame to send; raises OutboxClosedError once closed and empty."""
        while not self._frames:
            if self._closed:
                raise OutboxClosedError
            self._readable.clear()
            await self._readable.wait()
        frame = self._frames.popleft()
        self._queued_bytes -= len(frame)
        if self._queued_bytes < self.limit_bytes:
            self._writable.set()
        return frame

    def close(self) -> None:
        """No more frames; ``get`` drains what is queued, then raises."""
        self._closed = True
        self._readable.set()
        self._writable.set()

    def _append(self, frame: bytes) -> None:
        self._frames.append(frame)
        self._queued_bytes += len(frame)
        self._readable.set()
