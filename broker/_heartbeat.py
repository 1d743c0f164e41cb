"""When to ping a peer, and when to give it up for dead: a clock-free decision, like ``_limits``."""

from __future__ import annotations

import math
from typing import Literal

Beat = Literal["ping", "dead"]


class Heartbeat:
    """Pings every ``interval`` seconds; a peer that has sent no pong for ``timeout`` seconds is
    dead, at that moment and not an interval or a closing handshake later.

    Pure: the caller passes the time (any monotonic clock), sends the pings it is told to, and
    reports each pong with ``heard``. Pings are due at fixed times from the start, so a late
    caller catches up on them in order and the count of pings a dead peer left unanswered
    depends only on the settings and on when its last pong came. A ping due at the very moment
    the peer is due to be dead is not sent.
    """

    def __init__(self, interval: float, timeout: float, now: float) -> None:
        if not 0 < interval < timeout or not math.isfinite(timeout):
            raise ValueError("the heartbeat timeout must be longer than its interval")
        self.interval = interval
        self.timeout = timeout
        self.last_heard = now
        """When the last pong arrived (at first: when the connection opened)."""
        self.pings_since_heard = 0
        """Pings sent since the last pong arrived."""
        self._next_ping = now + interval

    @property
    def deadline(self) -> float:
        """When the peer is dead unless a pong comes first."""
        return self.last_heard + self.timeout

    def next_due(self) -> float:
        """When to call ``poll`` next (unless a pong comes first)."""
        return min(self._next_ping, self.deadline)

    def heard(self, now: float) -> None:
        """A pong arrived."""
        if now > self.last_heard:
            self.last_heard = now
            self.pings_since_heard = 0

    def poll(self, now: float) -> Beat | None:
        """What is due at ``now``, earliest first: call again until it answers None."""
        if self._next_ping <= now and self._next_ping < self.deadline:
            self._next_ping += self.interval
            self.pings_since_heard += 1
            return "ping"
        if self.deadline <= now:
            return "dead"
        return None
