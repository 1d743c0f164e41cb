"""decode(encode(x)) == x for every frame and every payload kind, in both codecs."""

from __future__ import annotations

import datetime
import itertools
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import schema
from tests.schema.strategies import client_frames, event_msgs, for_struct, members

CODECS = [schema.JSON_CODEC, schema.MSGPACK_CODEC]
CODEC_IDS = [codec.subprotocol for codec in CODECS]
ROUND_TRIP = settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])


FRAME_TYPES = [(t, "client") for t in members(schema.ClientFrame)] + [
    (t, "broker") for t in members(schema.BrokerFrame)
]


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
@pytest.mark.parametrize(
    ("frame_type", "sender"), FRAME_TYPES, ids=[f"{s}-{t.__name__}" for t, s in FRAME_TYPES]
)
def test_every_frame_round_trips(codec: schema.Codec, frame_type: type[Any], sender: str) -> None:
    frames = client_frames(frame_type) if sender == "client" else for_struct(frame_type)
    decode = codec.decode_client_frame if sender == "client" else codec.decode_broker_frame

    @ROUND_TRIP
    @given(frames)
    def check(frame: Any) -> None:
        assert decode(codec.encode(frame)) == frame

    check()


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
@pytest.mark.parametrize("payload_type", members(schema.Payload), ids=lambda t: t.__name__)
def test_every_payload_kind_round_trips_inside_events(
    codec: schema.Codec, payload_type: type[Any]
) -> None:
    @ROUND_TRIP
    @given(st.lists(event_msgs(for_struct(payload_type)), min_size=1, max_size=3))
    def check(events: list[schema.EventMsg]) -> None:
        frame = schema.Events(sub=1, events=events)
        assert codec.decode_broker_frame(codec.encode(frame)) == frame

    check()


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
@pytest.mark.parametrize("payload_type", members(schema.WorkerPayload), ids=lambda t: t.__name__)
def test_worker_payload_kinds_round_trip_inside_publish(
    codec: schema.Codec, payload_type: type[Any]
) -> None:
    @ROUND_TRIP
    @given(for_struct(schema.Event), for_struct(payload_type))
    def check(event: schema.Event, payload: Any) -> None:
        frame = schema.Publish(seq=1, events=[msgspec.structs.replace(event, payload=payload)])
        assert codec.decode_client_frame(codec.encode(frame)) == frame

    check()


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_frames_go_out_as_the_subprotocol_says(codec: schema.Codec) -> None:
    data = codec.encode(schema.Ok(id=7))
    assert isinstance(data, bytes)
    if codec.text:
        assert data.decode() == '{"type":"ok","id":7}'
        assert codec.decode_broker_frame(data.decode()) == schema.Ok(id=7)
    else:
        assert msgspec.msgpack.decode(data) == {"type": "ok", "id": 7}


def test_subscribe_from_is_spelled_from_on_the_wire() -> None:
    cursor = {"deploy-1": schema.Cursor(epoch=2, offset=40)}
    frame = schema.Subscribe(id=1, pattern="deploy-*", from_=cursor)
    wire = msgspec.json.decode(schema.JSON_CODEC.encode(frame))
    assert wire["from"] == {"deploy-1": {"epoch": 2, "offset": 40}}
    assert schema.JSON_CODEC.decode_client_frame(schema.JSON_CODEC.encode(frame)) == frame


def test_msgpack_times_arrive_in_utc_as_the_same_instant() -> None:
    local = datetime.datetime(
        2026, 5, 1, 12, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
    )
    event = schema.Event(payload=schema.WorkspaceEvent(message="m"), create_time=local)
    frame = schema.MSGPACK_CODEC.decode_client_frame(
        schema.MSGPACK_CODEC.encode(schema.Publish(seq=1, events=[event]))
    )
    assert isinstance(frame, schema.Publish)
    assert frame.events[0].create_time == local
    assert frame.events[0].create_time.utcoffset() == datetime.timedelta(0)


def test_codec_for_picks_by_subprotocol_and_defaults_to_json() -> None:
    assert schema.codec_for(None) is schema.JSON_CODEC
    assert schema.codec_for("pierhead.v1.json") is schema.JSON_CODEC
    assert schema.codec_for("pierhead.v1.msgpack") is schema.MSGPACK_CODEC
    assert schema.SUBPROTOCOLS == ("pierhead.v1.json", "pierhead.v1.msgpack")


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
@ROUND_TRIP
@given(
    sub=st.integers(0, 2**53 - 1),
    events=st.lists(event_msgs(), max_size=3) | st.lists(st.just(None), min_size=14, max_size=70),
)
def test_events_frames_from_pre_encoded_events_match_the_encoder(
    codec: schema.Codec, sub: int, events: list[schema.EventMsg | None]
) -> None:
    real = [event or _FILLER for event in events]
    spliced = codec.events_frame(sub, [codec.encode_event(event) for event in real])
    assert spliced == codec.encode(schema.Events(sub=sub, events=real))
    assert codec.decode_broker_frame(spliced) == schema.Events(sub=sub, events=real)


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
@ROUND_TRIP
@given(
    events=st.lists(event_msgs(), min_size=1, max_size=3)
    | st.lists(st.just(None), min_size=14, max_size=70),
    cuts=st.lists(st.integers(0, 70), max_size=5),
)
def test_an_array_of_encoded_runs_of_events_matches_the_encoder(
    codec: schema.Codec, events: list[schema.EventMsg | None], cuts: list[int]
) -> None:
    real = [event or _FILLER for event in events]
    bounds = sorted({0, len(real), *(cut for cut in cuts if cut < len(real))})
    runs = [codec.encode_event_run(real[a:b]) for a, b in itertools.pairwise(bounds)]
    spliced = codec.events_frame_of(5, codec.event_array(runs, len(real)))
    assert spliced == codec.encode(schema.Events(sub=5, events=real))


_FILLER = schema.EventMsg(
    workspace="w",
    offset=1,
    create_time=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
    received_time=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
    payload=schema.Scalar(name="x", value=1.0),
)
