"""Async clients for pierhead: ``Worker`` publishes and follows catch and mutex, ``Watcher``
subscribes and operates. Both reconnect by themselves; nothing acknowledged is lost."""

from ._connection import ConnectionState
from ._errors import (
    AuthenticationError,
    BrokerRefusedError,
    ClosedError,
    ConnectionLostError,
    ForbiddenError,
    InvalidArgumentError,
    LeaseLostError,
    PierheadError,
    PierheadTimeoutError,
    ReplacedError,
    UsageError,
)
from ._lease import Lease
from ._outbox import EventTooLargeError, OutboxFullError, OutboxPolicy
from ._watcher import (
    ActionFailedError,
    BadCallError,
    Delivery,
    Missed,
    Overflow,
    Subscription,
    Watcher,
)
from ._worker import Worker

__all__ = [
    "ActionFailedError",
    "AuthenticationError",
    "BadCallError",
    "BrokerRefusedError",
    "ClosedError",
    "ConnectionLostError",
    "ConnectionState",
    "Delivery",
    "EventTooLargeError",
    "ForbiddenError",
    "InvalidArgumentError",
    "Lease",
    "LeaseLostError",
    "Missed",
    "OutboxFullError",
    "OutboxPolicy",
    "Overflow",
    "PierheadError",
    "PierheadTimeoutError",
    "ReplacedError",
    "Subscription",
    "UsageError",
    "Watcher",
    "Worker",
]
