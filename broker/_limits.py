"""Rate and count limits: pure bookkeeping, the caller passes the time."""

from __future__ import annotations

from collections import Counter, deque
from typing import Final, Generic, NamedTuple, TypeVar

K = TypeVar("K")


class TokenBucket:
    """``rate`` units per second with a burst of ``burst``; ``take`` says whether they fit."""

    __slots__ = ("_level", "_updated", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._level = burst
        self._updated = now

    def take(self, amount: float, now: float) -> bool:
        self._level = min(self.burst, self._level + (now - self._updated) * self.rate)
        self._updated = now
        if amount > self._level:
            return False
        self._level -= amount
        return True


_SLACK_EVENTS: Final = 1e-3


class _Held(NamedTuple):
    first_seq: int
    due: float


class PublishPacer:
    """Paces one worker session's publishes to ``rate`` events/s by when their acks go out.

    A token bucket whose level may go below zero: a publish that finds the bucket short is
    still stored, but its ack is held until the bucket has refilled past it. A client that waits
    for acks (the SDK keeps a bounded number of batches in flight) is thereby held to the rate
    without being closed. A client that keeps sending regardless runs up a debt; once the debt
    would exceed ``window`` events, ``publish`` refuses (the caller closes the session).

    Pure bookkeeping: the caller passes the time, sends the acks and sets the timers.
    """

    __slots__ = ("_held", "_level", "_updated", "burst", "paced", "rate", "window")

    def __init__(self, rate: float, *, burst: float, window: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.window = window
        self.paced = 0
        """Publishes whose ack was held back."""
        self._level = burst
        self._updated = now
        self._held: deque[_Held] = deque()

    def publish(self, first_seq: int, count: int, now: float) -> bool:
        """Charge ``count`` events starting at ``first_seq``; False: beyond the window, refused
        (and not charged)."""
        self._refill(now)
        # The slack absorbs float rounding: a client that keeps exactly the window in flight
        # must not be refused for a debt of 40.000000000000014 events.
        if count - self._level > self.window + _SLACK_EVENTS:
            return False
        self._level -= count
        if self._level < 0:
            # Paid off when the bucket has refilled to zero; later publishes are due later.
            self._held.append(_Held(first_seq, now - self._level / self.rate))
            self.paced += 1
        return True

    def ackable(self, durable: int, now: float) -> int:
        """The highest seq up to ``durable`` whose ack may go out at ``now``."""
        held = self._held
        while held and held[0].due <= now:
            held.popleft()
        if held and held[0].first_seq <= durable:
            return held[0].first_seq - 1
        return durable

    def next_due(self) -> float | None:
        """When the earliest held ack may go out, if any is held."""
        return self._held[0].due if self._held else None

    def _refill(self, now: float) -> None:
        self._level = min(self.burst, self._level + (now - self._updated) * self.rate)
        self._updated = now


class CappedCounts(Generic[K]):
    """How many of something each key has open (sessions of an address or a token, requests
    of a session waiting for the store or another node), against a cap."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._open: Counter[K] = Counter()

    def acquire(self, key: K) -> bool:
        if self._open[key] >= self.cap:
            return False
        self._open[key] += 1
        return True

    def release(self, key: K) -> None:
        self._open[key] -= 1
        if self._open[key] <= 0:
            del self._open[key]

    def __getitem__(self, key: K) -> int:
        return self._open[key]
