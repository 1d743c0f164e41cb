"""No token secret reaches the broker's logs, whatever clients present and however they fail.

One ``pierhead serve --auth token`` process, logging JSON at debug level, sees successful
sessions (token in ``hello``, in an ``Authorization`` header, from the SDK and the CLI), every
kind of refused token, a revocation that closes a live session, the failure throttle, and the
``pierhead token`` commands run beside it. Then its whole stderr, its data directory and the
commands' output (except the secret ``token create`` prints on purpose) are searched for every
secret, and for any 20 characters in a row of a secret's random part.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

import schema
import sdk
from broker._tokens import ROLES, SqliteTokenStore
from broker.testing import BrokerProcess, broker_process
from tests.broker.wire import closed_with, scalars, watcher_hello, wire_client, worker_hello
from tests.secret_leaks import leaked

pytestmark = pytest.mark.asyncio

CLI = [sys.executable, "-c", "from pierhead._cli import main; raise SystemExit(main())"]
FAILURES_PER_MINUTE = 10
"""``pierhead serve``'s failure throttle: the attempt after this many failures is refused."""


@dataclass(frozen=True)
class Output:
    command: str
    code: int
    stdout: str
    stderr: str


async def cli(*args: str) -> Output:
    """A ``pierhead`` command, run without blocking the loop (the broker's logs are read on it)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("PIERHEAD_")}
    return await cli_with_env(env, *args)


async def cli_with_env(env: dict[str, str], *args: str) -> Output:
    process = await asyncio.create_subprocess_exec(
        *CLI,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return Output(" ".join(args), process.returncode, out.decode(), err.decode())


def altered(secret: str) -> str:
    """The same shape and id, another last character: an unknown token."""
    return secret[:-1] + ("A" if secret[-1] != "A" else "B")


async def refusal(
    url: str, hello: schema.Hello, *, headers: dict[str, str] | None = None, path: str = ""
) -> schema.ErrorReply:
    """What the broker answers ``hello`` with, given these headers and request path."""
    async with connect(
        url + path,
        subprotocols=[Subprotocol(schema.JSON_CODEC.subprotocol)],
        additional_headers=headers,
        compression=None,
    ) as connection:
        await connection.send(schema.JSON_CODEC.encode(hello).decode())
        reply = schema.JSON_CODEC.decode_broker_frame(await asyncio.wait_for(connection.recv(), 10))
    assert isinstance(reply, schema.ErrorReply), reply
    return reply


async def successful_sessions(url: str, secrets: dict[str, str], run: str) -> None:
    """Workers and watchers with good tokens, presented every way a client can; one refusal
    of a good token for a workspace outside its scope."""
    worker = worker_hello("deploy-1", run, token=secrets["worker"])
    async with (
        wire_client(url, worker) as publisher,
        wire_client(url, watcher_hello(token=secrets["watcher"])) as follower,
    ):
        subscribed = await follower.request(
            schema.Subscribe(id=follower.next_id(), pattern="deploy-*", kinds=["scalar"])
        )
        assert isinstance(subscribed, schema.Subscribed)
        await publisher.publish(1, scalars(0, 5))
        assert (await publisher.expect(schema.Ack)).seq == 5
        events = await follower.expect(schema.Events)
        assert [event.seq for event in events.events] == [1, 2, 3, 4, 5]
        stats = await follower.request(schema.StatsRequest(id=follower.next_id()))
        assert isinstance(stats, schema.ErrorReply)  # a watcher is no admin: forbidden
    async with connect(
        url,
        subprotocols=[Subprotocol(schema.JSON_CODEC.subprotocol)],
        additional_headers={"Authorization": f"Bearer {secrets['admin']}"},
    ) as connection:
        await connection.send(schema.JSON_CODEC.encode(watcher_hello()).decode())
        welcome = schema.JSON_CODEC.decode_broker_frame(await connection.recv())
        assert isinstance(welcome, schema.Welcome)
    # Allowed in, refused a workspace outside the token's scope.
    outside = await refusal(url, worker_hello("prod-1", run, token=secrets["worker"]))
    assert outside.code is schema.ErrorCode.FORBIDDEN
    async with sdk.Worker(url, "deploy-2", run_id=run, token=secrets["worker"]) as sdk_worker:
        await sdk_worker.scalar("loss", 0.5)
        await sdk_worker.flush(timeout=10)
    async with sdk.Watcher(url, token=secrets["watcher"]) as sdk_watcher:
        assert {state.name for state in await sdk_watcher.workspaces()} >= {"deploy-1"}


async def failed_authentications(url: str, secrets: dict[str, str], outputs: list[Output]) -> None:
    """Every way a token is refused, ``FAILURES_PER_MINUTE`` in all, then the throttle."""
    unknown = {"Authorization": f"Bearer {altered(secrets['watcher'])}"}
    cases: list[tuple[schema.Hello, dict[str, str] | None, str, str]] = [
        (watcher_hello(token=altered(secrets["admin"])), None, "", "unknown token"),
        (watcher_hello(), unknown, "", "unknown token"),
        (watcher_hello(token=secrets["doomed"]), None, "", "revoked"),
        (watcher_hello(), {"Authorization": f"Bearer {secrets['doomed']}"}, "", "revoked"),
        (watcher_hello(token=secrets["expired"]), None, "", "expired"),
        (watcher_hello(token=secrets["watcher"][:-1]), None, "", "not a pierhead token"),
        (
            watcher_hello(),
            {"Authorization": f"Bearer {secrets['watcher']}="},
            "",
            "not a pierhead token",
        ),
        # Secrets where the broker does not look for them: no token, as far as it knows.
        (watcher_hello(), {"Authorization": f"Token {secrets['admin']}"}, "", "needs a token"),
        (watcher_hello(), None, f"/?token={secrets['admin']}", "needs a token"),
    ]
    for hello, headers, path, message in cases:
        reply = await refusal(url, hello, headers=headers, path=path)
        assert reply.code is schema.ErrorCode.UNAUTHORIZED, (hello, headers, path, reply)
        assert message in reply.message
    wrong = await cli("ls", "--url", url, "--token", altered(secrets["watcher"]))
    outputs.append(wrong)
    assert wrong.code == 1
    assert "unknown token" in wrong.stderr
    assert len(cases) + 1 == FAILURES_PER_MINUTE
    # Now refused without a look at what is presented, a good secret included.
    throttled = await refusal(url, watcher_hello(token=secrets["admin"]))
    assert throttled.code is schema.ErrorCode.RATE_LIMITED
    env = {name: value for name, value in os.environ.items() if not name.startswith("PIERHEAD_")}
    from_env = await cli_with_env({**env, "PIERHEAD_TOKEN": secrets["admin"]}, "ls", "--url", url)
    outputs.append(from_env)
    # The CLI takes 4029 for "come back later" and reports the broker unreachable (3).
    assert from_env.code in (1, 3), from_env
    assert "too many failed attempts" in from_env.stderr


async def revocation_of_a_live_session(
    broker: BrokerProcess, data: Path, secrets: dict[str, str], outputs: list[Output]
) -> None:
    async with wire_client(broker.url, watcher_hello(token=secrets["doomed"])) as doomed:
        revoked = await cli("token", "revoke", "doomed", "--data", str(data))
        outputs.append(revoked)
        assert revoked.code == 0, revoked
        assert await asyncio.wait_for(closed_with(doomed), 5) == schema.CloseCode.UNAUTHORIZED


def made_tokens(data: Path) -> dict[str, str]:
    store = SqliteTokenStore(data)
    try:
        past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)
        return {
            "worker": store.create("worker", ["worker"], "deploy-*")[1],
            "watcher": store.create("watcher", ["watcher"], "*")[1],
            "admin": store.create("admin", ROLES, "*")[1],
            "expired": store.create("expired", ["watcher"], expires=past)[1],
            "doomed": store.create("doomed", ["watcher"])[1],
        }
    finally:
        store.close()


def files_under(directory: Path) -> Iterable[tuple[Path, str]]:
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            yield path, path.read_bytes().decode("latin-1")


async def test_no_secret_reaches_the_logs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    secrets = made_tokens(data)
    outputs: list[Output] = []
    async with broker_process(data, "--auth", "token", "--log-level", "debug") as broker:
        made = await cli(
            "token", "create", "--name", "cli-made", "--role", "worker", "--role", "watcher",
            "--workspaces", "deploy-*", "--expires", "1d", "--data", str(data),
        )  # fmt: skip
        assert made.code == 0, made
        *notes, secrets["cli-made"] = made.stdout.splitlines()
        # The secret printed on purpose, alone on its last line: the search finds it there.
        assert leaked(made.stdout, secrets) == ["cli-made"]
        outputs.append(Output(made.command, made.code, "\n".join(notes), made.stderr))
        worker_made = {**secrets, "worker": secrets["cli-made"]}

        await successful_sessions(broker.url, secrets, "r1")
        await successful_sessions(broker.url, worker_made, "r2")
        listed = await cli("ls", "--url", broker.url, "--token", secrets["admin"])
        assert listed.code == 0, listed
        assert "deploy-1" in listed.stdout
        outputs.append(listed)
        await revocation_of_a_live_session(broker, data, secrets, outputs)
        for arguments in (["list"], ["list", "--all"]):
            listing = await cli("token", *arguments, "--data", str(data))
            assert listing.code == 0, listing
            assert "admin" in listing.stdout
            assert ("doomed" in listing.stdout) is ("--all" in arguments)  # revoked
            outputs.append(listing)
        await failed_authentications(broker.url, secrets, outputs)

        code, _ = await broker.timed_exit()
        assert code == 0, broker.describe()

    logs = "\n".join(json.dumps(record) for record in broker.logs)
    # The logs do tell the story, by token name: they are not just empty.
    assert {"worker", "watcher", "admin", "cli-made", "doomed"} <= {
        record.get("token") for record in broker.events("session_opened")
    }
    # The failures, the two throttled attempts and the two out of scope.
    assert len(broker.events("session_refused")) == FAILURES_PER_MINUTE + 2 + 2
    assert broker.events("session_token_withdrawn")
    assert leaked(logs, secrets) == [], [
        record for record in broker.logs if leaked(json.dumps(record), secrets)
    ][:5]
    for output in outputs:
        assert leaked(output.stdout + output.stderr, secrets) == [], output
    for path, content in files_under(data):
        assert leaked(content, secrets) == [], path


async def test_a_secret_misplaced_in_a_frame_is_not_echoed_into_the_logs(tmp_path: Path) -> None:
    """A frame the schema refuses is logged (``bad_frame``) with the decoder's message, and
    for enum-like fields that message quotes the value the client sent: a client that puts
    its token in the wrong field must not get it written to the broker's logs."""
    data = tmp_path / "data"
    secrets = made_tokens(data)
    async with broker_process(data, "--auth", "token") as broker:
        async with wire_client(broker.url, watcher_hello(token=secrets["watcher"])) as client:
            for frame in (
                {"type": "subscribe", "id": 1, "pattern": "*", "from": secrets["admin"]},
                {"type": "subscribe", "id": 2, "pattern": "*", "kinds": [secrets["admin"]]},
            ):
                await client.send_raw(json.dumps(frame))
                error = await client.expect(schema.ErrorReply)
                assert error.code is schema.ErrorCode.BAD_FRAME
        code, _ = await broker.timed_exit()
        assert code == 0, broker.describe()
    assert len(broker.events("bad_frame")) == 2
    logs = "\n".join(json.dumps(record) for record in broker.logs)
    messages = [record.get("message") for record in broker.events("bad_frame")]
    assert leaked(logs, secrets) == [], messages
