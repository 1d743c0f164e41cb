"""Tokens kept in Redis: one set for every node of a cluster.

A token made once works on every node, and a revocation reaches every node's sessions within
the half second in which each looks (``_enforce_revocations``), whichever node or command made
it. Nothing but the digest of a secret is stored, as in SQLite.

Keys (``ph`` is the store's prefix; a workspace's keys have three parts, none of these
suffixes):

* ``ph:tokens``: hash, token id -> MessagePack of the token (name, digest, roles, scope,
  created, expires);
* ``ph:tokens:names``: hash, name -> id of the live token of that name (names are unique among
  live tokens, as in SQLite);
* ``ph:tokens:revoked``: hash, token id -> when it was revoked;
* ``ph:tokens:used``: hash, token id -> when it was last presented.

A change waits for the server's append-only file (``WAITAOF 1 0``) where the server has it,
and for a replica's as well (``WAITAOF 1 1``) where the nodes run with ``--redis-durability
replica``: a revocation the server loses in a restart or a failover would give a withdrawn
secret back its power.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterator
from typing import Any, Final

import msgspec

from ._redis_store import (
    StoreUnavailableError,
    StoreUnusableError,
    check_server,
    open_client,
)
from ._redis_url import RedisTarget
from ._tokens import SqliteTokenStore, Token, TokenError, TokenStore

try:
    import redis
except ImportError:  # pragma: no cover - the redis extra is not installed
    redis = None  # type: ignore[assignment]

# Both scripts keep the name index and the records in step: a name is taken (or freed) in the
# same step as its token is stored (or revoked).
_CREATE: Final = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
"""
_REVOKE: Final = """
local id = redis.call('HGET', KEYS[1], ARGV[1])
if not id then return false end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], id, ARGV[2])
return id
"""
# A token Redis has already keeps what Redis says of it (its revocation above all). A live
# token whose name another live token has is not stored (2): the caller renames it.
_ADOPT: Final = """
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 0 end
if ARGV[4] == '' then
    if redis.call('HSETNX', KEYS[1], ARGV[2], ARGV[1]) == 0 then return 2 end
else
    redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1
"""
_DURABLE_WAIT_MS: Final = 3_000
"""How long a change waits for the append-only file before it is reported as not durable."""


class _Record(msgspec.Struct, array_like=True, frozen=True):
    name: str
    digest: str
    roles: list[str]
    scope: str
    created: datetime.datetime
    expires: datetime.datetime | None


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Record)


class RedisTokenStore(TokenStore):
    """Tokens in Redis: on a node, on its store's client; for the ``token`` commands, on one
    of their own (:func:`open_redis_tokens`)."""

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = "ph",
        waitaof: bool,
        replicas: int = 0,
        owns_client: bool = False,
    ) -> None:
        self._client = client
        self._owns_client = owns_client
        self._waitaof = waitaof
        self._replicas = replicas
        """Replicas whose append-only file a change waits for (0 or 1)."""
        self._records = f"{prefix}:tokens"
        self._names = f"{prefix}:tokens:names"
        self._revoked = f"{prefix}:tokens:revoked"
        self._used_at = f"{prefix}:tokens:used"

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def tokens(self, *, include_revoked: bool = False) -> list[Token]:
        with _reaching():
            pipe = self._client.pipeline(transaction=True)
            pipe.hgetall(self._records)
            pipe.hgetall(self._revoked)
            pipe.hgetall(self._used_at)
            records, revoked, used = pipe.execute()
        found = [
            _token(
                token_id.decode(), _decoder.decode(body), revoked.get(token_id), used.get(token_id)
            )
            for token_id, body in records.items()
        ]
        if not include_revoked:
            found = [token for token in found if token.revoked is None]
        return sorted(found, key=lambda token: (token.created, token.id))

    def refused_ids(self, *, now: datetime.datetime | None = None) -> set[str]:
        # Every node asks twice a second: the records and revocations only, not the last uses,
        # which every admission rewrites.
        moment = now or datetime.datetime.now(datetime.UTC)
        with _reaching():
            pipe = self._client.pipeline(transaction=True)
            pipe.hgetall(self._records)
            pipe.hkeys(self._revoked)
            records, revoked = pipe.execute()
        expired = {
            token_id
            for token_id, body in records.items()
            if (expires := _decoder.decode(body).expires) is not None and expires <= moment
        }
        return {token_id.decode() for token_id in expired | set(revoked)}

    def revoke(self, name: str, *, now: datetime.datetime | None = None) -> Token:
        moment = (now or datetime.datetime.now(datetime.UTC)).isoformat()
        token_id = self._write(_REVOKE, [self._names, self._revoked], [name, moment])
        if token_id is None:
            raise TokenError(f"no live token named {name!r}")
        found = self._find(token_id.decode())
        assert found is not None
        return found[0]

    def adopt(self, other: SqliteTokenStore) -> dict[str, str]:
        """Take over the tokens of a node's own file that Redis does not have yet (by id),
        revoked ones as revoked: what a node that kept its tokens in its data directory
        brings to the cluster. A live token whose name another live token has already is
        taken over as ``<name>-<id>``: the names changed so, old to new."""
        renamed = {}
        for token, digest in other.digests():
            revoked = token.revoked.isoformat() if token.revoked is not None else ""
            keys = [self._names, self._records, self._revoked]
            for name in (token.name, f"{token.name}-{token.id}"):
                record = _encoder.encode(_record(token, digest, name=name))
                outcome = self._write(_ADOPT, keys, [token.id, name, record, revoked])
                if outcome != 2:
                    break
            else:
                raise TokenError(f"cannot take over token {token.id}: its names are taken")
            if outcome == 1 and name != token.name:
                renamed[token.name] = name
        return renamed

    def _insert(self, token: Token, digest: str) -> bool:
        record = _encoder.encode(_record(token, digest))
        return bool(
            self._write(_CREATE, [self._names, self._records], [token.name, token.id, record])
        )

    def _find(self, token_id: str) -> tuple[Token, str] | None:
        with _reaching():
            pipe = self._client.pipeline(transaction=True)
            pipe.hget(self._records, token_id)
            pipe.hget(self._revoked, token_id)
            pipe.hget(self._used_at, token_id)
            body, revoked, used = pipe.execute()
        if body is None:
            return None
        record = _decoder.decode(body)
        return _token(token_id, record, revoked, used), record.digest

    def _used(self, token_id: str, moment: datetime.datetime) -> None:
        with _reaching():
            self._client.hset(self._used_at, token_id, moment.isoformat())

    def _write(self, script: str, keys: list[str], args: list[Any]) -> Any:
        """Run a script that changes the tokens, and wait, on the same connection (``WAITAOF``
        waits for that connection's writes), for the append-only file to hold the change."""
        with _reaching():
            pipe = self._client.pipeline(transaction=False)
            pipe.eval(script, len(keys), *keys, *args)
            if self._waitaof:
                pipe.execute_command("WAITAOF", 1, self._replicas, _DURABLE_WAIT_MS)
            replies = pipe.execute()
        if self._waitaof and (int(replies[1][0]) < 1 or int(replies[1][1]) < self._replicas):
            raise StoreUnavailableError(
                "Redis has not written the token change to its append-only file (and a"
                " replica's, where asked) within"
                f" {_DURABLE_WAIT_MS / 1000:g} s; it is stored, and will be there unless the"
                " server stops first"
            )
        return replies[0]


def open_redis_tokens(target: RedisTarget) -> RedisTokenStore:
    """The tokens of the cluster on ``target``, on a client of their own. Raises
    ``StoreUnusableError`` for a server whose append-only file is off (no node runs on it)
    and ``StoreUnavailableError`` when it cannot be reached."""
    if redis is None:
        raise StoreUnusableError(
            "tokens in Redis need the redis client: pip install 'pierhead[redis]'"
        )
    client = open_client(target, asynchronous=False, socket_timeout=5.0, socket_connect_timeout=2.0)
    try:
        with _reaching():
            traits = check_server(client, "aof")
    except StoreUnusableError as exc:
        client.close()
        raise StoreUnusableError(f"no node runs on Redis at {target.redacted()}: {exc}") from exc
    except BaseException:
        client.close()
        raise
    # The command does not know the nodes' durability: with a replica connected, it waits for
    # one, as nodes with --redis-durability replica do.
    replicas = 1 if traits.waitaof and traits.replicas > 0 else 0
    return RedisTokenStore(client, waitaof=traits.waitaof, replicas=replicas, owns_client=True)


@contextlib.contextmanager
def _reaching() -> Iterator[None]:
    """Redis failures as :class:`StoreUnavailableError`, with the client's message."""
    try:
        yield
    except redis.RedisError as exc:
        raise StoreUnavailableError(f"the tokens in Redis cannot be reached: {exc}") from exc


def _record(token: Token, digest: str, *, name: str | None = None) -> _Record:
    return _Record(
        name=token.name if name is None else name,
        digest=digest,
        roles=sorted(token.roles),
        scope=token.scope,
        created=token.created,
        expires=token.expires,
    )


def _token(token_id: str, record: _Record, revoked: bytes | None, used: bytes | None) -> Token:
    return Token(
        id=token_id,
        name=record.name,
        roles=frozenset(record.roles),
        scope=record.scope,
        created=record.created,
        expires=record.expires,
        last_used=_moment(used),
        revoked=_moment(revoked),
    )


def _moment(value: bytes | None) -> datetime.datetime | None:
    return None if value is None else datetime.datetime.fromisoformat(value.decode())
