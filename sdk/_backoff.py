"""Full-jitter exponential backoff: a random delay up to a cap that doubles per failure."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Final

from schema import CloseCode

from ._errors import InvalidArgumentError

SLOW_DOWN_CLOSES: Final = frozenset(
    {CloseCode.MESSAGE_TOO_BIG, CloseCode.PROTOCOL_ERROR, CloseCode.RATE_LIMITED}
)
"""Closes that say this client did something the broker will not take: coming back at once
would only repeat it, however long the session lasted, so they never reset the backoff."""


@dataclass(slots=True)
class Backoff:
    """Delays for consecutive failed attempts; ``reset()`` after a success.

    Full jitter (a uniform draw between 0 and the exponential cap) spreads out clients that
    lost the same broker at the same moment, so they do not all come back at once.

    A welcome alone is not a success: a broker that welcomes and then closes at once (a frame
    too big, a rate limit) would otherwise be hit again within ``initial_s``, forever.
    ``after_session`` resets only after a session that stayed up ``stable_s`` (default
    ``maximum_s``) and did not end with one of ``SLOW_DOWN_CLOSES``.
    """

    initial_s: float = 0.1
    maximum_s: float = 10.0
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0
    stable_s: float | None = None

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.maximum_s:
            raise InvalidArgumentError(
                "the reconnect backoff needs 0 < initial_s <= maximum_s, not "
                f"{self.initial_s!r} and {self.maximum_s!r}"
            )
        if self.stable_s is None:
            self.stable_s = self.maximum_s

    def next_delay(self) -> float:
        cap = min(self.maximum_s, self.initial_s * 2**self.attempts)
        self.attempts = min(self.attempts + 1, 64)
        return self.rng.uniform(0, cap)

    def reset(self) -> None:
        self.attempts = 0

    def after_session(self, *, lasted_s: float, close_code: int | None) -> float:
        """The delay before the next attempt after a session that was welcomed, which lasted
        ``lasted_s`` seconds and ended with ``close_code`` (None: no close frame came)."""
        assert self.stable_s is not None
        if close_code not in SLOW_DOWN_CLOSES and lasted_s >= self.stable_s:
            self.reset()
        return self.next_delay()
