"""The node that writes a workspace, answering a request another node forwarded to it.

A watcher on node B catches a workspace that node A writes: B forwards the request
(``Forwarded``), and A carries it out as if a local watcher had asked, with a
:class:`ForwardedRequester` standing in for that watcher: the one frame the request is answered
with goes back to B as a ``ForwardAnswered``, which B turns into the watcher's reply.
"""

from __future__ import annotations

from schema import BrokerFrame, ErrorReply, Ok

from ._coordinator import Coordinator, ForwardAnswered, Forwarded


class ForwardedRequester:
    """A :class:`~broker._peer.Peer` for one forwarded request: its answer goes back to the
    node that asked; anything else sent to it is not an answer and is dropped."""

    def __init__(self, coordinator: Coordinator, notice: Forwarded) -> None:
        self._coordinator = coordinator
        self._notice = notice
        self._answered = False

    def send(self, frame: BrokerFrame) -> None:
        if self._answered or not isinstance(frame, Ok | ErrorReply):
            return
        self._answered = True
        origin, request = self._notice.origin, self._notice.request
        if isinstance(frame, Ok):
            self._coordinator.tell(ForwardAnswered(origin, request))
        else:
            self._coordinator.tell(ForwardAnswered(origin, request, frame.code, frame.message))

    def abort(self, code: int, reason: str) -> None:
        """Nothing to close: the requester is on another node."""

    @property
    def queued_bytes(self) -> int:
        return 0
