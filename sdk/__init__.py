"""Async clients for pierhead: ``Worker`` publishes and follows catch and mutex, ``Watcher``
subscribes and operates. Both reconnect by themselves; nothing acknowledged is lost."""

from ._connection import ConnectionState
from ._errors import (
    AuthenticationError,
    BrokerRefusedError,
    ClosedError,
    ConnectionLostError,
    ForbiddenError,
    LeaseLostError,
    PierheadError,
    ReplacedError,
)
from ._lease import Lease
from ._outbox import EventTooLargeError, OutboxFullError, OutboxPolicy
from ._watcher import ActionFailedError, Delivery, Missed, Subscription, Watcher
from ._worker import Worker

__all__ = [
    "ActionFailedError",
    "AuthenticationError",
    "BrokerRefusedError",
    "ClosedError",
    "ConnectionLostError",
    "ConnectionState",
    "Delivery",
    "EventTooLargeError",
    "ForbiddenError",
    "Lease",
    "LeaseLostError",
    "Missed",
    "OutboxFullError",
    "OutboxPolicy",
    "PierheadError",
    "ReplacedError",
    "Subscription",
    "Watcher",
    "Worker",
]
