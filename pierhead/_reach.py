"""The command's first contact with a broker: a well-formed ``--url`` (one address, or several
separated by commas), one handshake per address in turn, and when all fail, why each did
(refused, DNS, TLS, not a websocket server) in words an operator can act on."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI
from websockets.uri import parse_uri

from sdk import (
    AuthenticationError,
    BrokerRefusedError,
    ClosedError,
    ConnectionLostError,
    ForbiddenError,
    PierheadError,
    Watcher,
)

CONNECT_TIMEOUT_S = 5.0


class UnreachableError(PierheadError):
    """The broker could not be reached at all; the message says why."""


def split_urls(text: str) -> tuple[str, ...]:
    """The addresses in a ``--url`` or ``PIERHEAD_URL`` value: one, or several separated by
    commas (spaces around them ignored), tried in this order."""
    return tuple(part.strip() for part in text.split(","))


def url_problem(text: str) -> str | None:
    """Why ``text`` (one address or several, comma-separated) cannot be brokers' addresses, or
    None: each address by the SDK's own rule (websockets'), the first bad one named."""
    for url in split_urls(text):
        if not url:
            return f"invalid --url {text!r}: an empty address between commas"
        try:
            parse_uri(url)
        except (InvalidURI, ValueError) as exc:
            return f"invalid --url {url!r}: {exc}"
    return None


def connect_failure(error: BaseException) -> str:
    """What a failed websocket connect means, in a few words."""
    match error:
        case ConnectionRefusedError():
            return "connection refused (nothing listens there)"
        case socket.gaierror():
            return f"the host name does not resolve ({error.strerror})"
        case ssl.SSLCertVerificationError():
            return f"TLS: the certificate is not trusted ({error.verify_message})"
        case ssl.SSLError():
            return f"TLS handshake failed ({error.reason or error})"
        case InvalidStatus():
            response = error.response
            return (
                "not a websocket server (it answered the upgrade with HTTP "
                f"{response.status_code} {response.reason_phrase})"
            )
        case InvalidHandshake():
            return f"not a websocket server ({error})"
        case TimeoutError():
            return f"no answer within {CONNECT_TIMEOUT_S:g} s"
        case ConnectionResetError():
            # What a server without TLS does with a TLS hello (a wss:// URL to a ws:// broker).
            return "the server reset the connection during the handshake (wss:// to ws://?)"
        case OSError(strerror=str(reason)):
            return reason
        case _:
            return str(error) or type(error).__name__


async def why_unreachable(url: str, error: BaseException) -> str:
    """Why the watcher's first connection to ``url`` failed with ``error``."""
    if isinstance(error, TimeoutError):
        return connect_failure(error)
    cause = error.__cause__
    if cause is not None and not isinstance(cause, ConnectionLostError):
        return str(cause)
    if cause is not None and cause.__cause__ is not None:
        return connect_failure(cause.__cause__)
    # The SDK says only that the connection dropped: one bare attempt learns the reason.
    try:
        async with connect(url, open_timeout=CONNECT_TIMEOUT_S, compression=None):
            return "the connection dropped during the handshake"
    except Exception as probe_error:
        return connect_failure(probe_error)


@asynccontextmanager
async def connected_watcher(
    url: str | Sequence[str], token: str | None, *, client: str
) -> AsyncIterator[Watcher]:
    """A started watcher after one successful handshake, without retries; closed on the way out.

    With several addresses, each is tried once, in order, until one answers. Raises
    UnreachableError naming every address tried and why each failed, or the broker's refusal
    (AuthenticationError, ForbiddenError, BrokerRefusedError): it was reached, and said no.
    """
    failures: list[str] = []
    for address in (url,) if isinstance(url, str) else url:
        try:
            watcher = await _first_contact(address, token, client=client)
        except _UnreachedError as unreached:
            failures.append(f"{address}: {unreached}")
            continue
        try:
            yield watcher
        finally:
            await watcher.close()
        return
    raise UnreachableError("cannot reach the broker at " + "; nor at ".join(failures))


class _UnreachedError(Exception):
    """One address did not answer; the message says why."""


async def _first_contact(url: str, token: str | None, *, client: str) -> Watcher:
    """A watcher welcomed by the broker at ``url``, else _UnreachedError or the refusal."""
    watcher = Watcher(url, token=token, client=client, reconnect=False)
    await watcher.start()
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            await watcher.connected()
    except (ClosedError, TimeoutError) as exc:
        await watcher.close()
        cause = exc.__cause__
        if isinstance(cause, AuthenticationError | ForbiddenError | BrokerRefusedError):
            raise cause from None
        raise _UnreachedError(await why_unreachable(url, exc)) from None
    except BaseException:
        await watcher.close()
        raise
    return watcher
