from __future__ import annotations

import datetime
import random

import pytest

import schema
from broker._tail import Tail, TailBudget

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def event(offset: int, kind: str = "scalar") -> schema.EventMsg:
    payload: schema.Payload = (
        schema.Scalar(name="x", value=offset) if kind == "scalar" else schema.LogRecord(message="m")
    )
    return schema.EventMsg(
        workspace="w", offset=offset, create_time=T0, received_time=T0, payload=payload
    )


def test_after_returns_pages_and_none_once_events_left() -> None:
    tail = Tail()
    tail.extend([event(i) for i in range(1, 21)])
    assert tail.last_offset == 20
    assert tail.drop_through(12) == 12
    assert (tail.first_offset, len(tail)) == (13, 8)
    page = tail.after(15, 3)
    assert page is not None
    assert [entry.offset for entry in page] == [16, 17, 18]
    assert page == [event(16), event(17), event(18)]
    assert tail.after(20, 10) == []
    assert tail.after(2, 10) is None
    assert tail.after(11, 1) is None
    assert tail.after(12, 1) == [event(13)]


def test_drop_through_counts_only_what_was_held() -> None:
    tail = Tail(next_offset=5)
    assert tail.drop_through(100) == 0
    tail.extend([event(5), event(6), event(7)])
    assert tail.drop_through(4) == 0
    assert tail.drop_through(5) == 1
    assert tail.drop_through(100) == 2
    assert (len(tail), tail.first_offset, tail.last_offset) == (0, 8, 7)
    tail.extend([event(8)])
    assert tail.after(7, 5) == [event(8)]


def test_gaps_are_refused() -> None:
    tail = Tail(next_offset=5)
    with pytest.raises(ValueError, match=r"expected offsets 5\.\.5"):
        tail.extend([event(6)])
    with pytest.raises(ValueError, match=r"expected offsets 5\.\.6"):
        tail.extend([event(5), event(7)])
    tail.extend([event(5)])
    assert tail.first_offset == 5


def commit(budget: TailBudget, tail: Tail, count: int) -> None:
    first = tail.last_offset + 1
    tail.extend([event(offset) for offset in range(first, first + count)])
    budget.added(tail, count)


def test_the_oldest_commits_leave_first_whatever_their_workspace() -> None:
    budget = TailBudget(80)
    quiet, busy = Tail(), Tail()
    commit(budget, quiet, 10)
    for _ in range(7):
        commit(budget, busy, 10)
    assert (budget.size, len(quiet), len(busy)) == (80, 10, 70)
    commit(budget, busy, 10)
    # Over 80: down to 70 at once, the quiet workspace's old commit first.
    assert (budget.size, len(quiet), len(busy)) == (70, 0, 70)
    assert busy.after(0, 1) is None
    assert busy.first_offset == 11
    assert quiet.after(quiet.last_offset, 5) == []


def test_a_commit_larger_than_the_bound_keeps_its_newest_events() -> None:
    budget = TailBudget(80)
    older, newer = Tail(), Tail()
    commit(budget, older, 30)
    commit(budget, newer, 100)
    assert (budget.size, len(older), len(newer)) == (70, 0, 70)
    assert (newer.first_offset, newer.last_offset) == (31, 100)
    commit(budget, older, 5)
    commit(budget, newer, 5)
    assert (budget.size, len(older), len(newer)) == (80, 5, 75)


def test_a_released_tail_no_longer_counts() -> None:
    budget = TailBudget(100)
    gone, kept = Tail(), Tail()
    commit(budget, gone, 30)
    commit(budget, kept, 30)
    commit(budget, gone, 30)
    budget.released(gone)
    assert (budget.size, len(gone), len(kept)) == (30, 0, 30)
    for _ in range(7):
        commit(budget, kept, 10)
    assert (budget.size, len(kept)) == (100, 100)


def test_the_bound_holds_through_any_sequence_of_commits() -> None:
    rng = random.Random(7)
    budget = TailBudget(500)
    tails = [Tail() for _ in range(6)]
    for step in range(2000):
        tail = rng.choice(tails)
        if step % 400 == 399:
            budget.released(tail)
            tails.remove(tail)
            tails.append(Tail())
            continue
        commit(budget, tail, rng.randint(1, 120))
        assert budget.size == sum(map(len, tails)) <= 500
        # Each tail still holds a gapless run that ends at its newest event.
        for each in tails:
            held = each.after(each.first_offset - 1, 10_000)
            assert held is not None
            assert [e.offset for e in held] == list(range(each.first_offset, each.last_offset + 1))


def test_a_budget_holds_at_least_one_event() -> None:
    with pytest.raises(ValueError, match="at least one event"):
        TailBudget(0)
