"""The stream's audit vocabulary: the broker-made ``call`` payload, the semaphores' mutex
attribution and grace deadline, and typed action parameters; all additive to older peers."""

from __future__ import annotations

import datetime
from typing import Any

import msgspec
import pytest

import schema
from schema import ErrorCode, SchemaError

CODECS = [schema.JSON_CODEC, schema.MSGPACK_CODEC]
CODEC_IDS = [codec.subprotocol for codec in CODECS]
NOW = datetime.datetime(2026, 11, 1, 10, 0, tzinfo=datetime.UTC)

CALL = schema.CallRecord(
    call=7,
    action="set_lr",
    run_id="train:1",
    outcome="bad_call",
    caller="alice",
    args={"value": "abc", "nested": [1, {"a": None}]},
    error=schema.ActionFailure(type="pierhead.bad_call", message="bad arguments"),
    started=NOW,
)
HELD_IN_GRACE = schema.WorkspaceSemaphores(
    has_mutex=True,
    holder="train:1",
    fence=4,
    mutex_change="holder_left",
    mutex_by="train:1",
    grace_until=NOW + datetime.timedelta(seconds=30),
)


def event_of(payload: schema.Payload, offset: int = 1) -> schema.EventMsg:
    return schema.EventMsg(
        workspace="train", offset=offset, create_time=NOW, received_time=NOW, payload=payload
    )


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_a_call_record_round_trips_in_events_and_history(codec: schema.Codec) -> None:
    for frame in (
        schema.Events(sub=1, events=[event_of(CALL)]),
        schema.HistoryPage(id=2, events=[event_of(CALL)], more=False),
    ):
        assert codec.decode_broker_frame(codec.encode(frame)) == frame
    assert event_of(CALL).kind == "call"


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_a_worker_cannot_publish_a_call_record(codec: schema.Codec) -> None:
    frame = {
        "type": "publish",
        "seq": 1,
        "events": [{"payload": msgspec.to_builtins(CALL), "create_time": NOW}],
    }
    encoded = (msgspec.json if codec.text else msgspec.msgpack).encode(frame)
    with pytest.raises(SchemaError) as refused:
        codec.decode_client_frame(encoded)
    assert refused.value.code is ErrorCode.BAD_FRAME
    assert refused.value.field == "$.events[0].payload.kind"


def test_call_is_a_kind_that_subscribe_and_history_filter_on() -> None:
    codec = schema.JSON_CODEC
    subscribe = codec.decode_client_frame(
        b'{"type": "subscribe", "id": 1, "pattern": "*", "kinds": ["call", "semaphores"]}'
    )
    history = codec.decode_client_frame(
        b'{"type": "history", "id": 2, "workspace": "train", "kinds": ["call"]}'
    )
    assert isinstance(subscribe, schema.Subscribe)
    assert subscribe.kinds == ["call", "semaphores"]
    assert isinstance(history, schema.HistoryQuery)
    assert history.kinds == ["call"]


@pytest.mark.parametrize("outcome", ["ok", "failed", "bad_call", "timeout", "worker_gone"])
def test_every_outcome_decodes_and_others_are_refused(outcome: schema.CallOutcome) -> None:
    wire = {"kind": "call", "call": 1, "action": "a", "run_id": "r", "outcome": outcome}
    assert msgspec.convert(wire, schema.Payload) == schema.CallRecord(
        call=1, action="a", run_id="r", outcome=outcome
    )
    with pytest.raises(msgspec.ValidationError, match="outcome"):
        msgspec.convert({**wire, "outcome": "lost"}, schema.Payload)


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_the_semaphores_carry_mutex_attribution_and_grace_everywhere(
    codec: schema.Codec,
) -> None:
    fields = {name: getattr(HELD_IN_GRACE, name) for name in HELD_IN_GRACE.__struct_fields__}
    frames: list[schema.BrokerFrame] = [
        schema.SemaphoresPush(workspace="train", **fields),
        schema.Events(sub=1, events=[event_of(schema.SemaphoresChange(**fields))]),
        schema.Welcome(
            protocol=1,
            server="s",
            session="x",
            roles=["worker"],
            heartbeat_s=5.0,
            limits=schema.Limits(max_frame_bytes=1, max_batch=1),
            semaphores=HELD_IN_GRACE,
        ),
    ]
    for frame in frames:
        assert codec.decode_broker_frame(codec.encode(frame)) == frame
    folded = schema.fold_event(
        schema.new_workspace_state("train", epoch=1, created=NOW),
        event_of(schema.SemaphoresChange(**fields)),
    )
    assert folded.semaphores == HELD_IN_GRACE


class _OlderSemaphores(msgspec.Struct, frozen=True, kw_only=True):
    """WorkspaceSemaphores as a peer before these fields decodes it."""

    caught: bool = False
    has_mutex: bool = False
    holder: str | None = None
    fence: int = 0
    by: str | None = None
    reason: str | None = None


def test_older_and_newer_peers_read_each_other() -> None:
    newer = msgspec.json.encode(HELD_IN_GRACE)
    assert msgspec.json.decode(newer, type=_OlderSemaphores) == _OlderSemaphores(
        has_mutex=True, holder="train:1", fence=4
    )
    older = msgspec.json.encode(_OlderSemaphores(caught=True, by="bob"))
    decoded = msgspec.json.decode(older, type=schema.WorkspaceSemaphores)
    assert decoded == schema.WorkspaceSemaphores(caught=True, by="bob")
    assert (decoded.mutex_change, decoded.mutex_by, decoded.grace_until) == (None, None, None)
    assert msgspec.json.encode(schema.WorkspaceSemaphores()) == b"{}"


def test_a_naive_grace_deadline_is_refused() -> None:
    with pytest.raises(SchemaError) as refused:
        schema.convert({"grace_until": "2026-11-01T10:00:00"}, schema.WorkspaceSemaphores)
    assert refused.value.code is ErrorCode.BAD_FRAME


SIGNED = schema.ActionSpec(
    name="set_lr",
    params=["value", "warmup", "note", "fast", "extra"],
    signature=[
        schema.ActionParam(name="value", kind="number"),
        schema.ActionParam(name="warmup", kind="integer", required=False, default=100),
        schema.ActionParam(name="note", kind="string", required=False, default="x"),
        schema.ActionParam(name="fast", kind="boolean", required=False, default=False),
        schema.ActionParam(name="extra", required=False, default=0.5),
    ],
)


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_an_action_signature_round_trips_in_hello_and_presence(codec: schema.Codec) -> None:
    hello = schema.Hello(
        protocol=1, role="worker", workspace="train", run_id="train:1", actions=[SIGNED]
    )
    assert codec.decode_client_frame(codec.encode(hello)) == hello
    events = schema.Events(
        sub=1,
        events=[event_of(schema.Presence(run_id="train:1", state="connected", actions=[SIGNED]))],
    )
    decoded = codec.decode_broker_frame(codec.encode(events))
    assert decoded == events
    assert isinstance(decoded, schema.Events)
    payload = decoded.events[0].payload
    assert isinstance(payload, schema.Presence)
    defaults = [param.default for param in payload.actions[0].signature]
    assert [type(value) for value in defaults] == [type(None), int, str, bool, float]


@pytest.mark.parametrize(
    ("param", "code"),
    [
        ({"name": "x", "kind": "date"}, ErrorCode.BAD_FRAME),
        ({"name": ""}, ErrorCode.BAD_FRAME),
        ({"name": "x", "default": [1]}, ErrorCode.BAD_FRAME),
        ({"name": "x", "default": "y" * 4097}, ErrorCode.TOO_LARGE),
    ],
)
def test_a_bad_action_param_is_refused(param: dict[str, Any], code: ErrorCode) -> None:
    with pytest.raises(SchemaError) as refused:
        schema.convert({"name": "a", "signature": [param]}, schema.ActionSpec)
    assert refused.value.code is code


def test_a_signature_is_bounded_like_params() -> None:
    with pytest.raises(SchemaError) as refused:
        schema.convert(
            {"name": "a", "signature": [{"name": f"p{i}"} for i in range(33)]}, schema.ActionSpec
        )
    assert refused.value.code is ErrorCode.TOO_LARGE
