"""How the routing core reaches a session: a small protocol, not the session class.

The core never calls these; it returns effects naming a peer ("send this frame to that peer",
"close that peer with 4009"), and the broker's asyncio adapter carries them out through these
methods. A unit test passes any object that has them; a session has them for real.
"""

from __future__ import annotations

from typing import Protocol

from schema import BrokerFrame


class Peer(Protocol):
    """One live session, as far as routing is concerned."""

    def send(self, frame: BrokerFrame) -> None:
        """Queue ``frame``; never waits (a peer that lets its queue overflow closes itself)."""
        ...

    def abort(self, code: int, reason: str) -> None:
        """Close now with ``code``, dropping what is queued."""
        ...

    @property
    def queued_bytes(self) -> int:
        """Bytes queued for the peer and not yet written: what stats count per session."""
        ...


class WorkerPeer(Peer, Protocol):
    """A worker's session: it is also acknowledged."""

    def send_ack(self, seq: int) -> None:
        """Acknowledge the run's events up to ``seq``: they are durable."""
        ...


class WatcherPeer(Peer, Protocol):
    """A watcher's session: its delivery loop is woken when a workspace it follows grows."""

    def wake(self) -> None:
        """Something it follows was committed: read on from its cursors."""
        ...
