"""Error codes, close codes and the one exception that decoding raises."""

from __future__ import annotations

import enum


class ErrorCode(enum.StrEnum):
    """The ``code`` of an ``error`` frame."""

    BAD_FRAME = "bad_frame"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    TIMEOUT = "timeout"
    INTERNAL = "internal"


class CloseCode(enum.IntEnum):
    """Websocket close codes the broker uses."""

    GOING_AWAY = 1001
    """The broker is draining; reconnect after ``draining.reconnect_after_s``."""
    MESSAGE_TOO_BIG = 1009
    PROTOCOL_ERROR = 4000
    UNAUTHORIZED = 4001
    FORBIDDEN = 4003
    SLOW_CONSUMER = 4008
    """The session fell too far behind; resume from the last delivered offset."""
    REPLACED = 4009
    """A newer connection with the same (workspace, run_id) took over."""
    RATE_LIMITED = 4029


class SchemaError(ValueError):
    """A frame or value that the schema refuses.

    Every decoding failure becomes this exception, whatever went wrong underneath, so callers
    need one ``except`` clause and can answer with ``code`` directly.
    """

    code: ErrorCode
    field: str | None
    request_id: int | None
    """The ``id`` of the refused request frame, when it could be read (for the error reply)."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        field: str | None = None,
        request_id: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
        self.request_id = request_id

    @property
    def message(self) -> str:
        return str(self)

    def __repr__(self) -> str:
        return f"SchemaError({self.code.value!r}, {str(self)!r}, field={self.field!r})"
