"""Workspace-level value types: details, semaphores, declared actions, resume cursors."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from ._limits import MAX_ACTION_PARAMS
from ._types import ActionName, Epoch, Fence, Label, Offset, RunId, ShortText, Text


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
    ``by`` and ``reason`` describe the latest catch or release.
    """

    caught: bool = False
    has_mutex: bool = False
    holder: RunId | None = None
    fence: Fence = 0
    by: ShortText | None = None
    reason: Text | None = None


class ActionSpec(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """An action a worker offers to operators (declared in ``hello``)."""

    name: ActionName
    description: Text = ""
    params: Annotated[list[Label], Meta(max_length=MAX_ACTION_PARAMS)] = []


class Cursor(msgspec.Struct, frozen=True, gc=False):
    """A position in one workspace's stream: the last offset a reader has, in an epoch."""

    epoch: Epoch
    offset: Offset
