"""Exceptions the SDK raises, each with a message that says what to do about it."""

from __future__ import annotations

from typing import Any

from schema import ErrorCode, SchemaError


class PierheadError(Exception):
    """Base class of every exception the SDK raises."""


class BrokerRefusedError(PierheadError):
    """The broker answered a request with an ``error`` frame."""

    def __init__(self, code: ErrorCode, message: str, detail: dict[str, Any] | None = None):
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message
        self.detail = detail or {}


class ConnectionLostError(PierheadError):
    """The connection dropped before the broker answered; the request may or may not have run."""


class ClosedError(PierheadError):
    """The client was closed, or stopped for good (see ``__cause__``)."""


class AuthenticationError(ClosedError):
    """The broker refused the credentials (close 4001); retrying cannot help."""


class ForbiddenError(ClosedError):
    """The broker closed the session as not allowed (close 4003), e.g. its workspace was
    deleted or the token lacks the role; retrying cannot help."""


class ReplacedError(ClosedError):
    """Another connection of the same workspace and run id took over (close 4009)."""


class LeaseLostError(PierheadError):
    """The mutex lease this code held was broken or expired; its fence is no longer valid."""

    def __init__(self, fence: int, reason: str) -> None:
        super().__init__(f"mutex lease with fence {fence} lost: {reason}")
        self.fence = fence
        self.reason = reason


class InvalidArgumentError(PierheadError, SchemaError):
    """An argument the broker would refuse, refused at the call before anything is sent.

    Also a ``schema.SchemaError`` (and so a ``ValueError``): ``code`` is the error code the
    broker would have answered with (``bad_frame``, or ``too_large`` for a length bound) and
    ``field`` the path of the offending value when there is one.
    """

    def __init__(
        self, message: str, *, code: ErrorCode = ErrorCode.BAD_FRAME, field: str | None = None
    ) -> None:
        super().__init__(code, message, field=field)

    @classmethod
    def from_schema(cls, error: SchemaError, what: str) -> InvalidArgumentError:
        """``error`` from the schema, with ``what`` was refused in front of its message."""
        return cls(f"{what}: {error}", code=error.code, field=error.field)


class PierheadTimeoutError(PierheadError, TimeoutError):
    """A wait the SDK bounds ran out: ``flush``/``wait_acked`` after their ``timeout``, or a
    request the broker did not answer in time. Also a builtin ``TimeoutError``."""
