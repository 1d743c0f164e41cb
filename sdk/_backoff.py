"""Full-jitter exponential backoff: a random delay up to a cap that doubles per failure."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    """Delays for consecutive failed attempts; ``reset()`` after a success.

    Full jitter (a uniform draw between 0 and the exponential cap) spreads out clients that
    lost the same broker at the same moment, so they do not all come back at once.
    """

    initial_s: float = 0.1
    maximum_s: float = 10.0
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.maximum_s:
            raise ValueError("backoff needs 0 < initial_s <= maximum_s")

    def next_delay(self) -> float:
        cap = min(self.maximum_s, self.initial_s * 2**self.attempts)
        self.attempts = min(self.attempts + 1, 64)
        return self.rng.uniform(0, cap)

    def reset(self) -> None:
        self.attempts = 0
