"""The live state of a workspace: a fold of its own event stream (see ``_fold``)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from ._limits import MAX_ACTIONS, MAX_PROGRESS_BARS, MAX_STATUS_KEYS
from ._payloads import Progress, WorkspaceEvent
from ._types import Epoch, Label, Offset, RunId, ShortText, Text, UtcDateTime, WorkspaceName
from ._workspace import ActionSpec, WorkspaceDetails, WorkspaceSemaphores


class WorkerEntry(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """A worker run known to the workspace, connected or within its grace period."""

    run_id: RunId
    connected: bool
    connected_at: UtcDateTime
    last_seen: UtcDateTime
    client: ShortText = ""
    actions: Annotated[list[ActionSpec], Meta(max_length=MAX_ACTIONS)] = []


class WorkspaceState(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """Everything a watcher needs to draw a workspace, as of ``last_offset``.

    Built only by the fold, so a snapshot at offset N followed by the events after N gives the
    same state as the live one. The containers are never mutated; the fold copies on change.
    """

    name: WorkspaceName
    epoch: Epoch
    created: UtcDateTime
    last_offset: Offset = 0
    details: WorkspaceDetails = WorkspaceDetails()
    semaphores: WorkspaceSemaphores = WorkspaceSemaphores()
    workers: tuple[WorkerEntry, ...] = ()
    status: Annotated[dict[Label, Text], Meta(max_length=MAX_STATUS_KEYS)] = {}
    progress: Annotated[dict[Label, Progress], Meta(max_length=MAX_PROGRESS_BARS)] = {}
    updated: UtcDateTime | None = None
    """Broker time of the latest event."""
    last_event: WorkspaceEvent | None = None
    """The latest ``event`` payload: what a dashboard row shows."""
