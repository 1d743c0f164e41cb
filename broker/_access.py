"""Who may do what: the roles and workspace scope a session was granted, checked per frame.

With ``--auth none`` every session gets every role on every workspace (loopback only); with
``--auth token`` a session gets its token's roles and scope. Every frame is checked, not just
the handshake: a frame needs a role, and a frame that names a workspace needs it in scope.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from schema import (
    ActionCall,
    ActionResult,
    Catch,
    ClientFrame,
    DeleteWorkspace,
    HistoryQuery,
    ListWorkspaces,
    MutexAcquire,
    MutexBreak,
    MutexRelease,
    Publish,
    Release,
    Role,
    SetDetails,
    StatsRequest,
    Subscribe,
    Unsubscribe,
)

ALL_ROLES: Final[frozenset[Role]] = frozenset({"worker", "watcher", "operator", "admin"})


def roles_of(names: Iterable[str]) -> frozenset[Role]:
    """The known roles among ``names`` (unknown ones grant nothing)."""
    return frozenset(name for name in names if name in ALL_ROLES)


@dataclass(frozen=True, slots=True)
class Grant:
    roles: frozenset[Role]
    scope: str = "*"
    """A glob over workspace names."""
    token_id: str | None = None
    token_name: str | None = None

    def has(self, role: str) -> bool:
        return role in self.roles

    def covers(self, workspace: str) -> bool:
        return self.scope == "*" or fnmatch.fnmatchcase(workspace, self.scope)


OPEN: Final = Grant(roles=frozenset(ALL_ROLES))
"""What every session gets when authentication is off."""

WATCHER_SESSION_ROLES: Final = frozenset({"watcher", "operator", "admin"})
"""Any of these opens a watcher session; each frame then needs its own role."""

REQUIRED_ROLE: Final[dict[type[ClientFrame], Role]] = {
    Publish: "worker",
    SetDetails: "worker",
    MutexAcquire: "worker",
    MutexRelease: "worker",
    ActionResult: "worker",
    Subscribe: "watcher",
    Unsubscribe: "watcher",
    ListWorkspaces: "watcher",
    HistoryQuery: "watcher",
    Release: "operator",
    ActionCall: "operator",
    MutexBreak: "admin",
    DeleteWorkspace: "admin",
    StatsRequest: "admin",
}


def refusal(grant: Grant, frame: ClientFrame, *, catch_role: Role) -> str | None:
    """Why ``grant`` may not send ``frame``, or None when it may.

    ``catch_role`` is what a catch needs in this kind of session: a worker catches its own
    workspace as a worker; a watcher catches as an operator.
    """
    role = catch_role if isinstance(frame, Catch) else REQUIRED_ROLE.get(type(frame))
    if role is not None and not grant.has(role):
        return f"{frame.__struct_config__.tag} needs the {role} role"
    workspace = getattr(frame, "workspace", None)
    if isinstance(workspace, str) and not grant.covers(workspace):
        return f"workspace {workspace!r} is outside this token's scope ({grant.scope})"
    return None
