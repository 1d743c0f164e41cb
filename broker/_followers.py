"""Which watchers follow which workspace, and from where: an index kept by workspace name.

A commit wakes only the watchers that follow a workspace it touched, found in one lookup per
workspace, instead of a walk over every watcher and its subscriptions. Pure bookkeeping: the
subscriptions and their cursors live here, the watcher's delivery loop moves the cursors, and
every change of *membership* (subscribe, unsubscribe, a workspace created or deleted, a
watcher gone) goes through this class so that the index never disagrees with the cursors.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, KeysView, Mapping
from dataclasses import dataclass, field

from ._access import Grant
from ._peer import WatcherPeer
from ._subscription import ReadCursor, Subscription


@dataclass(slots=True)
class _Watcher:
    grant: Grant
    subscriptions: dict[int, Subscription] = field(default_factory=dict)
    next_sub: int = 1


class Followers:
    __slots__ = ("_by_workspace", "_watchers")

    def __init__(self) -> None:
        self._watchers: dict[WatcherPeer, _Watcher] = {}
        self._by_workspace: dict[str, dict[Subscription, WatcherPeer]] = {}
        """Workspace name -> the subscriptions holding a cursor on it, and their watcher."""

    # Watchers ---------------------------------------------------------------------------

    @property
    def watchers(self) -> KeysView[WatcherPeer]:
        return self._watchers.keys()

    def add_watcher(self, peer: WatcherPeer, grant: Grant) -> None:
        self._watchers[peer] = _Watcher(grant)

    def remove_watcher(self, peer: WatcherPeer) -> None:
        watcher = self._watchers.pop(peer, None)
        if watcher is not None:
            for sub in watcher.subscriptions.values():
                self._unindex(sub)

    def grant_of(self, peer: WatcherPeer) -> Grant:
        return self._watchers[peer].grant

    def subscriptions(self, peer: WatcherPeer) -> Mapping[int, Subscription]:
        """The watcher's subscriptions by id (empty once it is gone)."""
        watcher = self._watchers.get(peer)
        return watcher.subscriptions if watcher is not None else {}

    # Subscriptions ----------------------------------------------------------------------

    def new_subscription(
        self, peer: WatcherPeer, pattern: str, kinds: Collection[str] | None
    ) -> Subscription:
        """A subscription with the watcher's next id; it follows nothing until ``add``."""
        watcher = self._watchers[peer]
        sub = Subscription(watcher.next_sub, pattern, kinds)
        watcher.next_sub += 1
        return sub

    def add(self, peer: WatcherPeer, sub: Subscription) -> None:
        """Follow every workspace ``sub`` has a cursor on."""
        self._watchers[peer].subscriptions[sub.sub] = sub
        for name in sub.cursors:
            self._by_workspace.setdefault(name, {})[sub] = peer

    def remove(self, peer: WatcherPeer, sub_id: int) -> Subscription | None:
        watcher = self._watchers.get(peer)
        sub = watcher.subscriptions.pop(sub_id, None) if watcher is not None else None
        if sub is not None:
            self._unindex(sub)
        return sub

    def _unindex(self, sub: Subscription) -> None:
        for name in sub.cursors:
            following = self._by_workspace.get(name)
            if following is not None:
                following.pop(sub, None)
                if not following:
                    del self._by_workspace[name]

    # Workspaces -------------------------------------------------------------------------

    def join(self, name: str, epoch: int) -> list[tuple[WatcherPeer, Subscription]]:
        """A workspace was created: every subscription whose pattern matches it, within its
        watcher's grant, follows it from its first event. Returns who joined."""
        joined: list[tuple[WatcherPeer, Subscription]] = []
        for peer, watcher in self._watchers.items():
            if not watcher.subscriptions or not watcher.grant.covers(name):
                continue
            for sub in watcher.subscriptions.values():
                if sub.matches(name):
                    awaited = sub.awaited.pop(name, None)
                    if awaited is None or awaited.epoch != epoch:
                        awaited = ReadCursor(epoch, 0)
                    sub.cursors[name] = awaited
                    self._by_workspace.setdefault(name, {})[sub] = peer
                    joined.append((peer, sub))
        return joined

    def leave(self, name: str, epoch: int) -> list[tuple[WatcherPeer, Subscription]]:
        """That epoch of the workspace is deleted: its cursors go. Returns who followed it."""
        left: list[tuple[WatcherPeer, Subscription]] = []
        following = self._by_workspace.get(name, {})
        for sub, peer in list(following.items()):
            cursor = sub.cursors.get(name)
            if cursor is not None and cursor.epoch == epoch:
                del sub.cursors[name]
                del following[sub]
                left.append((peer, sub))
        if not following:
            self._by_workspace.pop(name, None)
        return left

    def of(self, names: Iterable[str]) -> set[WatcherPeer]:
        """The watchers following any of ``names``."""
        found: set[WatcherPeer] = set()
        for name in names:
            following = self._by_workspace.get(name)
            if following:
                found.update(following.values())
        return found

    def following(self, name: str) -> int:
        """How many subscriptions follow ``name``."""
        return len(self._by_workspace.get(name, ()))

    def cursors(self) -> Iterator[tuple[str, ReadCursor]]:
        """Every (workspace, cursor) of every subscription."""
        for name, following in self._by_workspace.items():
            for sub in following:
                yield name, sub.cursors[name]

    def subscription_count(self) -> int:
        return sum(len(watcher.subscriptions) for watcher in self._watchers.values())
