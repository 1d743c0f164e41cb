"""What both stores share about the notification queues (docs/storage.md): the bound of a
sink's queue when none was set, how many of the oldest a commit past it drops, and a commit's
notifications grouped by sink."""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Iterable
from typing import Final

from ._notify import Notification, SinkConfig


def _sink_default_bound() -> int:
    (bound,) = [
        field.default for field in dataclasses.fields(SinkConfig) if field.name == "max_queued"
    ]
    assert isinstance(bound, int)
    return bound


DEFAULT_BOUND: Final = _sink_default_bound()
"""The bound of a sink ``notify_limits`` did not name: a sink's own default
(:attr:`SinkConfig.max_queued`)."""


def dropped_past_bound(queued: int, incoming: int, bound: int) -> int:
    """How many of the oldest notifications go when ``incoming`` join the ``queued`` ones of a
    sink whose bound is ``bound``: none while they fit; past it, enough that an eighth of the
    bound is free again. A full queue then drops once per many commits rather than on each,
    which keeps a long outage's storm of notifications from costing every commit a write at
    both ends of the queue."""
    total = queued + incoming
    if total <= bound:
        return 0
    return total - (bound - bound // 8)


_sink_of = operator.attrgetter("sink")


def by_sink(notifications: Iterable[Notification]) -> dict[str, list[Notification]]:
    """``notifications`` grouped by sink, each group in the order given."""
    notifications = list(notifications)
    sinks = set(map(_sink_of, notifications))
    if len(sinks) == 1:
        # A commit's notifications are most often all one sink's: grouped in C.
        return {sinks.pop(): notifications}
    grouped: dict[str, list[Notification]] = {}
    for notification in notifications:
        grouped.setdefault(notification.sink, []).append(notification)
    return grouped
