"""A connected run that sends nothing for the stall time is reported once; its next event is
its recovery; a run that disconnected is no longer watched, and one that was stalled recovers
when it comes back within its grace and speaks."""

from __future__ import annotations

import pytest

from broker._stall import Recovered, Stalled, StallWatch


def test_a_silent_run_is_stalled_once_at_the_stall_time_and_recovers_on_its_next_event() -> None:
    watch = StallWatch(60)
    assert watch.heard("ws", 1, "r", offset=4, now=0.0) is None
    assert watch.next_due() == 60.0
    assert watch.due(59.9) == []
    assert watch.due(61.0) == [Stalled("ws", 1, "r", since_offset=4, silent_s=61.0)]
    assert watch.due(500.0) == []  # reported once
    assert watch.next_due() is None
    assert watch.heard("ws", 1, "r", offset=9, now=501.0) == Recovered("ws", 1, "r", 9)
    assert watch.heard("ws", 1, "r", offset=10, now=502.0) is None  # recovered once
    assert watch.due(561.9) == []
    assert watch.due(562.0) == [Stalled("ws", 1, "r", since_offset=10, silent_s=60.0)]


def test_every_event_moves_the_deadline() -> None:
    watch = StallWatch(10)
    watch.heard("ws", 1, "r", offset=1, now=0.0)
    for step in range(1, 20):
        watch.heard("ws", 1, "r", offset=step + 1, now=step * 9.0)
        assert watch.due(step * 9.0 + 9.5) == []
    assert watch.next_due() == 19 * 9.0 + 10


def test_a_run_that_disconnected_is_not_watched() -> None:
    watch = StallWatch(10)
    watch.heard("ws", 1, "a", offset=1, now=0.0)
    watch.heard("ws", 1, "b", offset=2, now=0.0)
    watch.gone("ws", "a")
    assert [s.run_id for s in watch.due(100.0)] == ["b"]
    watch.gone("ws", "b")
    assert watch.due(1000.0) == []
    assert len(watch) == 0  # b stays stalled, away, until it comes back or expires


def test_a_stalled_run_that_disconnects_recovers_when_it_is_back_and_speaks() -> None:
    watch = StallWatch(10)
    watch.connected("ws", 1, "r", offset=1, now=0.0)
    assert [s.run_id for s in watch.due(20.0)] == ["r"]
    watch.gone("ws", "r")
    watch.connected("ws", 1, "r", offset=5, now=30.0)  # back: connecting is not the work moving
    assert watch.due(100.0) == []  # still the same stall: not reported again
    assert watch.heard("ws", 1, "r", offset=6, now=101.0) == Recovered("ws", 1, "r", 6)
    assert watch.due(110.5) == []  # watched again from its event on
    assert watch.due(111.0) == [Stalled("ws", 1, "r", since_offset=6, silent_s=10.0)]


def test_a_stalled_run_that_expired_is_forgotten() -> None:
    watch = StallWatch(10)
    watch.connected("ws", 1, "r", offset=1, now=0.0)
    assert [s.run_id for s in watch.due(20.0)] == ["r"]
    watch.gone("ws", "r")
    watch.expired("ws", "r")
    watch.connected("ws", 1, "r", offset=9, now=30.0)  # a new connection of the same id
    assert watch.heard("ws", 1, "r", offset=10, now=31.0) is None  # nothing to recover from
    assert watch.due(41.0) == [Stalled("ws", 1, "r", since_offset=10, silent_s=10.0)]


def test_a_run_in_a_new_epoch_starts_over_without_a_recovery() -> None:
    watch = StallWatch(10)
    watch.heard("ws", 1, "r", offset=7, now=0.0)
    assert len(watch.due(20.0)) == 1
    # The workspace was deleted and made again: offsets start over, nothing recovered.
    assert watch.heard("ws", 2, "r", offset=1, now=21.0) is None
    assert watch.due(30.0) == []
    assert watch.due(31.0) == [Stalled("ws", 2, "r", since_offset=1, silent_s=10.0)]


@pytest.mark.parametrize("after", [0.0, -1.0, float("nan")])
def test_the_stall_time_must_be_positive(after: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        StallWatch(after)


def test_a_deleted_workspace_s_runs_are_not_watched() -> None:
    watch = StallWatch(10)
    watch.heard("gone", 1, "a", offset=1, now=0.0)
    watch.heard("kept", 1, "a", offset=1, now=0.0)
    watch.heard("gone", 1, "b", offset=2, now=0.0)
    assert len(watch.due(10.0)) == 3
    watch.heard("gone", 1, "c", offset=3, now=11.0)
    watch.forget_workspace("gone")
    assert len(watch) == 1
    assert watch.due(100.0) == []
    assert watch.heard("kept", 1, "a", offset=5, now=101.0) == Recovered("kept", 1, "a", 5)


def test_only_the_runs_due_are_looked_at_in_the_order_they_were_last_heard() -> None:
    watch = StallWatch(10)
    for index in range(5):
        watch.heard("ws", 1, f"r{index}", offset=index, now=float(index))
    watch.heard("ws", 1, "r0", offset=9, now=6.0)  # r0 spoke again: now the last in line
    assert [s.run_id for s in watch.due(12.5)] == ["r1", "r2"]
    assert watch.next_due() == 13.0
    assert [s.run_id for s in watch.due(16.0)] == ["r3", "r4", "r0"]
    assert watch.next_due() is None
