"""When a sink's message is tried again: pure decisions, the time and the randomness passed in.

- 2xx: delivered.
- 408, 425, 429 and 5xx, a timeout, a connection that failed: tried again after a pause.
  The pause doubles from :data:`BASE_S` with each failed attempt of the same message, is
  capped at the sink's ``retry_max_s``, and is jittered ("equal jitter": between half and
  all of it) so that a fleet of brokers does not retry in step; it is never zero. A
  ``Retry-After`` on a 429 or 503 (seconds, or an HTTP date) is the pause instead, capped
  at ``retry_max_s`` too.
- Any other status (3xx, other 4xx): rejected. Sending the same message again would get the
  same answer, so it is given up, counted and logged with the status and the start of the
  answer's body.
"""

from __future__ import annotations

import datetime
import email.utils
from dataclasses import dataclass
from typing import Final, TypeAlias

BASE_S: Final = 1.0
"""The pause after a message's first failed attempt (before jitter)."""
RETRYABLE_STATUSES: Final = frozenset({408, 425, 429})
"""Besides 5xx: a timeout, too early, too many requests."""
RETRY_AFTER_STATUSES: Final = frozenset({429, 503})
BODY_EXCERPT_CHARS: Final = 200
MIN_PAUSE_S: Final = 0.01
"""The shortest pause, whatever the settings say: a receiver is never hammered in a loop."""


@dataclass(frozen=True, slots=True)
class Delivered:
    status: int


@dataclass(frozen=True, slots=True)
class Retry:
    """Try the same message again after ``delay_s``; ``error`` says what went wrong."""

    delay_s: float
    error: str


@dataclass(frozen=True, slots=True)
class Rejected:
    """The receiver refused the message for good."""

    status: int
    body: str
    """The first characters of the answer's body."""


Outcome: TypeAlias = Delivered | Retry | Rejected


def backoff_s(attempt: int, retry_max_s: float, random: float) -> float:
    """The pause after failed attempt number ``attempt`` (1 for the first) of a message.

    ``random`` is uniform in [0, 1). The result is in (cap/2, cap], where the cap is
    ``BASE_S * 2 ** (attempt - 1)`` but at most ``retry_max_s``.
    """
    exponent = min(max(attempt, 1) - 1, 62)  # past 2**62 s every cap is retry_max_s anyway
    cap = max(min(BASE_S * 2.0**exponent, retry_max_s), MIN_PAUSE_S)
    return cap / 2 + (1.0 - random) * cap / 2


def retry_after_s(value: str, now: datetime.datetime) -> float | None:
    """A ``Retry-After`` header's pause in seconds (delay-seconds or an HTTP date), or
    ``None`` when it cannot be read or asks for no pause at all."""
    value = value.strip()
    if value.isascii() and value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.UTC)
        seconds = (when - now).total_seconds()
    # "Again at once" is not taken literally: a receiver that keeps saying so would get a
    # request in a tight loop. The backoff applies instead.
    return seconds if seconds > 0 else None


def outcome_of_answer(
    status: int,
    *,
    retry_after: str | None,
    body: bytes,
    attempt: int,
    retry_max_s: float,
    random: float,
    now: datetime.datetime,
) -> Outcome:
    """What an HTTP answer means for the message: ``attempt`` counts the message's attempts
    so far, this one included; ``now`` is the wall clock (for a ``Retry-After`` date)."""
    if 200 <= status < 300:
        return Delivered(status)
    if status in RETRYABLE_STATUSES or 500 <= status < 600:
        delay = None
        if retry_after is not None and status in RETRY_AFTER_STATUSES:
            delay = retry_after_s(retry_after, now)
        if delay is None:
            delay = backoff_s(attempt, retry_max_s, random)
        return Retry(max(min(delay, retry_max_s), MIN_PAUSE_S), f"HTTP {status}")
    return Rejected(status, excerpt(body))


def outcome_of_failure(error: str, *, attempt: int, retry_max_s: float, random: float) -> Retry:
    """A request that got no answer (timeout, refused or broken connection, TLS failure) is
    tried again: the receiver may be back soon."""
    return Retry(backoff_s(attempt, retry_max_s, random), error)


def excerpt(body: bytes, limit: int = BODY_EXCERPT_CHARS) -> str:
    """The first ``limit`` characters of an answer's body, for a log line."""
    return body[: limit * 4].decode("utf-8", "replace")[:limit]
