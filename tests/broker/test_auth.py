"""Token authentication on a real broker; per-frame authorisation is in test_access_table."""

from __future__ import annotations

import asyncio
import datetime
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

import schema
from broker._tokens import SqliteTokenStore
from broker.testing import running_broker
from tests.broker.wire import closed_with, watcher_hello, wire_client, worker_hello

NOW = datetime.datetime(2026, 11, 1, tzinfo=datetime.UTC)


def test_tokens_are_stored_as_hashes_and_refused_for_every_reason(tmp_path: Path) -> None:
    store = SqliteTokenStore(tmp_path)
    token, secret = store.create("ci", ["worker"], "deploy-*", now=NOW)
    assert secret.startswith(f"ph_{token.id}_")
    assert secret.encode() not in (tmp_path / "tokens.db").read_bytes()
    authenticated = store.authenticate(secret, now=NOW)
    assert not isinstance(authenticated, str)
    assert (authenticated.name, authenticated.roles, authenticated.scope) == (
        "ci",
        frozenset({"worker"}),
        "deploy-*",
    )
    assert store.tokens()[0].last_used == NOW
    assert store.authenticate(None) == "missing"
    assert store.authenticate("hunter2") == "malformed"
    assert store.authenticate(secret[:-1] + ("A" if secret[-1] != "A" else "B")) == "unknown"
    _, short = store.create(
        "short", ["watcher"], expires=NOW + datetime.timedelta(hours=1), now=NOW
    )
    assert store.authenticate(short, now=NOW + datetime.timedelta(hours=2)) == "expired"
    store.revoke("ci")
    assert store.authenticate(secret) == "revoked"
    assert token.id in store.refused_ids()
    store.create("ci", ["admin"])  # the name is free again once revoked
    store.close()


@pytest.fixture
def tokens(tmp_path: Path) -> dict[str, str]:
    store = SqliteTokenStore(tmp_path / "data")
    made = {
        name: store.create(name, roles, scope)[1]
        for name, roles, scope in [
            ("watcher", ["watcher"], "deploy-*"),
            ("admin", ["watcher", "operator", "admin"], "*"),
            ("everything", ["worker", "watcher", "operator", "admin"], "*"),
        ]
    }
    store.close()
    return made


@pytest.mark.asyncio
async def test_every_kind_of_bad_token_is_refused_with_4001(
    tmp_path: Path, tokens: dict[str, str]
) -> None:
    async with running_broker(tmp_path / "data", auth="token") as broker:
        store = SqliteTokenStore(tmp_path / "data")
        _, gone = store.create("gone", ["watcher"])
        store.revoke("gone")
        store.close()
        cases = {
            None: "needs a token",
            "ph_nonsense": "not a pierhead token",
            tokens["admin"][:-2] + "zz": "unknown token",
            gone: "revoked",
        }
        for presented, message in cases.items():
            async with wire_client(broker.url) as client:
                await client.send(watcher_hello(token=presented))
                error = await client.expect(schema.ErrorReply)
                assert error.code is schema.ErrorCode.UNAUTHORIZED
                assert message in error.message
                assert await closed_with(client) == schema.CloseCode.UNAUTHORIZED


@pytest.mark.asyncio
async def test_a_bearer_header_works_like_hello_token(
    tmp_path: Path, tokens: dict[str, str]
) -> None:
    async with running_broker(tmp_path / "data", auth="token") as broker:
        headers = {"Authorization": f"Bearer {tokens['watcher']}"}
        async with connect(
            broker.url,
            subprotocols=[Subprotocol("pierhead.v1.json")],
            additional_headers=headers,
        ) as connection:
            await connection.send(schema.JSON_CODEC.encode(watcher_hello()).decode())
            welcome = schema.JSON_CODEC.decode_broker_frame(await connection.recv())
            assert isinstance(welcome, schema.Welcome)
            assert welcome.roles == ["watcher"]


@pytest.mark.asyncio
async def test_subscriptions_and_lists_see_only_their_scope(
    tmp_path: Path, tokens: dict[str, str]
) -> None:
    async with running_broker(tmp_path / "data", auth="token") as broker:
        async with (
            wire_client(broker.url, worker_hello("deploy-1", "a", token=tokens["everything"])),
            wire_client(broker.url, worker_hello("other-1", "b", token=tokens["everything"])),
            wire_client(broker.url, watcher_hello(token=tokens["watcher"])) as watcher,
        ):
            listing = await watcher.request(schema.ListWorkspaces(id=watcher.next_id()))
            assert isinstance(listing, schema.Workspaces)
            assert [item.name for item in listing.items] == ["deploy-1"]
            subscribed = await watcher.request(schema.Subscribe(id=watcher.next_id(), pattern="*"))
            assert isinstance(subscribed, schema.Subscribed)
            assert [s.name for s in subscribed.snapshot] == ["deploy-1"]
            # Created later, outside the scope first: only the one inside joins.
            async with (
                wire_client(broker.url, worker_hello("other-2", "c", token=tokens["everything"])),
                wire_client(broker.url, worker_hello("deploy-2", "d", token=tokens["everything"])),
            ):
                joined = await watcher.expect(schema.Joined)
                assert joined.snapshot.name == "deploy-2"


@pytest.mark.asyncio
async def test_revoking_a_token_closes_its_sessions_within_a_second(
    tmp_path: Path, tokens: dict[str, str]
) -> None:
    async with running_broker(tmp_path / "data", auth="token") as broker:
        async with wire_client(broker.url, watcher_hello(token=tokens["watcher"])) as watcher:
            command = "from pierhead._cli import main; raise SystemExit(main())"
            data = str(tmp_path / "data")
            revoked = subprocess.run(
                [sys.executable, "-c", command, "token", "revoke", "watcher", "--data", data],
                capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
            assert revoked.returncode == 0, revoked.stderr
            code = await asyncio.wait_for(closed_with(watcher), 1.5)
            assert code == schema.CloseCode.UNAUTHORIZED


@pytest.mark.asyncio
async def test_repeated_failures_from_an_address_are_throttled(tmp_path: Path) -> None:
    async with running_broker(
        tmp_path / "data", auth="token", auth_failures_per_minute=3
    ) as broker:
        codes = []
        for _ in range(4):
            async with wire_client(broker.url) as client:
                await client.send(watcher_hello(token="ph_000000000000_" + "x" * 43))
                codes.append((await client.expect(schema.ErrorReply)).code)
        assert codes == [schema.ErrorCode.UNAUTHORIZED] * 3 + [schema.ErrorCode.RATE_LIMITED]


def test_token_cli_prints_the_secret_alone_on_the_last_line(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "pierhead", "token"]
    data = ["--data", str(tmp_path)]
    made = subprocess.run(
        [*command, "create", "--name", "ci", "--role", "worker", "--role", "watcher",
         "--workspaces", "deploy-*", "--expires", "30d", *data],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    secret = made.stdout.splitlines()[-1]
    assert secret.startswith("ph_")
    store = SqliteTokenStore(tmp_path)
    assert not isinstance(store.authenticate(secret), str)
    store.close()
    listed = subprocess.run([*command, "list", *data], capture_output=True, text=True, check=True)
    assert "ci" in listed.stdout
    assert "deploy-*" in listed.stdout
    assert secret not in listed.stdout
    again = subprocess.run(
        [*command, "create", "--name", "ci", "--role", "admin", *data],
        capture_output=True,
        text=True,
    )
    assert again.returncode == 1
    assert "exists" in again.stderr


@pytest.mark.parametrize(
    ("store", "code", "said"),
    [
        ("redis://127.0.0.1:1/0", 1, "the tokens in Redis cannot be reached: "),
        ("http://127.0.0.1/", 2, "store URL scheme 'http://' is not one of"),
    ],
)
def test_token_cli_says_why_a_redis_store_cannot_be_used(store: str, code: int, said: str) -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "pierhead", "token", "list", "--store", store],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (listed.returncode, listed.stdout) == (code, "")
    assert listed.stderr.startswith(f"pierhead token: {said}"), listed.stderr
    assert "Traceback" not in listed.stderr


@pytest.mark.asyncio
async def test_sdk_and_cli_report_a_refused_token_once_without_retrying(
    tmp_path: Path, tokens: dict[str, str]
) -> None:
    import sdk

    async with running_broker(tmp_path / "data", auth="token") as broker:
        worker = sdk.Worker(broker.url, "deploy-1", token="ph_000000000000_" + "x" * 43)
        async with worker:
            with pytest.raises(sdk.ClosedError) as closed:
                await asyncio.wait_for(worker.connected(), 10)
            assert isinstance(closed.value.__cause__, sdk.AuthenticationError)
            assert worker.state is sdk.ConnectionState.CLOSED
        async with sdk.Watcher(broker.url, token=tokens["watcher"]) as allowed:
            assert [s.name for s in await allowed.workspaces()] == []
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from pierhead._cli import main; raise SystemExit(main())",
            "ls", "--url", broker.url, "--token", "ph_000000000000_" + "y" * 43,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await process.communicate()
        assert process.returncode == 1
        assert err.decode().startswith("pierhead: refused: unknown token")
        assert "y" * 43 not in err.decode()
