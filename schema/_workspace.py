"""Workspace-level value types: details, semaphores, declared actions, resume cursors."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

from ._limits import MAX_ACTION_PARAMS, MAX_MAP_ENTRIES
from ._types import (
    ActionName,
    Epoch,
    Fence,
    FiniteFloat,
    Label,
    MutexChange,
    Offset,
    ParamKind,
    RunId,
    ShortText,
    Text,
    UtcDateTime,
)

Arguments = Annotated[dict[Label, Any], Meta(max_length=MAX_MAP_ENTRIES)]
"""The arguments of an action call, by parameter name."""


class WorkspaceDetails(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """What a worker says about its run; boardwalk's fields, every one optional."""

    current_host: Text | None = None
    deployment_name: Text | None = None
    deployment_number: Text | None = None
    deployment_tag: Text | None = None
    deployment_url: Text | None = None
    deployment_user: Text | None = None
    deployment_user_email: Text | None = None
    deployment_user_id: Text | None = None
    host_pattern: Text | None = None
    ui_group: Text | None = None
    workflow: Text | None = None
    worker_command: Text | None = None
    worker_hostname: Text | None = None
    worker_limit: Text | None = None
    worker_username: Text | None = None
    progress_hosts_completed: Text | None = None
    progress_hosts_total: Text | None = None


class WorkspaceSemaphores(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """Catch and mutex state of a workspace.

    ``fence`` is the fence of the latest mutex grant (0 before the first); it only increases.
    ``by`` and ``reason`` describe the latest catch or release. ``mutex_change`` and
    ``mutex_by`` say what the change that made these semaphores did to the mutex and who did
    it (both absent when it was a catch or release); ``grace_until`` is when the lease ends
    while its holder's worker is gone.
    """

    caught: bool = False
    has_mutex: bool = False
    holder: RunId | None = None
    fence: Fence = 0
    by: ShortText | None = None
    reason: Text | None = None
    mutex_change: MutexChange | None = None
    mutex_by: ShortText | None = None
    grace_until: UtcDateTime | None = None


class ActionParam(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """One parameter of an action, for forms: its JSON kind, and its default when it has one.

    ``json`` is any JSON value (unannotated parameters, lists, maps); ``default`` is given only
    when the parameter's default is a JSON scalar other than null.
    """

    name: Label
    kind: ParamKind = "json"
    required: bool = True
    default: bool | int | FiniteFloat | Text | None = None


class ActionSpec(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """An action a worker offers to operators (declared in ``hello``).

    ``signature`` describes the parameters named in ``params``, in the same order; it is empty
    when the worker did not describe them (then each is any JSON value).
    """

    name: ActionName
    description: Text = ""
    params: Annotated[list[Label], Meta(max_length=MAX_ACTION_PARAMS)] = []
    signature: Annotated[list[ActionParam], Meta(max_length=MAX_ACTION_PARAMS)] = []


class ActionFailure(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """Why an action did not return a result: the exception's type name and message."""

    type: ShortText
    message: Text = ""


class Cursor(msgspec.Struct, frozen=True, gc=False):
    """A position in one workspace's stream: the last offset a reader has, in an epoch."""

    epoch: Epoch
    offset: Offset
