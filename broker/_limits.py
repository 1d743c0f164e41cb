"""Rate and count limits: pure bookkeeping, the caller passes the time."""

from __future__ import annotations

from collections import Counter


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


class ConnectionCounts:
    """Open sessions per key (an address, a token), against a cap."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._open: Counter[str] = Counter()

    def acquire(self, key: str) -> bool:
        if self._open[key] >= self.cap:
            return False
        self._open[key] += 1
        return True

    def release(self, key: str) -> None:
        self._open[key] -= 1
        if self._open[key] <= 0:
            del self._open[key]

    def __getitem__(self, key: str) -> int:
        return self._open[key]
