"""Notifications made from committed events that wait a moment before they are queued.

Queuing notifications in the commit of their events costs that commit a statement and a page
or more: a storm of errors pays it in nearly every commit, and a commit is what a worker's
acknowledgement waits for. On a store that ``defers_notifications`` (SQLite), the
notifications the rules derive from a write wait here instead, and go into the store together
a moment later (``delay_s``), in one commit of their own. What keeps them meanwhile is a mark
per workspace epoch, committed with the first write that leaves notifications here (from the
offset of its first notification's event): a broker that dies before the later commit makes
them again at its restart, from the stored events (a notification's key depends only on its
event), and retention keeps those events until then. The commit that queues them removes the
marks.

Anything else queued (a stall, a recovery) or a workspace's delete takes what waits along, in
front, so each sink's queue keeps the order in which notifications were made.

Sans-I/O: the notifier feeds it what writes made and the time, and carries out what it says.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from ._notify import QUEUE_DELAY_S, Notification

QUEUE_AT_MOST: Final = 1000
"""Waiting notifications are queued at once when this many have gathered."""


@dataclass(frozen=True, slots=True)
class Taken:
    """Everything that waited: to queue in one commit that removes ``unmarked``."""

    notifications: list[Notification] = field(default_factory=list)
    unmarked: list[tuple[str, int]] = field(default_factory=list)


class DeferredNotifications:
    """The notifications waiting to be queued, and the workspace epochs marked for them."""

    def __init__(self, *, delay_s: float = QUEUE_DELAY_S, at_most: int = QUEUE_AT_MOST) -> None:
        self.delay_s = delay_s
        self.at_most = at_most
        self._waiting: list[Notification] = []
        self._marked: set[tuple[str, int]] = set()
        self._due: float | None = None

    def __len__(self) -> int:
        return len(self._waiting)

    @property
    def due(self) -> float | None:
        """When what waits is to be queued (the oldest's time plus the delay), if anything."""
        return self._due

    @property
    def full(self) -> bool:
        return len(self._waiting) >= self.at_most

    def add(self, notifications: Sequence[Notification], now: float) -> dict[tuple[str, int], int]:
        """Derived notifications of a write, to wait; the marks that write's commit must carry:
        for each workspace epoch not marked yet, the offset of its first notification's event.
        """
        if not notifications:
            return {}
        if self._due is None:
            self._due = now + self.delay_s
        self._waiting += notifications
        marks: dict[tuple[str, int], int] = {}
        for notification in notifications:
            workspace = (notification.workspace, notification.epoch)
            if workspace in self._marked or workspace in marks:
                continue
            if notification.offset is None:
                raise ValueError(f"{notification.key}: a derived notification names its event")
            marks[workspace] = notification.offset
        self._marked.update(marks)
        return marks

    def take(self) -> Taken:
        """Everything waiting, and every mark made for it: all to go in one commit."""
        taken = Taken(self._waiting, sorted(self._marked))
        self._waiting = []
        self._marked = set()
        self._due = None
        return taken
