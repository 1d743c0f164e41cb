"""Notifications: what the broker tells Slack and webhooks, shared by its parts.

The flow (docs/operations.md, "Notifications"): the routing core commits events; the
adapter hands each commit's events to the trigger rules (``_notify_rules``), which make
:class:`Notification` values that go into the *same* store commit as the events, or, on
SQLite, into a commit a moment later while a mark committed with the events keeps them
(``_notify_defer``), so a notification exists durably exactly when its event does. Stalls,
which are no event, are detected by ``_stall`` and committed on their own. One sender per
sink (``_notify_sender``) reads its queue from the store, coalesces, posts, retries, and
removes what was delivered.
With several nodes on Redis, one node at a time holds a sink's sender lease.

This module holds the values those parts exchange and the settings they read.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal, TypeAlias, get_args

import msgspec

from schema import EventMsg, Severity

SinkKind: TypeAlias = Literal["slack", "webhook"]

Trigger: TypeAlias = Literal[
    "caught",
    "released",
    "event",
    "mutex",
    "expired",
    "stalled",
    "recovered",
    "finished",
]
"""What a notification says happened:

- ``caught`` / ``released``: a catch or release of the workspace (who, why);
- ``event``: a ``WorkspaceEvent`` at or above the sink's ``min_severity``;
- ``mutex``: the mutex was broken by an operator or lost (its lease expired);
- ``expired``: a worker disconnected and its grace ran out without a final status;
- ``stalled`` / ``recovered``: a connected run sent no event for the stall time / spoke again;
- ``finished``: a run published a final status (the ``[finished]`` key and values).
"""

TRIGGERS: tuple[Trigger, ...] = get_args(Trigger)

SEVERITY_RANK: Mapping[Severity, int] = {"info": 0, "success": 1, "warning": 2, "error": 3}


class Notification(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One notification for one sink, as it is queued in the store and posted.

    Made from a committed event (``offset`` set) or by the stall detector (``offset`` None).
    ``key`` is unique and deterministic (the same event and sink always give the same key; on
    Redis, a notification queued again while it waits is stored once), and it goes out as the
    idempotency key: a receiver that sees a key again has seen that notification.
    """

    key: str
    sink: str
    trigger: Trigger
    workspace: str
    epoch: int
    at: datetime.datetime
    """Broker time of the event (or of the stall's detection)."""
    summary: str
    """One line, plain text: what happened, in words (``deploy caught by alice: maint``)."""
    coalesce: str
    """Notifications of one sink with the same ``coalesce`` value queued within the sink's
    coalescing window go out as one message with a count (a storm of errors of a
    workspace is one message)."""
    offset: int | None = None
    run_id: str | None = None
    who: str | None = None
    reason: str | None = None
    severity: Severity = "info"
    advice: str | None = None
    """The text of the first advice rule whose pattern matched the error's message."""
    event: EventMsg | None = None
    """The event it was made from (the webhook payload carries its envelope)."""


@dataclass(frozen=True, slots=True)
class QueuedNotification:
    """A notification in a sink's queue: ``id`` orders the queue (assigned by the store,
    increasing in commit order) and names it for removal."""

    id: int
    notification: Notification


@dataclass(frozen=True, slots=True)
class SinkQueueStats:
    queued: int
    """Notifications waiting in the store now."""
    dropped: int
    """Notifications dropped, oldest first, because the queue was full (since the store was
    made; it survives restarts)."""


@dataclass(frozen=True, slots=True)
class AdviceRule:
    """A regular expression on an error's message, and the advice shown with it."""

    pattern: re.Pattern[str]
    advice: str


@dataclass(frozen=True, slots=True)
class FinalStatus:
    """Which ``status`` event ends a run: ``key``, with one of ``values`` (any value when
    empty)."""

    key: str = "state"
    values: tuple[str, ...] = ()

    def matches(self, key: str, value: str) -> bool:
        return key == self.key and (not self.values or value in self.values)


@dataclass(frozen=True, kw_only=True, slots=True)
class SinkConfig:
    name: str
    """Unique among the sinks; names the queue in the store and the stats."""
    kind: SinkKind
    url: str = field(repr=False)
    """Not in the repr, which may be logged: a Slack webhook's URL is its credential."""
    triggers: frozenset[Trigger]
    workspaces: tuple[str, ...] = ("*",)
    """Glob patterns (``fnmatch``, case-sensitive): the workspaces this sink hears about."""
    min_severity: Severity = "error"
    """For the ``event`` trigger: the least severity that is notified."""
    secret: str | None = field(default=None, repr=False)
    """Webhook only: the HMAC-SHA256 key of the signature header (not in the repr)."""
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Extra request headers (a receiver's own auth, for one; not in the repr)."""
    coalesce_s: float = 2.0
    """How long the first of a storm waits for more like it before it goes out with them."""
    max_queued: int = 10_000
    """The queue's bound; past it the oldest are dropped and counted, enough that an eighth of
    it is free again (``_notify_queue.dropped_past_bound``)."""
    timeout_s: float = 10.0
    """Each request's timeout (connect, send, answer)."""
    retry_max_s: float = 300.0
    """The longest pause between two attempts (backoff or ``Retry-After``)."""
    ca_file: Path | None = None
    """Certificates to trust besides the system's, for a receiver on a private CA (TLS is
    always verified)."""


QUEUE_DELAY_S: Final = 0.25
"""How long notifications made from events wait before they are queued (``queue_delay``):
many commits' worth at full ingest, and little beside a sink's coalescing window (2 s by
default)."""
QUEUE_DELAY_MOST_S: Final = 60.0
"""The longest ``queue_delay``: it delays every notification, and its notifications wait in
memory meanwhile."""


@dataclass(frozen=True, kw_only=True, slots=True)
class NotifyConfig:
    sinks: tuple[SinkConfig, ...]
    stall_after_s: float | None = None
    """A connected run that sends no event for this long is reported stalled (``None``: no
    stall detection)."""
    queue_delay_s: float = QUEUE_DELAY_S
    """How long notifications made from events wait before they are queued together, on a
    store that defers them (``_notify_defer``)."""
    finished: FinalStatus = FinalStatus()
    advice: tuple[AdviceRule, ...] = ()
    public_url: str | None = None
    """The dashboard's public address (``--public-url``), for links in messages."""

    def sink(self, name: str) -> SinkConfig:
        for sink in self.sinks:
            if sink.name == name:
                return sink
        raise KeyError(name)
