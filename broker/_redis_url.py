"""The ``--store`` URL of a Redis store: parsed, checked, and shown without its password.

Accepted forms::

    redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]      plain TCP, port 6379, database 0
    rediss://[[USER]:PASSWORD@]HOST[:PORT][/DB]     TLS, certificates checked
    unix://[[USER]:PASSWORD@]/PATH[?db=N]            a unix socket
    sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/SERVICE[/DB]
                                                     the primary that these Sentinels
                                                     (port 26379) name for SERVICE, found
                                                     again after a failover

A password in the URL wins; without one, ``PIERHEAD_REDIS_PASSWORD`` is used when set. The
password is kept in a field that no ``repr``, error message or log shows: :meth:`RedisTarget.
redacted` is the only way the URL is ever printed. Percent-escapes in the user and password
are decoded (``%40`` for ``@``).

Anything else is a :class:`StoreUrlError` whose message names what is wrong and shows the URL
redacted. Parsing is pure: the environment is passed in, nothing is connected to.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

__all__ = [
    "DEFAULT_PORT",
    "PASSWORD_VARIABLE",
    "RedisTarget",
    "StoreUrlError",
    "parse_redis_url",
]

PASSWORD_VARIABLE: Final = "PIERHEAD_REDIS_PASSWORD"
DEFAULT_PORT: Final = 6379
MAX_DB: Final = 15
"""Redis' default ``databases 16``: a higher number is refused by the server anyway, and a
typo here is better caught before connecting."""
_DIGITS: Final = re.compile(r"[0-9]{1,5}")

Scheme = Literal["redis", "rediss", "unix", "sentinel"]
SENTINEL_PORT: Final = 26379


class StoreUrlError(ValueError):
    """A ``--store`` URL that cannot be used; the message never holds the password."""


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """Where a Redis store lives and how to log in; ``password`` never shows in ``repr``."""

    scheme: Scheme
    host: str | None = None
    """Host name or address for ``redis``/``rediss``; ``None`` for a unix socket."""
    port: int | None = None
    path: str | None = None
    """The socket's path for ``unix``."""
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinels: tuple[tuple[str, int], ...] = ()
    """For ``sentinel``: the Sentinels' addresses."""
    service: str | None = None
    """For ``sentinel``: the name the Sentinels monitor the primary under."""

    @property
    def tls(self) -> bool:
        return self.scheme == "rediss"

    def redacted(self) -> str:
        """The URL with the password replaced by ``***``: the only form ever printed."""
        login = ""
        if self.username is not None or self.password is not None:
            user = urllib.parse.quote(self.username or "", safe="")
            login = f"{user}:***@" if self.password is not None else f"{user}@"
        if self.scheme == "unix":
            return f"unix://{login}{self.path}?db={self.db}"
        if self.scheme == "sentinel":
            hosts = ",".join(f"{host}:{port}" for host, port in self.sentinels)
            return f"sentinel://{login}{hosts}/{self.service}/{self.db}"
        host = f"[{self.host}]" if self.host is not None and ":" in self.host else self.host
        return f"{self.scheme}://{login}{host}:{self.port}/{self.db}"

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for ``redis.Redis`` / ``redis.asyncio.Redis`` (TLS certificates
        checked); for ``sentinel``, those of the primary's connections."""
        options: dict[str, Any] = {"db": self.db}
        if self.username is not None:
            options["username"] = self.username
        if self.password is not None:
            options["password"] = self.password
        if self.scheme == "unix":
            options["unix_socket_path"] = self.path
        elif self.scheme == "sentinel":
            pass  # the Sentinels say where the primary is
        else:
            options["host"] = self.host
            options["port"] = self.port
            if self.tls:
                options["ssl"] = True
                options["ssl_cert_reqs"] = "required"
        return options


def parse_redis_url(url: str, environ: Mapping[str, str]) -> RedisTarget:
    """The :class:`RedisTarget` a ``--store`` URL names; ``environ`` supplies the password
    when the URL has none."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:
        # urlsplit's messages do not quote the URL, so naming its reason leaks nothing.
        raise StoreUrlError(f"store URL is not a URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss", "unix", "sentinel"):
        shown = scheme + "://" if scheme else "none"
        raise StoreUrlError(
            f"store URL scheme {shown!r} is not one of redis://, rediss://, unix://, sentinel://"
        )
    if parts.fragment:
        raise StoreUrlError(f"store URL {_shown(url, parts)} has a #fragment")
    username = _unquoted(parts.username)
    password = _unquoted(parts.password)
    if password is None:
        password = environ.get(PASSWORD_VARIABLE) or None
    if username == "":
        username = None
    query = _query(url, parts)
    if scheme == "unix":
        return _unix_target(url, parts, query, username, password)
    if scheme == "sentinel":
        return _sentinel_target(url, parts, query, username, password)
    tcp: Literal["redis", "rediss"] = "rediss" if scheme == "rediss" else "redis"
    return _tcp_target(tcp, url, parts, query, username, password)


def _tcp_target(
    scheme: Literal["redis", "rediss"],
    url: str,
    parts: urllib.parse.SplitResult,
    query: dict[str, str],
    username: str | None,
    password: str | None,
) -> RedisTarget:
    shown = _shown(url, parts)
    if query:
        raise StoreUrlError(
            f"store URL {shown} has query parameters ({', '.join(sorted(query))}): "
            f"{scheme}:// takes the database as the path, /N"
        )
    host = parts.hostname
    if not host:
        raise StoreUrlError(f"store URL {shown} names no host")
    port = _port(shown, parts)
    db_text = parts.path.removeprefix("/")
    db = 0 if db_text == "" else _db(shown, db_text, "path")
    return RedisTarget(
        scheme=scheme, host=host, port=port, db=db, username=username, password=password
    )


def _unix_target(
    url: str,
    parts: urllib.parse.SplitResult,
    query: dict[str, str],
    username: str | None,
    password: str | None,
) -> RedisTarget:
    shown = _shown(url, parts)
    if parts.hostname or _has_port(parts):
        raise StoreUrlError(
            f"store URL {shown} names a host: a socket is unix:///absolute/path (three slashes)"
        )
    path = urllib.parse.unquote(parts.path)
    if not path.startswith("/"):
        raise StoreUrlError(f"store URL {shown} needs an absolute socket path")
    unknown = sorted(set(query) - {"db"})
    if unknown:
        raise StoreUrlError(
            f"store URL {shown} has unknown query parameters: {', '.join(unknown)} (only db=N)"
        )
    db = _db(shown, query["db"], "db=") if "db" in query else 0
    return RedisTarget(scheme="unix", path=path, db=db, username=username, password=password)


def _sentinel_target(
    url: str,
    parts: urllib.parse.SplitResult,
    query: dict[str, str],
    username: str | None,
    password: str | None,
) -> RedisTarget:
    shown = _shown(url, parts)
    if query:
        raise StoreUrlError(
            f"store URL {shown} has query parameters: the database is the path, /SERVICE/N"
        )
    sentinels: list[tuple[str, int]] = []
    for address in parts.netloc.rpartition("@")[2].split(","):
        host, colon, port_text = address.strip().rpartition(":")
        if not colon:
            host, port_text = address.strip(), ""
        if not host:
            raise StoreUrlError(f"store URL {shown} has an empty Sentinel address")
        if port_text and (not _DIGITS.fullmatch(port_text) or not 0 < int(port_text) < 65536):
            raise StoreUrlError(f"store URL {shown} has a bad port: {port_text!r} (1-65535)")
        sentinels.append((host, int(port_text) if port_text else SENTINEL_PORT))
    service, _, db_text = parts.path.removeprefix("/").partition("/")
    if not service:
        raise StoreUrlError(f"store URL {shown} names no service: sentinel://HOSTS/SERVICE")
    db = 0 if db_text == "" else _db(shown, db_text, "path")
    return RedisTarget(
        scheme="sentinel",
        db=db,
        username=username,
        password=password,
        sentinels=tuple(sentinels),
        service=urllib.parse.unquote(service),
    )


def _query(url: str, parts: urllib.parse.SplitResult) -> dict[str, str]:
    try:
        pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise StoreUrlError(f"store URL {_shown(url, parts)} has a malformed query") from None
    query: dict[str, str] = {}
    for key, value in pairs:
        if key in query:
            raise StoreUrlError(f"store URL {_shown(url, parts)} repeats {key}=")
        query[key] = value
    return query


def _has_port(parts: urllib.parse.SplitResult) -> bool:
    return ":" in parts.netloc.rpartition("@")[2].rpartition("]")[2]


def _port(shown: str, parts: urllib.parse.SplitResult) -> int:
    if not _has_port(parts):
        return DEFAULT_PORT
    text = parts.netloc.rpartition("@")[2].rpartition("]")[2].rpartition(":")[2]
    if not _DIGITS.fullmatch(text) or not 0 < int(text) < 65536:
        raise StoreUrlError(f"store URL {shown} has a bad port: {text!r} (1-65535)")
    return int(text)


def _db(shown: str, text: str, where: str) -> int:
    if not text.isdigit() or not text.isascii() or int(text) > MAX_DB:
        raise StoreUrlError(
            f"store URL {shown} has a bad database in its {where}: {text!r} (0-{MAX_DB})"
        )
    return int(text)


def _unquoted(text: str | None) -> str | None:
    return None if text is None else urllib.parse.unquote(text)


def _shown(url: str, parts: urllib.parse.SplitResult) -> str:
    """``url`` as an error message may quote it: the login part replaced, never echoed."""
    netloc = parts.netloc
    if "@" in netloc:
        user = netloc.rpartition("@")[0].partition(":")[0]
        hidden = f"{user}:***" if ":" in netloc.rpartition("@")[0] else user
        netloc = f"{hidden}@{netloc.rpartition('@')[2]}"
    rest = url.split("://", 1)[1] if "://" in url else ""
    tail = rest[len(parts.netloc) :] if rest.startswith(parts.netloc) else ""
    return repr(f"{parts.scheme}://{netloc}{tail}")
