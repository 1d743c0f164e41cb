"""Admission: who a new session is (its token), whether it may open, and what it may do."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass

from schema import CloseCode, ErrorCode, Hello

from ._access import OPEN, WATCHER_SESSION_ROLES, Grant, roles_of
from ._tokens import Token, TokenStore

_MAX_TRACKED_ADDRESSES = 10_000
_WINDOW_S = 60.0


class FailureThrottle:
    """Failed authentications per address in the last minute, for a bounded set of addresses.

    Pure: the caller passes the time. An address over the limit is refused without even
    looking at what it presents, which makes guessing expensive.
    """

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def blocked(self, address: str, now: float) -> bool:
        failures = self._failures.get(address)
        if failures is None:
            return False
        while failures and failures[0] <= now - _WINDOW_S:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return False
        return len(failures) >= self.per_minute

    def failed(self, address: str, now: float) -> None:
        failures = self._failures.setdefault(address, deque())
        self._failures.move_to_end(address)
        failures.append(now)
        while len(failures) > self.per_minute:
            failures.popleft()
        while len(self._failures) > _MAX_TRACKED_ADDRESSES:
            self._failures.popitem(last=False)


@dataclass(frozen=True, slots=True)
class Refused:
    code: ErrorCode
    close: int
    message: str


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header."""
    if header is None:
        return None
    scheme, _, credentials = header.partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else None


def admit(
    hello: Hello,
    *,
    tokens: TokenStore | None,
    header_token: str | None,
    throttle: FailureThrottle,
    address: str,
) -> Grant | Refused:
    """The grant for a new session, or why it is refused (answered, then closed)."""
    if tokens is None:
        return OPEN
    now = time.monotonic()
    if throttle.blocked(address, now):
        return Refused(
            ErrorCode.RATE_LIMITED,
            CloseCode.RATE_LIMITED,
            "too many failed attempts; wait a minute",
        )
    result = tokens.authenticate(hello.token or header_token)
    if not isinstance(result, Token):
        throttle.failed(address, now)
        messages = {
            "missing": "this broker needs a token (hello.token or Authorization: Bearer)",
            "malformed": "that is not a pierhead token",
            "unknown": "unknown token",
            "revoked": "this token was revoked",
            "expired": "this token has expired",
        }
        return Refused(ErrorCode.UNAUTHORIZED, CloseCode.UNAUTHORIZED, messages[result])
    grant = Grant(
        roles=roles_of(result.roles), scope=result.scope, token_id=result.id, token_name=result.name
    )
    if hello.role == "worker":
        assert hello.workspace is not None
        if not grant.has("worker"):
            return Refused(
                ErrorCode.FORBIDDEN, CloseCode.FORBIDDEN, "this token has no worker role"
            )
        if not grant.covers(hello.workspace):
            return Refused(
                ErrorCode.FORBIDDEN,
                CloseCode.FORBIDDEN,
                f"workspace {hello.workspace!r} is outside this token's scope ({grant.scope})",
            )
    elif not grant.roles & WATCHER_SESSION_ROLES:
        return Refused(
            ErrorCode.FORBIDDEN, CloseCode.FORBIDDEN, "this token cannot open a watcher session"
        )
    return grant
