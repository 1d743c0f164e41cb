"""Derived notifications waiting to be queued (pure): what each write's commit must mark, and
everything taken at once with every mark made for it."""

from __future__ import annotations

import pytest

from broker._notify_defer import DeferredNotifications
from tests.broker.store_cases import note


def test_the_first_write_of_a_workspace_epoch_marks_it_from_its_first_notification() -> None:
    waiting = DeferredNotifications(delay_s=0.25, at_most=10)
    assert waiting.add([note(7), note(9)], now=100.0) == {("ws", 1): 7}
    assert waiting.due == 100.25
    # Marked already: the later writes carry no mark, and the delay runs from the first.
    assert waiting.add([note(12)], now=100.2) == {}
    assert waiting.add([note(3, epoch=2), note(4, workspace="other")], now=100.3) == {
        ("ws", 2): 3,
        ("other", 1): 4,
    }
    assert waiting.due == 100.25
    assert len(waiting) == 5


def test_a_write_that_made_nothing_waits_for_nothing() -> None:
    waiting = DeferredNotifications()
    assert waiting.add([], now=5.0) == {}
    assert waiting.due is None
    assert waiting.take().notifications == []


def test_taking_gives_everything_in_order_with_its_marks_and_starts_afresh() -> None:
    waiting = DeferredNotifications(delay_s=1.0, at_most=3)
    waiting.add([note(1), note(2)], now=0.0)
    full_at_two = waiting.full
    waiting.add([note(5, workspace="other")], now=0.5)
    assert (full_at_two, waiting.full) == (False, True)
    taken = waiting.take()
    assert [(n.workspace, n.offset) for n in taken.notifications] == [
        ("ws", 1),
        ("ws", 2),
        ("other", 5),
    ]
    assert taken.unmarked == [("other", 1), ("ws", 1)]
    assert (len(waiting), waiting.due, waiting.full) == (0, None, False)
    # The next write marks again: its commit comes after the one that removed the marks.
    assert waiting.add([note(8)], now=2.0) == {("ws", 1): 8}


def test_a_notification_that_names_no_event_cannot_wait() -> None:
    # Only what the rules derive from events waits: nothing else could be made again.
    with pytest.raises(ValueError, match="names its event"):
        DeferredNotifications().add([note(None)], now=0.0)
