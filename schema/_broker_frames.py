"""Frames the broker sends to clients: a tagged union on ``type``."""

from __future__ import annotations

from typing import Annotated, Any, TypeAlias

import msgspec
from msgspec import Meta

from ._client_frames import check_outcome
from ._envelope import EventMsg
from ._errors import ErrorCode
from ._limits import MAX_DELIVERY_BATCH, MAX_MAP_ENTRIES
from ._state import WorkspaceState
from ._types import (
    ActionName,
    Count,
    Epoch,
    Fence,
    NonNegativeFloat,
    Offset,
    RequestId,
    Role,
    Seq,
    ShortText,
    Text,
    WorkspaceName,
)
from ._workspace import ActionFailure, Arguments, WorkspaceSemaphores

Deliveries = Annotated[list[EventMsg], Meta(max_length=MAX_DELIVERY_BATCH)]


class _BrokerFrame(
    msgspec.Struct, tag_field="type", frozen=True, kw_only=True, omit_defaults=True, gc=False
):
    pass


class Limits(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    max_frame_bytes: Count
    max_batch: Count


class Welcome(_BrokerFrame, tag="welcome", frozen=True):
    """The answer to ``hello``. The worker-only fields are absent for watchers."""

    protocol: int
    server: ShortText
    session: ShortText
    roles: list[Role]
    heartbeat_s: NonNegativeFloat
    limits: Limits
    acked_seq: Seq | None = None
    semaphores: WorkspaceSemaphores | None = None
    epoch: Epoch | None = None


class Ack(_BrokerFrame, tag="ack", frozen=True):
    """Every event of this run up to and including ``seq`` is durable."""

    seq: Seq


class Ok(_BrokerFrame, tag="ok", frozen=True):
    id: RequestId


class ErrorReply(_BrokerFrame, tag="error", frozen=True):
    """A refused request (``id`` set) or a refused frame that had no id."""

    code: ErrorCode
    message: Text
    id: RequestId | None = None
    detail: Annotated[dict[str, Any], Meta(max_length=MAX_MAP_ENTRIES)] | None = None


class Draining(_BrokerFrame, tag="draining", frozen=True):
    """The broker is shutting down; reconnect after the given delay."""

    reconnect_after_s: NonNegativeFloat


class MutexGranted(_BrokerFrame, tag="mutex_granted", frozen=True):
    id: RequestId
    fence: Fence


class MutexLost(_BrokerFrame, tag="mutex_lost", frozen=True):
    """The holder lost the mutex it held with ``fence`` (``broken`` or ``expired``)."""

    fence: Fence
    reason: ShortText


class SemaphoresPush(WorkspaceSemaphores, tag_field="type", tag="semaphores", frozen=True):
    """Pushed to every worker of ``workspace`` whenever its semaphores change."""

    workspace: WorkspaceName


class ActionRequest(_BrokerFrame, tag="action_request", frozen=True):
    """Run action ``name``; answer with ``action_result`` carrying the same ``call``."""

    call: RequestId
    name: ActionName
    args: Arguments = {}
    caller: ShortText = ""


class Subscribed(_BrokerFrame, tag="subscribed", frozen=True):
    """The subscription exists; ``events`` frames for ``sub`` follow the snapshot.

    ``recovered`` is true when every cursor given in ``from`` was resumed without loss.
    """

    id: RequestId
    sub: RequestId
    snapshot: list[WorkspaceState]
    recovered: bool


class Events(_BrokerFrame, tag="events", frozen=True):
    """Events for one subscription; per workspace in offset order, without gaps."""

    sub: RequestId
    events: Deliveries


class Gap(_BrokerFrame, tag="gap", frozen=True):
    """Offsets ``from_offset`` to ``to_offset`` (inclusive) of ``workspace`` are gone."""

    sub: RequestId
    workspace: WorkspaceName
    from_offset: Offset
    to_offset: Offset


class Joined(_BrokerFrame, tag="joined", frozen=True):
    """A workspace created after ``subscribed`` matches subscription ``sub``; its events follow."""

    sub: RequestId
    snapshot: WorkspaceState


class Removed(_BrokerFrame, tag="removed", frozen=True):
    """Workspace epoch ``epoch`` was deleted; no more events of it follow for ``sub``."""

    sub: RequestId
    workspace: WorkspaceName
    epoch: Epoch


class Workspaces(_BrokerFrame, tag="workspaces", frozen=True):
    id: RequestId
    items: list[WorkspaceState]


class HistoryPage(_BrokerFrame, tag="history_page", frozen=True):
    """Events in the order asked; ``more`` says whether the query stopped at its limit."""

    id: RequestId
    events: Deliveries
    more: bool


class CallResult(_BrokerFrame, tag="result", frozen=True):
    """The outcome of an ``call``: a result, or the failure the action reported."""

    id: RequestId
    ok: bool
    result: Any = None
    error: ActionFailure | None = None

    def __post_init__(self) -> None:
        check_outcome(self.ok, self.error)


class StatsReport(_BrokerFrame, tag="stats", frozen=True):
    id: RequestId
    server: ShortText
    uptime_s: NonNegativeFloat
    counters: Annotated[dict[str, int | float], Meta(max_length=MAX_MAP_ENTRIES)] = {}


BrokerFrame: TypeAlias = (
    Welcome
    | Ack
    | Ok
    | ErrorReply
    | Draining
    | MutexGranted
    | MutexLost
    | SemaphoresPush
    | ActionRequest
    | Subscribed
    | Events
    | Gap
    | Joined
    | Removed
    | Workspaces
    | HistoryPage
    | CallResult
    | StatsReport
)
"""Every frame a client accepts."""
