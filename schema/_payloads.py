"""Event payloads: a tagged union on ``kind``.

Workers may publish the kinds in :data:`WorkerPayload`; ``details``, ``semaphores``,
``presence`` and ``call`` are made only by the broker, which keeps the workspace state fold and
the audit trustworthy.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeAlias

import msgspec
from msgspec import Meta

from ._limits import MAX_ACTIONS, MAX_GPUS, MAX_MAP_ENTRIES
from ._types import (
    ActionName,
    CallOutcome,
    Count,
    FiniteFloat,
    Label,
    LogLevel,
    Message,
    NonNegativeFloat,
    PresenceState,
    RunId,
    Severity,
    ShortText,
    Text,
    UtcDateTime,
)
from ._workspace import (
    ActionFailure,
    ActionSpec,
    Arguments,
    WorkspaceDetails,
    WorkspaceSemaphores,
)


class _Payload(
    msgspec.Struct, tag_field="kind", frozen=True, kw_only=True, omit_defaults=True, gc=False
):
    pass


class WorkspaceEvent(_Payload, tag="event", frozen=True):
    """A human-readable milestone, as boardwalk's events are."""

    message: Message
    severity: Severity = "info"


class LogRecord(_Payload, tag="log", frozen=True):
    message: Message
    level: LogLevel = "info"
    logger: ShortText | None = None


class Scalar(_Payload, tag="scalar", frozen=True):
    """One point of a metric series (loss, accuracy, hosts per minute)."""

    name: Label
    value: FiniteFloat
    step: Count | None = None


class Progress(_Payload, tag="progress", frozen=True):
    """Where a named piece of work stands; the state keeps the latest per name."""

    name: Label
    current: NonNegativeFloat
    total: NonNegativeFloat | None = None
    rate: NonNegativeFloat | None = None


class Status(_Payload, tag="status", frozen=True):
    """A key/value fact about the run; the state keeps the latest per key."""

    key: Label
    value: Text


class Hyperparameters(_Payload, tag="hyperparameters", frozen=True):
    values: Annotated[dict[Label, Any], Meta(max_length=MAX_MAP_ENTRIES)]


class GpuStats(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    index: Count
    name: ShortText = ""
    utilization_percent: NonNegativeFloat | None = None
    memory_used_bytes: Count | None = None
    memory_total_bytes: Count | None = None
    temperature_c: FiniteFloat | None = None


class Hardware(_Payload, tag="hardware", frozen=True):
    cpu_percent: NonNegativeFloat | None = None
    memory_used_bytes: Count | None = None
    memory_total_bytes: Count | None = None
    gpus: Annotated[list[GpuStats], Meta(max_length=MAX_GPUS)] = []
    extra: Annotated[dict[Label, FiniteFloat], Meta(max_length=MAX_MAP_ENTRIES)] = {}


class Custom(_Payload, tag="custom", frozen=True):
    """Anything else, as JSON-compatible data; bounded only by the frame size."""

    name: Label
    data: Any = None


class DetailsChange(_Payload, tag="details", frozen=True):
    """Broker-made: a worker posted new details."""

    details: WorkspaceDetails


class SemaphoresChange(WorkspaceSemaphores, tag_field="kind", tag="semaphores", frozen=True):
    """Broker-made: the semaphores as they are after a catch, release or mutex change."""


class Presence(_Payload, tag="presence", frozen=True):
    """Broker-made: a worker connected, disconnected, or was forgotten after its grace period."""

    run_id: RunId
    state: PresenceState
    client: ShortText = ""
    actions: Annotated[list[ActionSpec], Meta(max_length=MAX_ACTIONS)] = []


class CallRecord(_Payload, tag="call", frozen=True):
    """Broker-made: an action call to a worker of the workspace ended, whatever the ending.

    ``call`` is the ``action_request.call`` the worker saw; ``caller`` is who called, as in
    ``action_request``. ``error`` is the worker's failure (``failed``, ``bad_call``). The
    result is not recorded: only the caller gets it.
    """

    call: Count
    action: ActionName
    run_id: RunId
    outcome: CallOutcome
    caller: ShortText = ""
    args: Arguments = {}
    error: ActionFailure | None = None
    started: UtcDateTime | None = None


WorkerPayload: TypeAlias = (
    WorkspaceEvent | LogRecord | Scalar | Progress | Status | Hyperparameters | Hardware | Custom
)
"""The payload kinds a worker may publish."""

BrokerPayload: TypeAlias = DetailsChange | SemaphoresChange | Presence | CallRecord
"""The payload kinds only the broker makes."""

Payload: TypeAlias = (
    WorkspaceEvent
    | LogRecord
    | Scalar
    | Progress
    | Status
    | Hyperparameters
    | Hardware
    | Custom
    | DetailsChange
    | SemaphoresChange
    | Presence
    | CallRecord
)
"""Every payload kind, as stored and delivered."""
