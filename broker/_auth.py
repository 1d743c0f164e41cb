"""Admission: who a new session is (its token), whether it may open, and what it may do."""

from __future__ import annotations

import contextlib
import ipaddress
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

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


# The door: which HTTP requests may reach the broker at all -----------------------------------

_DEFAULT_PORTS = {"http": 80, "https": 443}
NULL_ORIGIN = "null"
"""What a browser sends as ``Origin`` from a ``file://`` page, a sandboxed frame or a data URL."""


@dataclass(frozen=True, slots=True)
class DoorRefusal:
    """Why a request is answered 403 before any websocket exists."""

    header: Literal["origin", "host"]
    value: str
    """The offending header as received ("" when it was missing), for the log."""
    body: str
    """The short plain-text answer."""


class Door:
    """Which requests may reach the broker, decided on their ``Host`` and ``Origin`` headers alone.

    Pure: the caller passes the headers and answers 403 with the refusal's body.

    - ``Origin`` is what a browser adds to a request made by a page; every other client (the
      SDK, the CLI, other programs) leaves it out and is never refused for it. A request that
      carries one gets in only from the broker's own origin (this scheme, and the host and port
      the request was sent to, as its ``Host`` says) or from one of ``allowed_origins``: without
      this, any page in any tab of a browser could drive the broker (cross-site websocket
      hijacking), since browsers let pages open websockets anywhere.
    - ``Host`` is checked when the broker listens on loopback, or whenever ``allowed_hosts`` is
      given: then it must be a loopback name or address (``localhost``, ``127.x.y.z``, ``::1``)
      or one of ``allowed_hosts``. A page on ``evil.example`` whose DNS answer flips to
      127.0.0.1 (DNS rebinding) reaches a loopback broker as its own origin, and only the
      ``Host: evil.example`` it still sends gives it away.
    """

    def __init__(
        self,
        *,
        tls: bool,
        loopback: bool,
        allowed_origins: Iterable[str] = (),
        allowed_hosts: Iterable[str] = (),
    ) -> None:
        self._scheme = "https" if tls else "http"
        self._origins = frozenset(_configured_origin(origin) for origin in allowed_origins)
        self._hosts = frozenset(_configured_host(host) for host in allowed_hosts)
        self._check_host = loopback or bool(self._hosts)

    def check(self, host: str | None, origin: str | None) -> DoorRefusal | None:
        """None if a request with these headers may go on, else why not."""
        own = _host_and_port(host or "", self._scheme)
        if self._check_host and (own is None or not self._host_allowed(own[0])):
            return DoorRefusal(
                "host",
                host or "",
                "Host not allowed (see pierhead serve --allowed-host)\n",
            )
        if origin is None:
            return None
        claimed = _origin(origin)
        if claimed is not None and claimed in self._origins:
            return None
        if claimed is not None and own is not None and claimed == (self._scheme, *own):
            return None
        return DoorRefusal(
            "origin",
            origin,
            "Origin not allowed (see pierhead serve --allowed-origin)\n",
        )

    def _host_allowed(self, name: str) -> bool:
        return name in self._hosts or is_loopback_name(name)


def is_loopback_name(name: str) -> bool:
    """Whether a host name (lower case, IPv6 without brackets) can only mean this machine."""
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host_and_port(value: str, scheme: str) -> tuple[str, int] | None:
    """``Host``'s name (lower case) and port (the scheme's default if absent); None if invalid."""
    if not value or any(c in value for c in "/?#@\\ \t"):
        return None
    try:
        parts = urlsplit(f"//{value}")
        port = parts.port
    except ValueError:
        return None
    name = parts.hostname
    if not name:
        return None
    with contextlib.suppress(ValueError):
        name = str(ipaddress.ip_address(name))
    return name, port if port is not None else _DEFAULT_PORTS[scheme]


def _origin(value: str) -> tuple[str, str, int] | None:
    """An ``Origin`` as (scheme, host, port), ``("null", "", 0)``, or None if it is not one."""
    if value == NULL_ORIGIN:
        return (NULL_ORIGIN, "", 0)
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or parts.path or parts.query or parts.fragment:
        return None
    host = _host_and_port(parts.netloc, parts.scheme)
    return None if host is None else (parts.scheme, *host)


def _configured_origin(value: str) -> tuple[str, str, int]:
    origin = _origin(value.strip())
    if origin is None:
        raise ValueError(
            f"--allowed-origin {value!r} is not an origin like https://ops.example.com:8443 or null"
        )
    return origin


def _configured_host(value: str) -> str:
    text = value.strip().lower()
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(bare))
    if not text or any(c in text for c in ":/?#@[]\\ \t"):
        raise ValueError(
            f"--allowed-host {value!r} is not a host name (without a port) like broker.example.com"
        )
    return text
