"""Hostile input: every failure is a SchemaError with the right code, never anything else."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import schema
from schema import ErrorCode, SchemaError
from schema._limits import MAX_BATCH, MAX_MESSAGE_CHARS, MAX_PATTERN_CHARS
from tests.schema.strategies import client_frames, json_values, members

CODECS = [schema.JSON_CODEC, schema.MSGPACK_CODEC]
CODEC_IDS = [codec.subprotocol for codec in CODECS]
NOW = "2026-11-01T10:00:00Z"

Decode = Callable[[bytes | str], object]


def decoders() -> list[tuple[str, Decode]]:
    return [
        (f"{codec.subprotocol}-{side}", getattr(codec, f"decode_{side}_frame"))
        for codec in CODECS
        for side in ("client", "broker")
    ]


def refused(decode: Decode, data: bytes | str) -> SchemaError:
    with pytest.raises(SchemaError) as caught:
        decode(data)
    return caught.value


def decode_or_error(decode: Decode, data: bytes | str) -> object:
    """The decoded frame, or the SchemaError; any other exception propagates and fails."""
    try:
        return decode(data)
    except SchemaError as exc:
        return exc


def json_frame(**fields: Any) -> bytes:
    return msgspec.json.encode(fields)


def publish_of(payload: dict[str, Any], **event: Any) -> dict[str, Any]:
    return {
        "type": "publish",
        "seq": 1,
        "events": [{"payload": payload, "create_time": NOW, **event}],
    }


# Random input ---------------------------------------------------------------------------------


@settings(max_examples=3000, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=256), which=st.sampled_from(decoders()))
def test_random_bytes_are_bad_frames(data: bytes, which: tuple[str, Decode]) -> None:
    _, decode = which
    outcome = decode_or_error(decode, data)
    if isinstance(outcome, SchemaError):
        assert outcome.code in (ErrorCode.BAD_FRAME, ErrorCode.UNSUPPORTED_VERSION)


@settings(max_examples=2000, suppress_health_check=[HealthCheck.too_slow])
@given(
    tag=st.sampled_from([t.__struct_config__.tag for t in members(schema.ClientFrame)] + ["x"]),
    fields=st.dictionaries(
        st.sampled_from(
            [
                "id",
                "seq",
                "events",
                "workspace",
                "run_id",
                "role",
                "protocol",
                "pattern",
                "from",
                "kinds",
                "details",
                "limit",
                "args",
                "payload",
            ]
        ),
        json_values,
        max_size=5,
    ),
    codec=st.sampled_from(CODECS),
)
def test_random_frames_of_known_types_decode_or_are_refused(
    tag: str, fields: dict[str, Any], codec: schema.Codec
) -> None:
    encoded = (msgspec.json if codec.text else msgspec.msgpack).encode({"type": tag, **fields})
    outcome = decode_or_error(codec.decode_client_frame, encoded)
    if isinstance(outcome, SchemaError):
        assert outcome.code in (
            ErrorCode.BAD_FRAME,
            ErrorCode.TOO_LARGE,
            ErrorCode.UNSUPPORTED_VERSION,
        )
        assert str(outcome)
    else:
        assert isinstance(outcome, msgspec.Struct)
        assert outcome.__struct_config__.tag == tag


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    frame=st.sampled_from(members(schema.ClientFrame)).flatmap(client_frames), cut=st.floats(0, 1)
)
def test_truncated_frames_are_bad_frames(codec: schema.Codec, frame: Any, cut: float) -> None:
    data = codec.encode(frame)
    truncated = data[: int(len(data) * cut * 0.999)]
    assert refused(codec.decode_client_frame, truncated).code is ErrorCode.BAD_FRAME


# Shape and type errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        ({"type": "publish", "seq": "1", "events": []}, "$.seq"),
        ({"type": "stats"}, None),
        ({"type": "subscribe", "id": 1, "pattern": 5}, "$.pattern"),
        ({"type": "subscribe", "id": 1, "pattern": "*", "from": "yesterday"}, "$.from"),
        ({"type": "catch", "id": True}, "$.id"),
        ({"type": "history", "id": 1, "workspace": "w", "limit": 1001}, "$.limit"),
        ({"type": "history", "id": 1, "workspace": "w", "limit": 0}, "$.limit"),
        (
            {
                "type": "call",
                "id": 1,
                "workspace": "w",
                "run_id": "r",
                "action": "x",
                "timeout_s": 0,
            },
            "$.timeout_s",
        ),
        ({"type": "mutex_acquire", "id": 2**53}, "$.id"),
        ({"type": "action_result", "call": 1, "ok": False}, None),
    ],
)
def test_wrong_types_and_values_are_bad_frames(frame: dict[str, Any], field: str | None) -> None:
    error = refused(schema.JSON_CODEC.decode_client_frame, json_frame(**frame))
    assert error.code is ErrorCode.BAD_FRAME
    assert error.field == field


@pytest.mark.parametrize("frame", [{"type": "teleport", "id": 1}, {"id": 1}, [], "hello", 1])
def test_unknown_or_missing_type_is_a_bad_frame(frame: Any) -> None:
    for codec in CODECS:
        encoded = (msgspec.json if codec.text else msgspec.msgpack).encode(frame)
        assert refused(codec.decode_client_frame, encoded).code is ErrorCode.BAD_FRAME


def test_unknown_payload_kind_names_the_field() -> None:
    error = refused(
        schema.JSON_CODEC.decode_client_frame, json_frame(**publish_of({"kind": "telepathy"}))
    )
    assert error.code is ErrorCode.BAD_FRAME
    assert error.field == "$.events[0].payload.kind"


@pytest.mark.parametrize("kind", ["details", "semaphores", "presence"])
def test_workers_cannot_publish_broker_made_kinds(kind: str) -> None:
    payload = {
        "kind": kind,
        "details": {},
        "caught": True,
        "has_mutex": False,
        "run_id": "r",
        "state": "connected",
    }
    error = refused(schema.JSON_CODEC.decode_client_frame, json_frame(**publish_of(payload)))
    assert error.code is ErrorCode.BAD_FRAME
    assert error.field == "$.events[0].payload.kind"


@pytest.mark.parametrize("field", ["seq"])
@pytest.mark.parametrize("value", [-1, 0])
def test_publish_seqs_start_at_one(field: str, value: int) -> None:
    frame = publish_of({"kind": "event", "message": "m"})
    frame[field] = value
    error = refused(schema.JSON_CODEC.decode_client_frame, json_frame(**frame))
    assert (error.code, error.field) == (ErrorCode.BAD_FRAME, "$.seq")


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        ({"type": "ack", "seq": -1}, "$.seq"),
        (
            {"type": "gap", "sub": 1, "workspace": "w", "from_offset": -5, "to_offset": 1},
            "$.from_offset",
        ),
        ({"type": "mutex_granted", "id": 1, "fence": -1}, "$.fence"),
    ],
)
def test_negative_counters_from_a_broker_are_refused(frame: dict[str, Any], field: str) -> None:
    error = refused(schema.JSON_CODEC.decode_broker_frame, json_frame(**frame))
    assert (error.code, error.field) == (ErrorCode.BAD_FRAME, field)


def test_negative_cursor_offset_is_refused() -> None:
    frame = {
        "type": "subscribe",
        "id": 1,
        "pattern": "*",
        "from": {"w": {"epoch": 1, "offset": -1}},
    }
    error = refused(schema.JSON_CODEC.decode_client_frame, json_frame(**frame))
    assert (error.code, error.field) == (ErrorCode.BAD_FRAME, "$.from[...].offset")


@pytest.mark.parametrize(
    "name",
    [
        "",
        "-leading-dash",
        ".hidden",
        "has space",
        "tab\there",
        "trailing-newline\n",
        "ünïcode",
        "a/b",
        "a" * 129,
        "star*",
    ],
)
def test_bad_workspace_names_are_refused(name: str) -> None:
    frame = {"type": "release", "id": 1, "workspace": name}
    error = refused(schema.JSON_CODEC.decode_client_frame, json_frame(**frame))
    assert (error.code, error.field) == (ErrorCode.BAD_FRAME, "$.workspace")
    # What a name may be, in words, not the regular expression that checks it.
    assert str(error) == (
        "Expected a workspace name: 1 to 128 letters, digits, '_', '.' or '-', the first a"
        " letter or digit - at `$.workspace`"
    )


@pytest.mark.parametrize("name", ["a", "deploy-prod.eu_1", "A" * 128, "0"])
def test_good_workspace_names_are_accepted(name: str) -> None:
    frame = schema.JSON_CODEC.decode_client_frame(json_frame(type="release", id=1, workspace=name))
    assert frame == schema.Release(id=1, workspace=name)


@pytest.mark.parametrize("pattern", ["", "a b", "x" * (MAX_PATTERN_CHARS + 1), "a/b", "{a,b}"])
def test_bad_patterns_are_refused(pattern: str) -> None:
    error = refused(
        schema.JSON_CODEC.decode_client_frame, json_frame(type="list", id=1, pattern=pattern)
    )
    assert error.field == "$.pattern"
    assert str(error).startswith("Expected a workspace pattern: 1 to"), str(error)


def test_hello_rules() -> None:
    decode = schema.JSON_CODEC.decode_client_frame
    assert (
        refused(decode, json_frame(type="hello", protocol=1, role="worker", workspace="w")).code
        is ErrorCode.BAD_FRAME
    )
    assert (
        refused(decode, json_frame(type="hello", protocol=1, role="watcher", run_id="r")).code
        is ErrorCode.BAD_FRAME
    )
    actions = [{"name": "a"}, {"name": "a"}]
    hello = json_frame(
        type="hello", protocol=1, role="worker", workspace="w", run_id="r", actions=actions
    )
    assert "unique" in str(refused(decode, hello))
    version = refused(decode, json_frame(type="hello", protocol=2, role="watcher"))
    assert (version.code, version.field) == (ErrorCode.UNSUPPORTED_VERSION, "$.protocol")
    assert refused(decode, json_frame(type="hello", protocol=1, role="admin")).field == "$.role"


# Sizes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_message_of_exactly_64_ki_characters_is_accepted(codec: schema.Codec) -> None:
    event = schema.Event(
        payload=schema.WorkspaceEvent(message="x" * MAX_MESSAGE_CHARS),
        create_time=datetime.datetime.now(datetime.UTC),
    )
    frame = schema.Publish(seq=1, events=[event])
    assert codec.decode_client_frame(codec.encode(frame)) == frame


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_oversize_strings_are_too_large_and_name_the_field(codec: schema.Codec) -> None:
    event = schema.Event(
        payload=schema.LogRecord(message="x" * (MAX_MESSAGE_CHARS + 1)),
        create_time=datetime.datetime.now(datetime.UTC),
    )
    error = refused(codec.decode_client_frame, codec.encode(schema.Publish(seq=1, events=[event])))
    assert (error.code, error.field) == (ErrorCode.TOO_LARGE, "$.events[0].payload.message")


def test_oversize_batches_are_too_large() -> None:
    event = {"payload": {"kind": "scalar", "name": "x", "value": 1}, "create_time": NOW}
    error = refused(
        schema.JSON_CODEC.decode_client_frame,
        json_frame(type="publish", seq=1, events=[event] * (MAX_BATCH + 1)),
    )
    assert (error.code, error.field) == (ErrorCode.TOO_LARGE, "$.events")


def test_empty_batches_are_bad_frames() -> None:
    error = refused(
        schema.JSON_CODEC.decode_client_frame, json_frame(type="publish", seq=1, events=[])
    )
    assert error.field == "$.events"


# Times and numbers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "time", ["2026-11-01T10:00:00", "2026-11-01 10:00", "yesterday", "2026-13-01T00:00:00Z"]
)
def test_naive_or_malformed_times_are_refused(time: str) -> None:
    frame = publish_of({"kind": "event", "message": "m"})
    frame["events"][0]["create_time"] = time
    error = refused(schema.JSON_CODEC.decode_client_frame, json_frame(**frame))
    assert (error.code, error.field) == (ErrorCode.BAD_FRAME, "$.events[0].create_time")


def test_naive_msgpack_times_are_refused() -> None:
    frame = publish_of({"kind": "event", "message": "m"})
    frame["events"][0]["create_time"] = datetime.datetime(2026, 1, 1)
    error = refused(schema.MSGPACK_CODEC.decode_client_frame, msgspec.msgpack.encode(frame))
    assert error.field == "$.events[0].create_time"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_floats_are_refused(value: float) -> None:
    frame = publish_of({"kind": "scalar", "name": "loss", "value": value})
    error = refused(schema.MSGPACK_CODEC.decode_client_frame, msgspec.msgpack.encode(frame))
    assert (error.code, error.field) == (ErrorCode.BAD_FRAME, "$.events[0].payload.value")
    text = schema.JSON_CODEC.encode(schema.Ok(id=1)).replace(b"1", str(value).encode())
    assert refused(schema.JSON_CODEC.decode_broker_frame, text).code is ErrorCode.BAD_FRAME


# Nesting, extensions, transport mismatches ----------------------------------------------------


@pytest.mark.parametrize("depth", [10_000, 200_000])
def test_deeply_nested_json_is_a_bad_frame(depth: int) -> None:
    data = b'{"type":"publish","seq":1,"events":[{"payload":{"kind":"custom","name":"n","data":'
    data += b"[" * depth + b"]" * depth + b'},"create_time":"' + NOW.encode() + b'"}]}'
    assert refused(schema.JSON_CODEC.decode_client_frame, data).code is ErrorCode.BAD_FRAME


def test_deeply_nested_msgpack_is_a_bad_frame() -> None:
    head = msgspec.msgpack.encode({"type": "action_result", "call": 1, "ok": True})[:-1]
    # Rebuild the map with a deeply nested ``result``: 4 entries instead of 3.
    data = (
        b"\x84"
        + head[1:]
        + b"\xc3"
        + msgspec.msgpack.encode("result")
        + b"\x91" * 200_000
        + b"\xc0"
    )
    assert refused(schema.MSGPACK_CODEC.decode_client_frame, data).code is ErrorCode.BAD_FRAME


def test_msgpack_extension_types_are_refused() -> None:
    frame = {"type": "action_result", "call": 1, "ok": True, "result": msgspec.msgpack.Ext(7, b"x")}
    error = refused(schema.MSGPACK_CODEC.decode_client_frame, msgspec.msgpack.encode(frame))
    assert error.code is ErrorCode.BAD_FRAME
    assert "extension type 7" in str(error)


def test_text_on_the_binary_subprotocol_is_a_bad_frame() -> None:
    error = refused(schema.MSGPACK_CODEC.decode_client_frame, '{"type":"stats","id":1}')
    assert error.code is ErrorCode.BAD_FRAME
    assert "binary" in str(error)


def test_unknown_subprotocol_is_refused() -> None:
    with pytest.raises(SchemaError) as caught:
        schema.codec_for("pierhead.v9.xml")
    assert caught.value.code is ErrorCode.UNSUPPORTED_VERSION


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    frame = schema.JSON_CODEC.decode_client_frame(json_frame(type="stats", id=3, future_field=[1]))
    assert frame == schema.StatsRequest(id=3)


def test_schema_error_repr_and_message() -> None:
    error = SchemaError(ErrorCode.CONFLICT, "held by r1", field="$.x")
    assert error.message == "held by r1"
    assert repr(error) == "SchemaError('conflict', 'held by r1', field='$.x')"
    assert isinstance(error, ValueError)


def test_publish_seqs_must_not_run_past_the_counter_range() -> None:
    event = {"payload": {"kind": "scalar", "name": "x", "value": 1}, "create_time": NOW}
    frame = json_frame(type="publish", seq=2**63 - 1, events=[event, event])
    error = refused(schema.JSON_CODEC.decode_client_frame, frame)
    assert error.code is ErrorCode.BAD_FRAME
    assert "2**63" in str(error)
    last = json_frame(type="publish", seq=2**63 - 1, events=[event])
    assert isinstance(schema.JSON_CODEC.decode_client_frame(last), schema.Publish)


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "publish", "seq": 1, "events": [{"payload": {"kind": "custom", "name": "x",
         "data": {(1, 2): 3}}, "create_time": datetime.datetime.now(datetime.UTC)}]},
        {"type": "call", "id": 1, "workspace": "w", "run_id": "r", "action": "a",
         "args": {"x": {(1, 2): 1}}},
        {"type": "action_result", "call": 1, "ok": True, "result": {(1,): 1}},
    ],
)  # fmt: skip
def test_msgpack_values_without_a_json_form_are_refused(frame: dict[str, Any]) -> None:
    error = refused(schema.MSGPACK_CODEC.decode_client_frame, msgspec.msgpack.encode(frame))
    assert error.code is ErrorCode.BAD_FRAME
    assert "JSON form" in str(error)
