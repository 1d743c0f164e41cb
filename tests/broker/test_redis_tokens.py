"""Tokens kept in Redis, shared by every node: the same checks as in a data directory's file,
one set for the cluster, and a node's own file taken over."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker._redis_store import StoreUnavailableError
from broker._redis_tokens import RedisTokenStore, open_redis_tokens
from broker._redis_url import parse_redis_url
from broker._tokens import SqliteTokenStore, TokenError
from tests.redis_server import RedisServer, primary_replica_sentinel
from tests.support import until

NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)


@pytest.fixture
def tokens(emptied_redis: RedisServer) -> Iterator[RedisTokenStore]:
    store = open_redis_tokens(parse_redis_url(emptied_redis.url, {}))
    yield store
    store.close()


def test_a_token_made_on_one_client_is_checked_by_another(
    tokens: RedisTokenStore, emptied_redis: RedisServer
) -> None:
    token, secret = tokens.create("ci", ["worker", "watcher"], "deploy-*", now=NOW)
    other = open_redis_tokens(parse_redis_url(emptied_redis.url, {}))
    try:
        checked = other.authenticate(secret, now=NOW + datetime.timedelta(minutes=1))
        assert checked == token
        (listed,) = other.tokens()
        assert listed.last_used == NOW + datetime.timedelta(minutes=1)
        assert (listed.name, listed.roles, listed.scope, listed.created) == (
            "ci",
            frozenset({"worker", "watcher"}),
            "deploy-*",
            NOW,
        )
    finally:
        other.close()
    # Only the digest is stored: the secret appears nowhere in Redis.
    client = emptied_redis.client()
    try:
        dumped = repr([client.hgetall(key) for key in client.keys("ph:tokens*")])
    finally:
        client.close()
    assert token.id in dumped
    assert secret.split("_", 2)[2] not in dumped  # the random part (it may hold "_")


def test_refusals_are_those_of_the_file(tokens: RedisTokenStore) -> None:
    later = NOW + datetime.timedelta(hours=2)
    short, short_secret = tokens.create(
        "short", ["watcher"], expires=NOW + datetime.timedelta(hours=1)
    )
    gone, revoked_secret = tokens.create("gone", ["watcher"])
    tokens.revoke("gone", now=NOW)
    assert tokens.authenticate(None) == "missing"
    assert tokens.authenticate("not-a-token") == "malformed"
    assert tokens.authenticate(f"ph_{short.id}_{'x' * 43}") == "unknown"
    assert tokens.authenticate(f"ph_{'0' * 12}_{'x' * 43}") == "unknown"
    assert tokens.authenticate(short_secret, now=later) == "expired"
    assert tokens.authenticate(revoked_secret) == "revoked"
    assert tokens.refused_ids(now=later) == {short.id, gone.id}
    assert [token.name for token in tokens.tokens()] == ["short"]


def test_a_live_name_is_unique_until_its_token_is_revoked(tokens: RedisTokenStore) -> None:
    first, _ = tokens.create("ci", ["worker"])
    with pytest.raises(TokenError, match="a token named 'ci' exists"):
        tokens.create("ci", ["watcher"])
    revoked = tokens.revoke("ci", now=NOW)
    assert (revoked.id, revoked.revoked) == (first.id, NOW)
    with pytest.raises(TokenError, match="no live token named 'ci'"):
        tokens.revoke("ci")
    second, _ = tokens.create("ci", ["watcher"])
    assert second.id != first.id
    assert [token.id for token in tokens.tokens()] == [second.id]
    assert {token.id for token in tokens.tokens(include_revoked=True)} == {first.id, second.id}


def test_a_nodes_own_tokens_are_taken_over_once_revocations_and_all(
    tokens: RedisTokenStore, tmp_path: Path
) -> None:
    own = SqliteTokenStore(tmp_path)
    try:
        kept, kept_secret = own.create("ci", ["worker"])
        _, revoked_secret = own.create("old", ["watcher"])
        own.revoke("old")
        clashing, clashing_secret = own.create("deploy", ["operator"])
        # Another node made a token of the same name in Redis already.
        tokens.create("deploy", ["watcher"])
        assert tokens.adopt(own) == {"deploy": f"deploy-{clashing.id}"}
        checked = tokens.authenticate(kept_secret)
        assert not isinstance(checked, str)
        assert checked.id == kept.id
        assert tokens.authenticate(revoked_secret) == "revoked"
        renamed = tokens.authenticate(clashing_secret)
        assert not isinstance(renamed, str)
        assert renamed.roles == frozenset({"operator"})
        # What Redis says of a token it has wins over the file: revoked in the cluster, it
        # stays revoked when the node starts again with its old file.
        tokens.revoke("ci")
        assert tokens.adopt(own) == {}
        assert tokens.authenticate(kept_secret) == "revoked"
    finally:
        own.close()


def test_a_server_that_cannot_be_reached_is_said_so() -> None:
    with pytest.raises(StoreUnavailableError, match="cannot be reached"):
        open_redis_tokens(parse_redis_url("redis://127.0.0.1:1/0", {}))


@pytest.mark.asyncio
async def test_with_a_replica_a_change_waits_for_it_too() -> None:
    with primary_replica_sentinel() as (primary, replica, _sentinel):
        await until(
            lambda: replica.replication().get("master_link_status") == "up",
            "the replica's first sync",
        )
        tokens = open_redis_tokens(parse_redis_url(primary.url, {}))
        client = replica.client()
        try:
            made, _ = tokens.create("replicated", ["watcher"])
            # Answered once the replica has it: no waiting here.
            assert client.hexists("ph:tokens", made.id)
            replica.pause()
            try:
                with pytest.raises(StoreUnavailableError, match="a replica's"):
                    tokens.create("unreplicated", ["watcher"])
            finally:
                replica.resume()
        finally:
            client.close()
            tokens.close()
