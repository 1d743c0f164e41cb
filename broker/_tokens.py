"""Access tokens: random secrets shown once, stored as hashes with roles, scope and expiry.

On one node the table lives in its own SQLite file (``tokens.db`` in the data directory), so
that ``pierhead token ...`` can change it while a broker runs; nodes on Redis keep their
tokens there, for every node alike. A broker looks every half second and closes the sessions
of a revoked or expired token.

A token reads ``ph_<id>_<secret>``: the id finds the row, the secret (256 random bits) is
compared by its SHA-256 in constant time. Nothing but the hash is ever stored or logged.
"""

from __future__ import annotations

import datetime
import fnmatch
import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import msgspec

from schema import ListWorkspaces, Role

TOKENS_FILE: Final = "tokens.db"
ROLES: Final[tuple[Role, ...]] = ("worker", "watcher", "operator", "admin")
_SHAPE = re.compile(r"^ph_([0-9a-f]{12})_([A-Za-z0-9_-]{43})\Z")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL,
    roles TEXT NOT NULL,
    scope TEXT NOT NULL,
    created TEXT NOT NULL,
    expires TEXT,
    last_used TEXT,
    revoked TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS tokens_live_name ON tokens (name) WHERE revoked IS NULL;
"""

Refusal = Literal["missing", "malformed", "unknown", "revoked", "expired"]


@dataclass(frozen=True, slots=True)
class Token:
    id: str
    name: str
    roles: frozenset[str]
    scope: str
    """A glob over workspace names."""
    created: datetime.datetime
    expires: datetime.datetime | None
    last_used: datetime.datetime | None
    revoked: datetime.datetime | None

    def covers(self, workspace: str) -> bool:
        return fnmatch.fnmatchcase(workspace, self.scope)


class TokenError(ValueError):
    """A token command that cannot be carried out (a duplicate name, an unknown role...)."""


class TokenStore:
    """Where tokens are kept; what a token is, and how one is checked, is the same wherever.

    :class:`SqliteTokenStore` keeps them in a node's data directory; a node on Redis keeps
    them in Redis (``broker._redis_tokens``), shared by every node of the cluster.
    """

    def create(
        self,
        name: str,
        roles: Iterable[str],
        scope: str = "*",
        *,
        expires: datetime.datetime | None = None,
        now: datetime.datetime | None = None,
    ) -> tuple[Token, str]:
        """A new token and its secret; the secret is not kept and cannot be shown again."""
        wanted = frozenset(roles)
        unknown = wanted - set(ROLES)
        if not wanted or unknown:
            raise TokenError(f"roles must be among {', '.join(ROLES)}; got {sorted(wanted)}")
        if not name or len(name) > 128:
            raise TokenError("a token needs a name of 1 to 128 characters")
        check_scope(scope)
        token_id = secrets.token_hex(6)
        secret = f"ph_{token_id}_{secrets.token_urlsafe(32)}"
        token = Token(
            id=token_id,
            name=name,
            roles=wanted,
            scope=scope,
            created=now or datetime.datetime.now(datetime.UTC),
            expires=expires,
            last_used=None,
            revoked=None,
        )
        if not self._insert(token, _digest(secret)):
            raise TokenError(f"a token named {name!r} exists; revoke it first")
        return token, secret

    def authenticate(
        self, presented: str | None, *, now: datetime.datetime | None = None
    ) -> Token | Refusal:
        """The token a secret belongs to, or why it is refused."""
        if not presented:
            return "missing"
        shape = _SHAPE.match(presented)
        if shape is None:
            return "malformed"
        moment = now or datetime.datetime.now(datetime.UTC)
        found = self._find(shape.group(1))
        # Compared in constant time: how much of a guess matched must not show in timing.
        if found is None or not hmac.compare_digest(found[1], _digest(presented)):
            return "unknown"
        token = found[0]
        if token.revoked is not None:
            return "revoked"
        if token.expires is not None and token.expires <= moment:
            return "expired"
        self._used(token.id, moment)
        return token

    def refused_ids(self, *, now: datetime.datetime | None = None) -> set[str]:
        """Ids of tokens that may no longer be used: revoked, or expired by ``now``."""
        moment = now or datetime.datetime.now(datetime.UTC)
        return {
            token.id
            for token in self.tokens(include_revoked=True)
            if token.revoked is not None or (token.expires is not None and token.expires <= moment)
        }

    def tokens(self, *, include_revoked: bool = False) -> list[Token]:
        """The tokens, oldest first."""
        raise NotImplementedError

    def revoke(self, name: str, *, now: datetime.datetime | None = None) -> Token:
        """Revoke the live token ``name``; :class:`TokenError` when there is none."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _insert(self, token: Token, digest: str) -> bool:
        """Keep a new token; False when a live token has its name."""
        raise NotImplementedError

    def _find(self, token_id: str) -> tuple[Token, str] | None:
        """The token ``token_id`` and the digest of its secret."""
        raise NotImplementedError

    def _used(self, token_id: str, moment: datetime.datetime) -> None:
        """Note when the token was last presented."""
        raise NotImplementedError


class SqliteTokenStore(TokenStore):
    """Tokens in ``tokens.db`` in a data directory."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            data_dir / TOKENS_FILE, isolation_level=None, check_same_thread=False, timeout=5.0
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        # One connection, used by the broker's worker threads one at a time.
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def tokens(self, *, include_revoked: bool = False) -> list[Token]:
        query = "SELECT * FROM tokens" + ("" if include_revoked else " WHERE revoked IS NULL")
        with self._lock:
            return [_token(row) for row in self._db.execute(query + " ORDER BY created")]

    def revoke(self, name: str, *, now: datetime.datetime | None = None) -> Token:
        moment = (now or datetime.datetime.now(datetime.UTC)).isoformat()
        with self._lock:
            row = self._db.execute(
                "UPDATE tokens SET revoked = ? WHERE name = ? AND revoked IS NULL RETURNING *",
                (moment, name),
            ).fetchone()
        if row is None:
            raise TokenError(f"no live token named {name!r}")
        return _token(row)

    def digests(self) -> list[tuple[Token, str]]:
        """Every token, revoked ones too, with the digest of its secret: what a cluster takes
        over from a node's own file."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM tokens ORDER BY created").fetchall()
        return [(_token(row), row[2]) for row in rows]

    def _insert(self, token: Token, digest: str) -> bool:
        row = (
            token.id,
            token.name,
            digest,
            ",".join(sorted(token.roles)),
            token.scope,
            token.created.isoformat(),
            token.expires.isoformat() if token.expires else None,
        )
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO tokens (id, name, hash, roles, scope, created, expires)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
            except sqlite3.IntegrityError:
                return False
        return True

    def _find(self, token_id: str) -> tuple[Token, str] | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM tokens WHERE id = ?", (token_id,)).fetchone()
        return None if row is None else (_token(row), row[2])

    def _used(self, token_id: str, moment: datetime.datetime) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE tokens SET last_used = ? WHERE id = ?", (moment.isoformat(), token_id)
            )


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _time(value: str | None) -> datetime.datetime | None:
    return None if value is None else datetime.datetime.fromisoformat(value)


def _token(row: tuple[str, ...]) -> Token:
    token_id, name, _hash, roles, scope, created, expires, last_used, revoked = row
    created_at = _time(created)
    assert created_at is not None
    return Token(
        id=token_id,
        name=name,
        roles=frozenset(roles.split(",")),
        scope=scope,
        created=created_at,
        expires=_time(expires),
        last_used=_time(last_used),
        revoked=_time(revoked),
    )


_TOKEN_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


def check_token_name(name: str) -> str:
    """``name`` if it suits a token: it is shown in logs and in who caught a workspace."""
    if _TOKEN_NAME.fullmatch(name) is None:
        raise TokenError(
            f"{name!r} is not a token name (1 to 64 letters, digits, _ . @ -, the first a letter"
            " or digit, e.g. ci-deploy)"
        )
    return name


def check_scope(scope: str) -> str:
    """``scope`` if it is a workspace pattern as ``list`` and ``subscribe`` take them."""
    try:
        msgspec.convert({"id": 1, "pattern": scope}, ListWorkspaces)
    except msgspec.ValidationError:
        raise TokenError(
            f"{scope!r} is not a workspace pattern (letters, digits, _ . - and the glob"
            " characters * ? [ ] !, e.g. deploy-*)"
        ) from None
    return scope


def parse_duration(text: str) -> datetime.timedelta:
    """``30d``, ``12h``, ``45m``, ``90s``: a number and its unit, more than zero."""
    match = re.fullmatch(r"(\d{1,6})([dhms])", text.strip())
    if match is None:
        raise TokenError(f"expected a duration like 30d, 12h, 45m or 90s, not {text!r}")
    amount, unit = int(match.group(1)), match.group(2)
    if amount == 0:
        raise TokenError(f"a token that expires in {text!r} could never be used")
    seconds = {"d": 86400, "h": 3600, "m": 60, "s": 1}[unit]
    return datetime.timedelta(seconds=amount * seconds)
