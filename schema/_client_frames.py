"""Frames a client (worker or watcher) sends to the broker: a tagged union on ``type``.

Requests carry ``id``, chosen by the client; the broker answers each with exactly one frame
carrying the same ``id``. Cross-field rules live in ``__post_init__``, which msgspec runs while
decoding, so a frame that exists is a frame that is well formed.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeAlias

import msgspec
from msgspec import Meta

from ._envelope import Event
from ._limits import (
    DEFAULT_HISTORY_LIMIT,
    MAX_ACTIONS,
    MAX_BATCH,
    MAX_COUNTER,
    MAX_CURSORS,
    MAX_HISTORY_LIMIT,
    MAX_KINDS,
    MAX_TOKEN_CHARS,
)
from ._types import (
    ActionName,
    Label,
    Offset,
    PayloadKind,
    PublishSeq,
    RequestId,
    RunId,
    SessionRole,
    ShortText,
    StartPosition,
    Text,
    Timeout,
    WorkspaceName,
    WorkspacePattern,
)
from ._workspace import ActionFailure, ActionSpec, Arguments, Cursor, WorkspaceDetails

Kinds = Annotated[list[PayloadKind], Meta(max_length=MAX_KINDS)]


class _ClientFrame(
    msgspec.Struct, tag_field="type", frozen=True, kw_only=True, omit_defaults=True, gc=False
):
    pass


class Hello(_ClientFrame, tag="hello", frozen=True):
    """The first frame of every session. Workers name their workspace and run."""

    protocol: Annotated[int, Meta(ge=0, le=2**31 - 1)]
    role: SessionRole
    client: ShortText = ""
    token: Annotated[str, Meta(max_length=MAX_TOKEN_CHARS)] | None = None
    workspace: WorkspaceName | None = None
    run_id: RunId | None = None
    details: WorkspaceDetails | None = None
    actions: Annotated[list[ActionSpec], Meta(max_length=MAX_ACTIONS)] = []

    def __post_init__(self) -> None:
        if self.role == "worker":
            if self.workspace is None or self.run_id is None:
                raise ValueError("a worker's hello needs `workspace` and `run_id`")
        elif self.workspace is not None or self.run_id is not None or self.details is not None:
            raise ValueError("`workspace`, `run_id` and `details` are for workers only")
        elif self.actions:
            raise ValueError("`actions` are for workers only")
        names = [action.name for action in self.actions]
        if len(set(names)) != len(names):
            raise ValueError("action names in `actions` must be unique")


class Publish(_ClientFrame, tag="publish", frozen=True):
    """Events numbered ``seq``, ``seq + 1``, ... in this run; acknowledged cumulatively."""

    seq: PublishSeq
    events: Annotated[list[Event], Meta(min_length=1, max_length=MAX_BATCH)]

    def __post_init__(self) -> None:
        if self.seq + len(self.events) - 1 > MAX_COUNTER:
            raise ValueError("the seqs of `events` run past 2**63 - 1")


class SetDetails(_ClientFrame, tag="details", frozen=True):
    id: RequestId
    details: WorkspaceDetails


class MutexAcquire(_ClientFrame, tag="mutex_acquire", frozen=True):
    """Take the workspace mutex; with ``wait``, queue for it (at most ``timeout_s``)."""

    id: RequestId
    wait: bool = False
    timeout_s: Timeout | None = None


class MutexRelease(_ClientFrame, tag="mutex_release", frozen=True):
    id: RequestId


class Catch(_ClientFrame, tag="catch", frozen=True):
    """Pause a workspace. Workers catch their own (no ``workspace``); operators name one."""

    id: RequestId
    workspace: WorkspaceName | None = None
    reason: Text | None = None


class Release(_ClientFrame, tag="release", frozen=True):
    id: RequestId
    workspace: WorkspaceName


def check_outcome(ok: bool, error: ActionFailure | None) -> None:
    """``ok`` and ``error`` must agree: a failure names its error, a success has none."""
    if ok and error is not None:
        raise ValueError("a successful outcome must not carry `error`")
    if not ok and error is None:
        raise ValueError("a failed outcome needs `error`")


class ActionResult(_ClientFrame, tag="action_result", frozen=True):
    """A worker's answer to ``action_request`` number ``call``."""

    call: RequestId
    ok: bool
    result: Any = None
    error: ActionFailure | None = None

    def __post_init__(self) -> None:
        check_outcome(self.ok, self.error)


class Subscribe(_ClientFrame, tag="subscribe", frozen=True):
    """Follow the workspaces whose names match ``pattern``, from a starting point."""

    id: RequestId
    pattern: WorkspacePattern
    from_: StartPosition | Annotated[dict[WorkspaceName, Cursor], Meta(max_length=MAX_CURSORS)] = (
        msgspec.field(default="latest", name="from")
    )
    kinds: Kinds | None = None


class Unsubscribe(_ClientFrame, tag="unsubscribe", frozen=True):
    id: RequestId
    sub: RequestId


class ListWorkspaces(_ClientFrame, tag="list", frozen=True):
    id: RequestId
    pattern: WorkspacePattern = "*"


class HistoryQuery(_ClientFrame, tag="history", frozen=True):
    """A page of one workspace's stored events, filtered by ``kinds``, ``series``, ``run_id``.

    With ``after``: oldest first from ``after + 1``, below ``before`` if that is given too.
    Without it: newest first from ``before - 1``, or from the latest event.
    """

    id: RequestId
    workspace: WorkspaceName
    before: Offset | None = None
    after: Offset | None = None
    limit: Annotated[int, Meta(ge=1, le=MAX_HISTORY_LIMIT)] = DEFAULT_HISTORY_LIMIT
    kinds: Kinds | None = None
    series: Label | None = None
    run_id: RunId | None = None


class ActionCall(_ClientFrame, tag="call", frozen=True):
    """Call an action a worker run declared; only the caller gets the ``result``."""

    id: RequestId
    workspace: WorkspaceName
    run_id: RunId
    action: ActionName
    args: Arguments = {}
    timeout_s: Timeout = 30.0


class MutexBreak(_ClientFrame, tag="mutex_break", frozen=True):
    id: RequestId
    workspace: WorkspaceName


class DeleteWorkspace(_ClientFrame, tag="delete_workspace", frozen=True):
    id: RequestId
    workspace: WorkspaceName
    force: bool = False


class StatsRequest(_ClientFrame, tag="stats", frozen=True):
    id: RequestId


ClientFrame: TypeAlias = (
    Hello
    | Publish
    | SetDetails
    | MutexAcquire
    | MutexRelease
    | Catch
    | Release
    | ActionResult
    | Subscribe
    | Unsubscribe
    | ListWorkspaces
    | HistoryQuery
    | ActionCall
    | MutexBreak
    | DeleteWorkspace
    | StatsRequest
)
"""Every frame a broker accepts."""
