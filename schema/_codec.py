"""Frame codecs for the two subprotocols, each with one reused Encoder and Decoder per direction.

Every failure to decode becomes a :class:`SchemaError` carrying the code to answer with; no
msgspec exception, ``RecursionError`` or ``KeyError`` leaves this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import Any, Final, NoReturn, TypeVar

import msgspec

from ._broker_frames import BrokerFrame, Events
from ._client_frames import ActionCall, ActionResult, ClientFrame, Hello, Publish
from ._envelope import EventMsg
from ._errors import ErrorCode, SchemaError
from ._limits import PROTOCOL_VERSION
from ._payloads import Custom, Hyperparameters
from ._types import PATTERN_MEANINGS, RequestId

JSON_SUBPROTOCOL: Final = "pierhead.v1.json"
MSGPACK_SUBPROTOCOL: Final = "pierhead.v1.msgpack"

_Frame = TypeVar("_Frame", ClientFrame, BrokerFrame)
_T = TypeVar("_T")

_PATH_MARKER = " - at `"


def _refuse_extension(code: int, data: memoryview) -> NoReturn:
    # Extension types have no JSON form, so a msgpack client could not be relayed to a JSON one.
    raise SchemaError(ErrorCode.BAD_FRAME, f"MessagePack extension type {code} is not allowed")


def _schema_error(exc: Exception) -> SchemaError:
    if isinstance(exc, msgspec.ValidationError):
        text = str(exc)
        message, marker, path = text.partition(_PATH_MARKER)
        field = path.rstrip("`") if marker else None
        code = ErrorCode.TOO_LARGE if "length <=" in message else ErrorCode.BAD_FRAME
        for pattern, meaning in PATTERN_MEANINGS.items():
            if message == f"Expected `str` matching regex {pattern!r}":
                text = f"Expected {meaning}{marker}{path}"
        return SchemaError(code, text, field=field)
    if isinstance(exc, RecursionError):
        return SchemaError(ErrorCode.BAD_FRAME, "frame is nested too deeply")
    return SchemaError(ErrorCode.BAD_FRAME, f"malformed frame: {exc}")


def _msgpack_array_header(length: int) -> bytes:
    if length < 16:
        return bytes((0x90 | length,))
    if length < 2**16:
        return b"\xdc" + length.to_bytes(2, "big")
    return b"\xdd" + length.to_bytes(4, "big")


def convert(value: Any, target: type[_T]) -> _T:
    """Build ``target`` from plain data with every decode-time check applied.

    For clients that assemble frames and events from user input: a value the broker would
    refuse is refused here, with the same SchemaError and code.
    """
    try:
        return msgspec.convert(value, target)
    except (msgspec.MsgspecError, RecursionError) as exc:
        raise _schema_error(exc) from None


_JSON_CHECK = msgspec.json.Encoder()
_FREE_FORM_PAYLOADS: Final = frozenset({Custom, Hyperparameters})
_payload_of = attrgetter("payload")


def _free_form_values(frame: ClientFrame) -> list[object]:
    """The values of ``frame`` whose shape the schema leaves open."""
    if isinstance(frame, Publish):
        events = frame.events
        # Nearly every publish has none: ask in C before looking at any event in Python.
        if _FREE_FORM_PAYLOADS.isdisjoint(map(type, map(_payload_of, events))):
            return []
        return [e.payload for e in events if type(e.payload) in _FREE_FORM_PAYLOADS]
    if isinstance(frame, ActionCall):
        return [frame.args]
    if isinstance(frame, ActionResult):
        return [frame.result]
    return []


def _check_free_form(frame: ClientFrame) -> None:
    """Free-form values from a MessagePack client must also have a JSON form.

    MessagePack maps may have array or binary keys, which JSON cannot express; a broker relays
    such values to JSON clients, so they are refused here, at the door, not at delivery.
    """
    for value in _free_form_values(frame):
        try:
            _JSON_CHECK.encode(value)
        except (TypeError, ValueError, OverflowError) as exc:
            raise SchemaError(
                ErrorCode.BAD_FRAME, f"a free-form value has no JSON form: {exc}"
            ) from None


class _RequestProbe(msgspec.Struct, gc=False):
    """Just the tag and ``id`` of a frame, every other field skipped unread."""

    type: str | None = None
    id: RequestId | None = None


_REQUEST_TAGS: Final = frozenset(
    str(member.__struct_config__.tag)
    for member in ClientFrame.__args__
    if "id" in member.__struct_fields__
)
_JSON_PROBE: Final = msgspec.json.Decoder(_RequestProbe)
_MSGPACK_PROBE: Final = msgspec.msgpack.Decoder(_RequestProbe, ext_hook=_refuse_extension)


def _request_id_of(data: bytes | str, *, text: bool) -> int | None:
    """The ``id`` of a request frame the schema refused, if it can be read at all."""
    if isinstance(data, str) and not text:
        return None
    try:
        probe = (_JSON_PROBE if text else _MSGPACK_PROBE).decode(data)  # type: ignore[arg-type]
    except (msgspec.MsgspecError, RecursionError, SchemaError):
        return None
    return probe.id if probe.type in _REQUEST_TAGS else None


class Codec:
    """Encodes and decodes frames for one subprotocol.

    ``text`` tells the transport whether the encoded bytes go out as a text frame (JSON) or a
    binary frame (MessagePack).
    """

    __slots__ = (
        "_broker_decoder",
        "_client_decoder",
        "_encoder",
        "_events_head",
        "_events_middle",
        "subprotocol",
        "text",
    )

    subprotocol: str
    text: bool

    def __init__(
        self,
        subprotocol: str,
        *,
        text: bool,
        encoder: msgspec.json.Encoder | msgspec.msgpack.Encoder,
        client_decoder: msgspec.json.Decoder[ClientFrame] | msgspec.msgpack.Decoder[ClientFrame],
        broker_decoder: msgspec.json.Decoder[BrokerFrame] | msgspec.msgpack.Decoder[BrokerFrame],
    ) -> None:
        self.subprotocol = subprotocol
        self.text = text
        self._encoder = encoder
        self._client_decoder = client_decoder
        self._broker_decoder = broker_decoder
        # The encoder's own bytes around ``sub`` and before the (empty) events array; see
        # events_frame. Taken from the encoder so that the spliced frames match it exactly.
        marker = 0x5EED_CAFE
        empty = encoder.encode(Events(sub=marker, events=[]))
        head, _, rest = empty.partition(encoder.encode(marker))
        empty_tail = b"[]}" if text else encoder.encode([])
        self._events_head = head
        self._events_middle = rest[: -len(empty_tail)]

    def __repr__(self) -> str:
        return f"Codec({self.subprotocol!r})"

    def encode(self, frame: ClientFrame | BrokerFrame) -> bytes:
        """Encode one frame; the result is one websocket message."""
        return self._encoder.encode(frame)

    def encode_event(self, event: EventMsg) -> bytes:
        """Encode one event on its own, to be sent later inside :meth:`events_frame`."""
        return self._encoder.encode(event)

    def encode_event_run(self, events: Sequence[EventMsg]) -> bytes:
        """Encode consecutive events (at least one) in one call, back to back as they sit
        inside an array of events (in JSON, with the commas between them): :meth:`event_array`
        joins such runs as it joins single events. Cheaper than an :meth:`encode_event` call
        per event."""
        data = self._encoder.encode(events)
        if self.text:
            return data[1:-1]
        return data[len(_msgpack_array_header(len(events))) :]

    def events_frame(self, sub: int, encoded_events: Sequence[bytes]) -> bytes:
        """An ``events`` frame from events already encoded with :meth:`encode_event`.

        A broker encodes each event once per codec and shares the bytes among all the
        subscribers that receive it; the result equals ``encode(Events(sub, events))``.
        """
        return self.events_frame_of(sub, self.event_array(encoded_events))

    def event_array(self, encoded_events: Sequence[bytes], count: int | None = None) -> bytes:
        """The encoded array of events that :meth:`events_frame_of` wraps, made once, from
        events encoded with :meth:`encode_event` or runs of them from
        :meth:`encode_event_run`; ``count``: how many events they hold (one each when not
        given)."""
        if self.text:
            return b"".join((b"[", b",".join(encoded_events), b"]"))
        total = len(encoded_events) if count is None else count
        return b"".join((_msgpack_array_header(total), *encoded_events))

    def events_frame_of(self, sub: int, event_array: bytes) -> bytes:
        """An ``events`` frame for ``sub`` around an array from :meth:`event_array`.

        Subscribers at the same place in a stream share the array; only this wrapper,
        a few bytes, is made per subscriber.
        """
        head = (self._events_head, self._encoder.encode(sub), self._events_middle, event_array)
        return b"".join((*head, b"}")) if self.text else b"".join(head)

    def decode_client_frame(self, data: bytes | str) -> ClientFrame:
        """Decode a frame a client sent (the broker's side).

        A refused request frame's ``id``, when it can be read, is on the SchemaError's
        ``request_id``, so that the error reply can carry it.
        """
        try:
            frame = self._decode(self._client_decoder, data)
            if not self.text:
                _check_free_form(frame)
        except SchemaError as exc:
            exc.request_id = _request_id_of(data, text=self.text)
            raise
        if isinstance(frame, Hello) and frame.protocol != PROTOCOL_VERSION:
            raise SchemaError(
                ErrorCode.UNSUPPORTED_VERSION,
                f"protocol {frame.protocol} is not supported; "
                f"this broker speaks {PROTOCOL_VERSION}",
                field="$.protocol",
            )
        return frame

    def decode_broker_frame(self, data: bytes | str) -> BrokerFrame:
        """Decode a frame a broker sent (the client's side)."""
        return self._decode(self._broker_decoder, data)

    def _decode(
        self,
        decoder: msgspec.json.Decoder[_Frame] | msgspec.msgpack.Decoder[_Frame],
        data: bytes | str,
    ) -> _Frame:
        if isinstance(data, str) and not self.text:
            raise SchemaError(ErrorCode.BAD_FRAME, f"{self.subprotocol} frames must be binary")
        try:
            # msgspec's JSON decoder reads str as well as bytes, without a copy.
            return decoder.decode(data)  # type: ignore[arg-type]
        except SchemaError:
            raise
        except (msgspec.MsgspecError, RecursionError) as exc:
            raise _schema_error(exc) from None


JSON_CODEC: Final = Codec(
    JSON_SUBPROTOCOL,
    text=True,
    encoder=msgspec.json.Encoder(),
    client_decoder=msgspec.json.Decoder(ClientFrame),
    broker_decoder=msgspec.json.Decoder(BrokerFrame),
)

MSGPACK_CODEC: Final = Codec(
    MSGPACK_SUBPROTOCOL,
    text=False,
    encoder=msgspec.msgpack.Encoder(),
    client_decoder=msgspec.msgpack.Decoder(ClientFrame, ext_hook=_refuse_extension),
    broker_decoder=msgspec.msgpack.Decoder(BrokerFrame, ext_hook=_refuse_extension),
)

SUBPROTOCOLS: Final = (JSON_SUBPROTOCOL, MSGPACK_SUBPROTOCOL)
"""In order of preference; JSON is the default when a client asks for none."""

_CODECS: Final = {codec.subprotocol: codec for codec in (JSON_CODEC, MSGPACK_CODEC)}


def codec_for(subprotocol: str | None) -> Codec:
    """The codec for a negotiated subprotocol; JSON when none was negotiated."""
    if subprotocol is None:
        return JSON_CODEC
    try:
        return _CODECS[subprotocol]
    except KeyError:
        raise SchemaError(
            ErrorCode.UNSUPPORTED_VERSION,
            f"unknown subprotocol {subprotocol!r}; expected one of {', '.join(SUBPROTOCOLS)}",
        ) from None
