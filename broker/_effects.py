"""What the routing core asks for: effects, carried out in order by the broker's adapter.

The core takes the time in (:class:`Now`) and returns a list of these; it never sends, closes,
writes, sleeps or logs itself. Timers are named by a key: starting a key that is running
replaces it, and when one is due the adapter calls ``Router.timer_due(key, now)``.
"""

from __future__ import annotations

import datetime
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeAlias

from schema import BrokerFrame, EventMsg, WorkspaceState

from ._coordinator import Notice
from ._peer import Peer, WatcherPeer, WorkerPeer


class Now(NamedTuple):
    """The time of a decision: a monotonic clock for deadlines, UTC for what is stored."""

    mono: float
    utc: datetime.datetime


@dataclass(frozen=True, slots=True)
class Send:
    peer: Peer
    frame: BrokerFrame


@dataclass(frozen=True, slots=True)
class Ack:
    """The run's events up to ``seq`` are durable: acknowledge them (as pacing lets it)."""

    peer: WorkerPeer
    seq: int


@dataclass(frozen=True, slots=True)
class Close:
    """Close the peer now with ``code`` (4009 replaced, 4003 deleted, ...)."""

    peer: Peer
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Wake:
    """Workspaces these watchers follow grew: their delivery loops read on."""

    peers: Collection[WatcherPeer]


@dataclass(frozen=True, slots=True)
class Reply:
    """Who waits for a write: answered ``ok`` once it is durable, ``error`` if it fails."""

    peer: Peer
    request_id: int


@dataclass(slots=True)
class Write:
    """Hand these to the group-commit writer; then answer ``reply`` and carry out ``then``
    once they are durable (``then`` also when the store failed: the broker stops anyway).

    Not frozen, though nothing changes one once made: one is made for every ``publish``, and
    a frozen dataclass takes three times as long to make.
    """

    events: Sequence[EventMsg] = ()
    changes: Sequence[EventMsg] | None = None
    """Those of ``events`` that change more of the state than its position, when known
    (:class:`~broker._workspace.Appended`); ``None``: any of them may."""
    states: Mapping[tuple[str, int], WorkspaceState] = field(default_factory=dict)
    run_seqs: Mapping[tuple[str, int, str], int] = field(default_factory=dict)
    deleted: Sequence[tuple[str, int]] = ()
    reply: Reply | None = None
    then: tuple[Effect, ...] = ()


@dataclass(frozen=True, slots=True)
class LeaseDue:
    """The mutex lease of a workspace epoch has a deadline."""

    workspace: str
    epoch: int


@dataclass(frozen=True, slots=True)
class RunExpiry:
    """A disconnected run becomes ``expired`` unless it comes back."""

    workspace: str
    epoch: int
    run_id: str


@dataclass(frozen=True, slots=True)
class CallTimeout:
    call: int


TimerKey: TypeAlias = LeaseDue | RunExpiry | CallTimeout


@dataclass(frozen=True, slots=True)
class StartTimer:
    """Call ``Router.timer_due(key, now)`` at monotonic time ``at`` (replacing that key's timer)."""

    key: TimerKey
    at: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    key: TimerKey


@dataclass(frozen=True, slots=True)
class Tell:
    """Hand ``notice`` to the coordinator, for the other nodes."""

    notice: Notice


@dataclass(frozen=True, slots=True)
class Log:
    """One info line: a state change worth a log line (never one per event)."""

    event: str
    fields: Mapping[str, Any]


Effect: TypeAlias = Send | Ack | Close | Wake | Write | StartTimer | CancelTimer | Tell | Log
