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


def test_patterns_and_kinds() -> None:
    sub = Subscription(1, "deploy-[ab]*", ["event"])
    assert sub.matches("deploy-a1")
    assert not sub.matches("deploy-c1")
    assert not sub.matches("xdeploy-a")
    assert sub.wants("event")
    assert not sub.wants("log")
    assert Subscription(2, "*", None).wants("log")
