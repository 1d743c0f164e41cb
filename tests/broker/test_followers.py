"""The followers index: which watchers a commit of a workspace wakes, and from where they read."""

from __future__ import annotations

from dataclasses import dataclass, field

from broker._access import OPEN, Grant
from broker._followers import Followers
from broker._subscription import ReadCursor
from schema import BrokerFrame


@dataclass(eq=False)
class FakeWatcher:
    """A watcher peer that only records what it is told."""

    name: str
    woken: int = 0
    sent: list[BrokerFrame] = field(default_factory=list)

    def send(self, frame: BrokerFrame) -> None:
        self.sent.append(frame)

    def abort(self, code: int, reason: str) -> None:
        raise AssertionError(f"{self.name} aborted with {code}: {reason}")

    @property
    def queued_bytes(self) -> int:
        return 0

    def wake(self) -> None:
        self.woken += 1


def following(
    followers: Followers, peer: FakeWatcher, pattern: str, cursors: dict[str, ReadCursor]
) -> int:
    sub = followers.new_subscription(peer, pattern, None)
    sub.cursors.update(cursors)
    followers.add(peer, sub)
    return sub.sub


def test_a_commit_finds_only_the_watchers_that_follow_its_workspaces() -> None:
    followers = Followers()
    a, b, c = FakeWatcher("a"), FakeWatcher("b"), FakeWatcher("c")
    for peer in (a, b, c):
        followers.add_watcher(peer, OPEN)
    following(followers, a, "x", {"x": ReadCursor(1, 0)})
    following(followers, b, "*", {"x": ReadCursor(1, 0), "y": ReadCursor(2, 5)})
    following(followers, b, "y", {"y": ReadCursor(2, 0)})
    assert followers.of(["x"]) == {a, b}
    assert followers.of(["y"]) == {b}
    assert followers.of(["z"]) == set()
    assert followers.of(["x", "y"]) == {a, b}
    assert (followers.following("x"), followers.following("y")) == (2, 2)
    assert followers.subscription_count() == 3


def test_subscription_ids_count_up_per_watcher() -> None:
    followers = Followers()
    a, b = FakeWatcher("a"), FakeWatcher("b")
    followers.add_watcher(a, OPEN)
    followers.add_watcher(b, OPEN)
    assert [following(followers, a, "*", {}) for _ in range(3)] == [1, 2, 3]
    assert following(followers, b, "*", {}) == 1


def test_a_new_workspace_is_followed_from_its_start_by_matching_subscriptions_in_scope() -> None:
    followers = Followers()
    everyone, scoped, other = FakeWatcher("everyone"), FakeWatcher("scoped"), FakeWatcher("o")
    followers.add_watcher(everyone, OPEN)
    followers.add_watcher(scoped, Grant(roles=frozenset({"watcher"}), scope="team-*"))
    followers.add_watcher(other, OPEN)
    following(followers, everyone, "deploy-*", {})
    following(followers, scoped, "*", {})
    following(followers, other, "train-*", {})
    joined = followers.join("deploy-1", 42)
    assert [(peer, sub.sub) for peer, sub in joined] == [(everyone, 1)]
    assert followers.subscriptions(everyone)[1].cursors == {"deploy-1": ReadCursor(42, 0)}
    assert followers.of(["deploy-1"]) == {everyone}
    assert followers.subscriptions(scoped)[1].cursors == {}


def test_a_deleted_epoch_loses_its_followers_but_a_newer_epoch_keeps_them() -> None:
    followers = Followers()
    old, new = FakeWatcher("old"), FakeWatcher("new")
    followers.add_watcher(old, OPEN)
    followers.add_watcher(new, OPEN)
    following(followers, old, "ws", {"ws": ReadCursor(1, 9)})
    following(followers, new, "ws", {"ws": ReadCursor(2, 0)})
    left = followers.leave("ws", 1)
    assert [(peer, sub.sub) for peer, sub in left] == [(old, 1)]
    assert followers.of(["ws"]) == {new}
    assert followers.subscriptions(old)[1].cursors == {}
    assert list(followers.cursors()) == [("ws", ReadCursor(2, 0))]


def test_unsubscribing_and_leaving_take_a_watcher_out_of_the_index() -> None:
    followers = Followers()
    a, b = FakeWatcher("a"), FakeWatcher("b")
    followers.add_watcher(a, OPEN)
    followers.add_watcher(b, OPEN)
    first = following(followers, a, "ws", {"ws": ReadCursor(1, 0)})
    following(followers, a, "ws", {"ws": ReadCursor(1, 3)})
    following(followers, b, "ws", {"ws": ReadCursor(1, 0)})
    assert followers.remove(a, first) is not None
    assert followers.remove(a, first) is None  # already gone
    assert followers.of(["ws"]) == {a, b}
    followers.remove_watcher(a)
    assert followers.of(["ws"]) == {b}
    assert followers.subscriptions(a) == {}
    assert list(followers.watchers) == [b]
    followers.remove_watcher(b)
    assert followers.of(["ws"]) == set()
    assert list(followers.cursors()) == []
