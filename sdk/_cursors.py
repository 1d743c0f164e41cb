"""Where a subscription has got to in each workspace: pure bookkeeping for exact resumes.

The cursor of a workspace is the last offset handed to the reader, in that workspace's epoch.
Every (re)subscribe names them all, so the broker sends exactly what the reader has not seen;
anything at or below a cursor that still arrives (a resend racing a reconnect) is dropped here.
"""

from __future__ import annotations

from schema import Cursor, EventMsg, StartPosition, WorkspaceState


class SubscriptionCursors:
    def __init__(self, since: StartPosition | dict[str, Cursor]) -> None:
        self._since = since
        self._subscribed_once = False
        self.epochs: dict[str, int] = {}
        self.offsets: dict[str, int] = {}
        if isinstance(since, dict):
            for name, cursor in since.items():
                self.epochs[name] = cursor.epoch
                self.offsets[name] = cursor.offset

    def start(self) -> StartPosition | dict[str, Cursor]:
        """The ``from`` of the next subscribe."""
        if not self._subscribed_once and not isinstance(self._since, dict):
            return self._since
        return {
            name: Cursor(epoch=self.epochs[name], offset=offset)
            for name, offset in self.offsets.items()
        }

    def subscribed(self, snapshot: list[WorkspaceState]) -> None:
        """The broker's snapshot: learn epochs; a first ``latest`` starts after each state."""
        first_latest = not self._subscribed_once and self._since == "latest"
        self._subscribed_once = True
        for state in snapshot:
            if self.epochs.get(state.name) != state.epoch:
                # A workspace new to the reader, or re-created: whatever came before is void.
                self.epochs[state.name] = state.epoch
                self.offsets.pop(state.name, None)
            if first_latest:
                self.offsets[state.name] = state.last_offset

    def joined(self, state: WorkspaceState) -> None:
        self.epochs[state.name] = state.epoch
        self.offsets[state.name] = state.last_offset

    def removed(self, workspace: str) -> None:
        self.epochs.pop(workspace, None)
        self.offsets.pop(workspace, None)

    def accept(self, event: EventMsg) -> bool:
        """Whether the event is new to the reader; advances the cursor if so."""
        if event.workspace not in self.epochs:
            return False  # of an epoch this subscription no longer follows
        if event.offset <= self.offsets.get(event.workspace, 0):
            return False
        self.offsets[event.workspace] = event.offset
        return True

    def skip_to(self, workspace: str, offset: int) -> None:
        """A gap: the offsets up to ``offset`` are gone; delivery goes on after them."""
        if workspace in self.epochs:
            self.offsets[workspace] = max(offset, self.offsets.get(workspace, 0))
