from __future__ import annotations

import datetime

import pytest

import schema
from broker._tail import Tail

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def event(offset: int, kind: str = "scalar") -> schema.EventMsg:
    payload: schema.Payload = (
        schema.Scalar(name="x", value=offset) if kind == "scalar" else schema.LogRecord(message="m")
    )
    return schema.EventMsg(
        workspace="w", offset=offset, create_time=T0, received_time=T0, payload=payload
    )


def test_after_returns_pages_and_none_once_events_left() -> None:
    tail = Tail(8)
    tail.extend([event(i) for i in range(1, 21)])
    assert tail.last_offset == 20
    assert len(tail) <= 8 + 8 // 4
    page = tail.after(15, 3)
    assert page is not None
    assert [entry.offset for entry in page] == [16, 17, 18]
    assert page == [event(16), event(17), event(18)]
    assert tail.after(20, 10) == []
    assert tail.after(2, 10) is None
    assert tail.after(tail.first_offset - 1, 1) is not None


def test_gaps_are_refused() -> None:
    tail = Tail(4, next_offset=5)
    with pytest.raises(ValueError, match=r"expected offsets 5\.\.5"):
        tail.extend([event(6)])
    with pytest.raises(ValueError, match=r"expected offsets 5\.\.6"):
        tail.extend([event(5), event(7)])
    tail.extend([event(5)])
    assert tail.first_offset == 5
