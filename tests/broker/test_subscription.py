from __future__ import annotations

import pytest

from broker._subscription import ReadCursor, Subscription, start_cursor
from schema import Cursor

WHERE = {"workspace": "w", "epoch": 7, "first_offset": 11, "last_offset": 50}


@pytest.mark.parametrize(
    ("start", "cursor", "exact"),
    [
        ("latest", ReadCursor(7, 50), True),
        ("earliest", ReadCursor(7, 10), True),
        ({"w": Cursor(epoch=7, offset=30)}, ReadCursor(7, 30), True),
        ({"w": Cursor(epoch=7, offset=10)}, ReadCursor(7, 10), True),
        ({"w": Cursor(epoch=7, offset=9)}, ReadCursor(7, 9), False),
        ({"w": Cursor(epoch=7, offset=50)}, ReadCursor(7, 50), True),
        ({"w": Cursor(epoch=7, offset=99)}, ReadCursor(7, 50), False),
        ({"w": Cursor(epoch=6, offset=30)}, ReadCursor(7, 10), False),
        ({"other": Cursor(epoch=1, offset=3)}, ReadCursor(7, 10), True),
    ],
)
def test_start_cursor(start: object, cursor: ReadCursor, exact: bool) -> None:
    assert start_cursor(start, **WHERE) == (cursor, exact)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("offset", "cursor", "exact"),
    [
        (55, ReadCursor(7, 55), True),  # the end of a commit still on its way here
        (56, ReadCursor(7, 50), False),  # past anything given here
    ],
)
def test_a_cursor_past_the_committed_end_resumes_within_what_was_given_here(
    offset: int, cursor: ReadCursor, exact: bool
) -> None:
    # Another node reads a commit from the store, and delivers it, as soon as it is there; the
    # writer marks it committed only when the store's answer comes back.
    start = {"w": Cursor(epoch=7, offset=offset)}
    assert start_cursor(start, **WHERE, assigned_offset=55) == (cursor, exact)  # type: ignore[arg-type]


def test_patterns_and_kinds() -> None:
    sub = Subscription(1, "deploy-[ab]*", ["event"])
    assert sub.matches("deploy-a1")
    assert not sub.matches("deploy-c1")
    assert not sub.matches("xdeploy-a")
    assert sub.wants("event")
    assert not sub.wants("log")
    assert Subscription(2, "*", None).wants("log")
