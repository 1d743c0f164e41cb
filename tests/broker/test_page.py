"""Pages: one ``events`` frame's worth of a stream, encoded as the codecs would encode it."""

from __future__ import annotations

import datetime

import pytest

import schema
from broker._page import make_page

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
CODECS = [schema.JSON_CODEC, schema.MSGPACK_CODEC]


def event(offset: int, kind: str = "scalar", text: str = "m") -> schema.EventMsg:
    payload: schema.Payload = (
        schema.Scalar(name="x", value=offset)
        if kind == "scalar"
        else schema.LogRecord(message=text)
    )
    return schema.EventMsg(
        workspace="w", offset=offset, create_time=T0, received_time=T0, payload=payload
    )


def delivered(page_array: bytes | None, codec: schema.Codec) -> list[schema.EventMsg]:
    assert page_array is not None
    frame = codec.decode_broker_frame(codec.events_frame_of(7, page_array))
    assert isinstance(frame, schema.Events)
    assert frame.sub == 7
    return frame.events


@pytest.mark.parametrize("codec", CODECS, ids=lambda codec: codec.subprotocol)
def test_a_page_is_the_events_frame_of_its_events(codec: schema.Codec) -> None:
    events = [event(n, "scalar" if n % 2 else "log") for n in range(1, 11)]
    page = make_page(events, kinds=None, codec=codec, max_bytes=1 << 20)
    assert page.last == 10
    assert delivered(page.array, codec) == events
    assert page.frame(3, codec) == codec.encode(schema.Events(sub=3, events=events))
    assert page.frame(3, codec) is page.frame(3, codec)


@pytest.mark.parametrize("codec", CODECS, ids=lambda codec: codec.subprotocol)
def test_kinds_leave_out_events_but_the_page_covers_them(codec: schema.Codec) -> None:
    events = [event(n, "scalar" if n % 2 else "log") for n in range(1, 11)]
    page = make_page(events, kinds=frozenset({"log"}), codec=codec, max_bytes=1 << 20)
    assert page.last == 10
    assert delivered(page.array, codec) == [e for e in events if e.kind == "log"]
    none = make_page(events[:1], kinds=frozenset({"log"}), codec=codec, max_bytes=1 << 20)
    assert (none.array, none.last) == (None, 1)


@pytest.mark.parametrize("codec", CODECS, ids=lambda codec: codec.subprotocol)
def test_a_page_stops_at_the_event_that_reaches_max_bytes(codec: schema.Codec) -> None:
    events = [event(n, "log", text="x" * 100) for n in range(1, 21)]
    one = len(codec.encode_event(events[0]))
    page = make_page(events, kinds=None, codec=codec, max_bytes=3 * one + 1)
    assert page.last == 4
    assert delivered(page.array, codec) == events[:4]
    # A filtered page that stops early ends at its last event, not at the last one given.
    logs_from_5 = [event(n, "scalar") for n in range(1, 5)] + events[4:]
    filtered = make_page(logs_from_5, kinds=frozenset({"log"}), codec=codec, max_bytes=one)
    assert filtered.last == 5
    assert delivered(filtered.array, codec) == events[4:5]


@pytest.mark.parametrize("codec", CODECS, ids=lambda codec: codec.subprotocol)
@pytest.mark.parametrize(("count", "step"), [(30, 1), (300, 97)])
def test_a_page_ends_where_one_encoded_event_at_a_time_would_end_it(
    codec: schema.Codec, count: int, step: int
) -> None:
    # Events are encoded in runs (the first of FIRST_RUN, then longer ones): every bound,
    # for a short page, and bounds across many runs of a long one, end it at the same event.
    events = [event(n, "log", text="x" * (n * 7 % 50)) for n in range(1, count + 1)]
    sizes = [len(codec.encode_event(e)) for e in events]
    whole = len(codec.event_array([codec.encode_event(e) for e in events]))
    for max_bytes in range(1, whole + 3, step):
        # The reference: the shortest run of events whose encodings reach max_bytes, or all.
        taken, total = 0, 0
        while taken < len(events) and total < max_bytes:
            total += sizes[taken]
            taken += 1
        page = make_page(events, kinds=None, codec=codec, max_bytes=max_bytes)
        assert page.last == events[taken - 1].offset, max_bytes
        assert delivered(page.array, codec) == events[:taken], max_bytes


def test_a_page_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one event"):
        make_page([], kinds=None, codec=schema.JSON_CODEC, max_bytes=1024)
