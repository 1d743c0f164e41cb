"""A held workspace mutex, as the worker code that holds it sees it."""

from __future__ import annotations

import asyncio

from ._errors import LeaseLostError


class Lease:
    """Proof of holding the workspace mutex, valid while not lost.

    ``fence`` increases with every grant: pass it along with writes to shared resources so
    that a write from an earlier holder can be refused. A lease can be lost while held (an
    operator broke it, or the worker stayed away longer than the grace period); ``check()``
    raises then, and ``lost`` is set. It is never lost silently.
    """

    def __init__(self, fence: int) -> None:
        self.fence = fence
        self.lost_reason: str | None = None
        self._lost = asyncio.Event()

    @property
    def lost(self) -> bool:
        return self.lost_reason is not None

    def check(self) -> None:
        """Raise LeaseLostError if the lease is gone."""
        if self.lost_reason is not None:
            raise LeaseLostError(self.fence, self.lost_reason)

    async def wait_lost(self) -> str:
        """Wait until the lease is lost; returns why (``broken`` or ``expired``)."""
        await self._lost.wait()
        assert self.lost_reason is not None
        return self.lost_reason

    def mark_lost(self, reason: str) -> None:
        if self.lost_reason is None:
            self.lost_reason = reason
            self._lost.set()
