"""Node-to-node coordination: what one broker node tells the others, beside the ``Store``.

The routing core decides; what another node must hear about is one of the notices below,
which the core hands out as a ``Tell`` effect and takes in through ``Router.remote``. A
:class:`Coordinator` carries notices between nodes: :class:`LocalCoordinator` for the single
node (there is nobody to tell), a Redis one for several nodes (pub/sub as a wake-up hint, the
run directory in a hash; see docs/storage.md). Both feed the same routing core.

Rules a coordinator keeps:

* A notice is delivered to other nodes, never back to the node that told it.
* Notices are hints, except the call notices: a lost ``CommitNotice`` is repaired by the
  next one or by a periodic position check, a lost ``SemaphoresNotice`` by the next
  ``semaphores`` event the worker's node reads; a lost call notice costs the caller a timeout.
* ``CallForward`` goes to the node that holds the run; ``CallAnswered`` and ``CallFailed`` go
  to ``origin`` only (only the caller sees a result).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeAlias

from schema import ActionFailure, ErrorCode, SemaphoresPush


@dataclass(frozen=True, slots=True)
class CommitNotice:
    """Events up to ``last_offset`` of the workspace epoch are durable: wake its followers."""

    workspace: str
    epoch: int
    last_offset: int


@dataclass(frozen=True, slots=True)
class SemaphoresNotice:
    """The workspace's catch or mutex changed: push it to the workers connected elsewhere."""

    push: SemaphoresPush


@dataclass(frozen=True, slots=True)
class RunClaimed:
    """A new connection of the run opened on ``origin``: a node holding an older one closes it
    with 4009."""

    origin: str
    workspace: str
    run_id: str


@dataclass(frozen=True, slots=True)
class CallForward:
    """An action call whose run is held by another node; ``call`` is the origin's call id."""

    origin: str
    call: int
    workspace: str
    run_id: str
    action: str
    args: dict[str, Any]
    caller: str
    timeout_s: float


@dataclass(frozen=True, slots=True)
class CallAnswered:
    """The worker's answer to ``call`` of ``origin``."""

    origin: str
    call: int
    ok: bool
    result: Any = None
    error: ActionFailure | None = None


@dataclass(frozen=True, slots=True)
class CallFailed:
    """``call`` of ``origin`` ends without an answer (the run is gone, or offers no such
    action)."""

    origin: str
    call: int
    code: ErrorCode
    message: str


ForwardedOp: TypeAlias = Literal["catch", "release", "break", "delete"]


@dataclass(frozen=True, slots=True)
class Forwarded:
    """A watcher's request about a workspace that ``target`` writes, for it to carry out;
    ``request`` is the origin's id for it."""

    origin: str
    request: int
    target: str
    op: ForwardedOp
    workspace: str
    by: str
    reason: str | None = None
    force: bool = False


@dataclass(frozen=True, slots=True)
class ForwardAnswered:
    """How ``request`` of ``origin`` ended: done (``code`` is ``None``) or refused."""

    origin: str
    request: int
    code: ErrorCode | None = None
    message: str = ""


Notice: TypeAlias = (
    CommitNotice
    | SemaphoresNotice
    | RunClaimed
    | CallForward
    | CallAnswered
    | CallFailed
    | Forwarded
    | ForwardAnswered
)


class NodeInbox(Protocol):
    """What a coordinator delivers notices from other nodes to (the broker's adapter)."""

    def remote(self, notice: Notice) -> None: ...


class Coordinator(Protocol):
    """Carries notices between the broker nodes that share a store."""

    @property
    def node(self) -> str:
        """This node's name, unique among the nodes sharing the store."""
        ...

    def start(self, inbox: NodeInbox) -> None:
        """Deliver notices from other nodes to ``inbox`` from now on."""
        ...

    def tell(self, notice: Notice) -> None:
        """Send ``notice`` to the nodes it concerns; never waits."""
        ...

    def close(self) -> None: ...


class LocalCoordinator:
    """The single node: no other node to tell, and none that could hold a run.

    A forwarded call fails at once with ``not_found``: with one node, a run that is not
    connected here is not connected anywhere.
    """

    def __init__(self, node: str = "local") -> None:
        self._node = node
        self._inbox: NodeInbox | None = None

    @property
    def node(self) -> str:
        return self._node

    def start(self, inbox: NodeInbox) -> None:
        self._inbox = inbox

    def tell(self, notice: Notice) -> None:
        if isinstance(notice, CallForward) and self._inbox is not None:
            message = f"run {notice.run_id} is not connected to workspace {notice.workspace!r}"
            self._inbox.remote(CallFailed(notice.origin, notice.call, ErrorCode.NOT_FOUND, message))

    def close(self) -> None:
        self._inbox = None
