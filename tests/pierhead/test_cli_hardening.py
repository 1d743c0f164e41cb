"""The command's edges, as real processes against real brokers: malformed arguments and
addresses are usage errors before anything is sent, an unreachable broker is told with its
reason, ``tail`` follows across a broker restart and waits for a workspace to exist."""

from __future__ import annotations

import asyncio
import json
import signal
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trustme

import sdk
from broker.testing import broker_process, running_broker
from tests.support import PIERHEAD, WAIT_S, Tail, free_port, pierhead, subscribed

pytestmark = pytest.mark.asyncio

# Point 5: arguments the broker would reject are usage errors, before connecting -----------

MALFORMED = [
    (["catch", "bad!"], "invalid workspace 'bad!'"),
    (["release", "bad!"], "invalid workspace 'bad!'"),
    (["tail", "bad!", "--no-follow"], "invalid workspace 'bad!'"),
    (["ls", "a%b"], "invalid pattern 'a%b'"),
    (["delete", "bad!"], "invalid workspace 'bad!'"),
    (["mutex", "break", "bad!"], "invalid workspace 'bad!'"),
    (["call", "ws", "bad/run", "x"], "invalid run id 'bad/run'"),
    (["call", "ws", "run", "add", "a=1", "--timeout", "0"], "invalid --timeout 0.0"),
    (["catch", "ws", "--reason", "x" * 5000], "invalid --reason (5,000 characters)"),
    (["watch", "a%b", "--once"], "invalid pattern 'a%b'"),
]


@pytest.mark.parametrize(("command", "complaint"), MALFORMED, ids=lambda v: str(v)[:30])
async def test_a_malformed_argument_is_a_usage_error_not_a_hang(
    command: list[str], complaint: str
) -> None:
    async with running_broker() as broker:
        code, out, err = await pierhead(*command, "--url", broker.url)
        assert broker.broker is not None
        assert broker.broker.counters["watcher_sessions"] == 0  # nothing was sent
    assert (code, out) == (2, "")
    usage, error = err.splitlines()[0], err.splitlines()[-1]
    name = " ".join(command[:2]) if command[0] == "mutex" else command[0]
    assert usage.startswith(f"usage: pierhead {name} ")
    assert error.startswith(f"pierhead {name}: error: {complaint}: ")


# Point 17: addresses, reasons, option order, usage, NDJSON, mutex grants --------------------


@pytest.mark.parametrize("url", ["http://127.0.0.1:19003", "127.0.0.1:19003", "not a url"])
async def test_a_malformed_url_is_a_usage_error(url: str) -> None:
    code, out, err = await pierhead("ls", "--url", url)
    assert (code, out) == (2, "")
    assert err.splitlines()[-1].startswith(f"pierhead ls: error: invalid --url {url!r}: ")


@asynccontextmanager
async def http_server(tls: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    """A plain HTTP server on a free port that answers the first bytes of anything with 200."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read(4096)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
            await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=tls)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def test_cannot_reach_says_why() -> None:
    authority = trustme.CA()
    untrusted = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(untrusted)
    async with (
        http_server() as http,
        http_server(untrusted) as https,
        running_broker() as plain,
    ):
        cases = {
            f"ws://127.0.0.1:{free_port()}": "connection refused",
            "ws://no-such-host.invalid:8765": "the host name does not resolve",
            f"ws://127.0.0.1:{http}": "not a websocket server (it answered the upgrade with "
            "HTTP 200 OK)",
            f"wss://127.0.0.1:{http}": "TLS handshake failed",
            f"wss://127.0.0.1:{https}": "TLS: the certificate is not trusted",
            f"wss://127.0.0.1:{plain.port}": "the server reset the connection during the handshake",
        }
        results = await asyncio.gather(*(pierhead("ls", "--url", url) for url in cases))
    for (url, reason), (code, out, err) in zip(cases.items(), results, strict=True):
        assert (code, out) == (3, ""), (url, err)
        assert err.startswith(f"pierhead: cannot reach the broker at {url}: {reason}"), err
        assert len(err.splitlines()) == 1


async def test_url_and_token_go_before_the_subcommand_as_well_as_after() -> None:
    async with running_broker() as broker, sdk.Worker(broker.url, "job-1", run_id="r") as job:
        await job.connected()
        code, out, err = await pierhead("--url", broker.url, "ls")
        assert code == 0, err
        assert out.splitlines()[1].split()[0] == "job-1"
        # After the subcommand wins over before it, as a later option does.
        code, out, _ = await pierhead("--url", "ws://127.0.0.1:1", "ls", "--url", broker.url)
        assert code == 0
        assert "job-1" in out


async def test_a_bad_key_value_prints_the_call_usage() -> None:
    code, out, err = await pierhead("call", "ws", "run", "add", "novalue")
    assert (code, out) == (2, "")
    assert err.startswith("usage: pierhead call ")
    assert err.splitlines()[-1] == (
        "pierhead call: error: argument KEY=VALUE: expected KEY=VALUE, got 'novalue'"
    )


async def test_watch_once_json_prints_a_workspace_state_a_line() -> None:
    async with running_broker() as broker:
        async with (
            sdk.Worker(broker.url, "job-1", run_id="r") as one,
            sdk.Worker(broker.url, "job-2", run_id="q") as two,
        ):
            await one.post_event("hello")
            await two.connected()
            code, out, err = await pierhead("watch", "--once", "--json", "--url", broker.url)
    assert code == 0, err
    states = [json.loads(line) for line in out.splitlines()]
    assert [state["name"] for state in states] == ["job-1", "job-2"]
    assert states[0]["last_event"]["message"] == "hello"


async def test_tail_tells_a_mutex_grant_as_a_grant() -> None:
    async with running_broker() as broker, sdk.Worker(broker.url, "deploy", run_id="r") as job:
        async with job.mutex():
            await job.post_event("holding")
        await job.post_event("let go")
        code, out, err = await pierhead("tail", "deploy", "--no-follow", "--url", broker.url)
    assert code == 0, err
    told = [line.split(maxsplit=2)[2] for line in out.splitlines() if "semaphores" in line]
    assert told == [
        "semaphores mutex granted to r (fence 1)",
        "semaphores mutex released by r (fence 1)",
    ]


async def test_tail_tells_the_first_change_it_shows_from_the_one_before_it() -> None:
    async with running_broker() as broker, sdk.Worker(broker.url, "deploy", run_id="r") as job:
        async with sdk.Watcher(broker.url) as watcher:
            await watcher.catch("deploy", "look")
            await job.post_event("between")
            await watcher.release("deploy")
        # Only the release is in the last line: it is a release, not a change from nothing.
        code, out, err = await pierhead(
            "tail", "deploy", "-n", "1", "--no-follow", "--url", broker.url
        )
    assert code == 0, err
    assert "semaphores released by pierhead-sdk" in out


# Point 15: tail reconnects and resumes; it waits for a workspace that is not there yet ------


@pytest.mark.parametrize("stop", ["kill", "terminate"])
async def test_tail_follows_across_a_broker_restart(tmp_path: Path, stop: str) -> None:
    data = tmp_path / "data"
    port = free_port()
    async with broker_process(data, "--port", str(port)) as first:
        url = first.url
        async with sdk.Worker(url, "job", run_id="r1") as job:
            await job.post_event("before")
        tail = await Tail.start("job", "--url", url)
        try:
            await tail.until_message("before")
            await subscribed(url, 1)  # the history is printed; now it follows
            getattr(first, stop)()
            await first.wait()
            async with broker_process(data, "--port", str(port)) as second:
                async with sdk.Worker(second.url, "job", run_id="r2") as job:
                    await job.post_event("after")
                await tail.until_message("after")
                assert tail.process.returncode is None
        finally:
            _, stderr = await tail.stop()
    assert "pierhead: connection lost, reconnecting…" in stderr
    offsets = [event["offset"] for event in tail.events]
    assert offsets == sorted(set(offsets))  # no event twice, none out of order
    messages = [e["payload"]["message"] for e in tail.events if "message" in e["payload"]]
    assert messages == ["before", "after"]


async def test_tail_waits_for_a_workspace_that_does_not_exist_yet() -> None:
    async with running_broker() as broker:
        tail = await Tail.start("later", "--url", broker.url)
        try:
            await subscribed(broker.url, 1)
            async with sdk.Worker(broker.url, "later", run_id="r") as job:
                await job.post_event("here now")
            await tail.until_message("here now")
        finally:
            await tail.stop()
        first = tail.events[0]["payload"]
        assert (first["kind"], first["run_id"], first["state"]) == ("presence", "r", "connected")
        # Without following there is nothing to wait for: the broker's answer stands.
        code, _, err = await pierhead("tail", "never", "--no-follow", "--url", broker.url)
    assert code == 1
    assert "not_found" in err


@pytest.mark.parametrize(("command", "code"), [(["ls"], 130), (["tail", "job"], 0)])
async def test_ctrl_c_cuts_a_command_short_with_130_and_ends_tail_with_0(
    command: list[str], code: int
) -> None:
    """Against a server that accepts and never answers: Ctrl-C once the command has
    connected, so it is past its start and waiting on the broker."""
    connected, finished = asyncio.Event(), asyncio.Event()

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.set()
        await finished.wait()
        writer.close()
        await writer.wait_closed()

    async with await asyncio.start_server(hold, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        process = await asyncio.create_subprocess_exec(
            *PIERHEAD,
            *command,
            "--url",
            f"ws://127.0.0.1:{port}",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await asyncio.wait_for(connected.wait(), WAIT_S)
            process.send_signal(signal.SIGINT)
            _, stderr = await asyncio.wait_for(process.communicate(), WAIT_S)
        finally:
            finished.set()
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == code
    assert "Traceback" not in stderr.decode()
