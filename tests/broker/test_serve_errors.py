"""What an operator sees when ``pierhead serve`` or ``pierhead token`` cannot do its job: one
line on stderr that says why, and an exit code (2 for a mistake in the command line)."""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker._server import NODE_FILE, StartError
from broker._sqlite_store import DATABASE_NAME, SCHEMA_VERSION, SQLiteStore
from broker.testing import running_broker
from tests.support import pierhead

pytestmark = pytest.mark.asyncio


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port some other program listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield int(other.getsockname()[1])


def last_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert lines, "nothing on stderr"
    return lines[-1]


async def test_a_port_in_use_is_one_line_and_exit_1(tmp_path: Path, taken_port: int) -> None:
    code, _, stderr = await pierhead(
        "serve", "--port", str(taken_port), "--data", "data", "--log-level", "error", cwd=tmp_path
    )
    assert code == 1
    assert last_line(stderr) == (
        f"pierhead serve: cannot listen on 127.0.0.1:{taken_port}: Address already in use"
    )


async def test_a_start_that_fails_lets_go_of_the_data_directory(
    tmp_path: Path, taken_port: int
) -> None:
    with pytest.raises(StartError, match="Address already in use"):
        async with running_broker(tmp_path, port=taken_port):
            pass
    # The failed start closed the store and released the directory's lock.
    async with running_broker(tmp_path) as broker:
        assert broker.port != taken_port


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--data", "a-file"], "pierhead serve: --data a-file is not a directory"),
        (
            ["--data", "a-file/store"],
            "pierhead serve: --data a-file/store cannot be created: Not a directory",
        ),
        (
            ["--tls-cert", "missing.pem", "--tls-key", "missing.key"],
            "pierhead serve: the TLS certificate missing.pem is not a file",
        ),
        (
            ["--tls-cert", "a-file", "--tls-key", "missing.key"],
            "pierhead serve: the TLS key missing.key is not a file",
        ),
        (
            ["--tls-cert", "a-file", "--tls-key", "a-file"],
            "pierhead serve: cannot use the TLS certificate a-file with the key a-file:",
        ),
        (
            ["--heartbeat", "5", "--heartbeat-timeout", "5"],
            "pierhead serve: the heartbeat interval must be positive and the heartbeat timeout"
            " longer",
        ),
        # Each was once taken: -1 days of retention deleted every event at the next pass.
        (
            ["--retention-days", "-1"],
            "pierhead serve: error: argument --retention-days: '-1' is not a number of days,",
        ),
        (
            ["--forget-runs-after", "inf"],
            "pierhead serve: error: argument --forget-runs-after: 'inf' is not a number of days",
        ),
        (["--retention-interval", "nan"], "pierhead serve: the retention interval must be pos"),
        (["--retention-events", "0"], "pierhead serve: the events kept per workspace must be"),
        (["--grace", "-5"], "pierhead serve: the grace must be a number of seconds, 0 or more"),
        (["--drain-timeout", "-1"], "pierhead serve: the drain timeout must be a number of sec"),
        (["--max-frame-bytes", "10"], "pierhead serve: the largest frame must be at least 1024"),
        (["--max-connections-per-address", "0"], "pierhead serve: the connection limits must"),
    ],
)
async def test_unusable_serve_options_are_usage_errors(
    tmp_path: Path, options: list[str], message: str
) -> None:
    (tmp_path / "a-file").write_text("not a directory, not a certificate\n")
    code, _, stderr = await pierhead("serve", "--port", "0", *options, cwd=tmp_path)
    assert code == 2
    assert last_line(stderr).startswith(message)
    assert not (tmp_path / "pierhead-data").exists()  # nothing was made on the way out


async def test_a_store_from_a_newer_pierhead_is_one_line_and_exit_1(tmp_path: Path) -> None:
    SQLiteStore(tmp_path / "data").close()
    with sqlite3.connect(tmp_path / "data" / DATABASE_NAME) as conn:
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION + 1,)
        )
    conn.close()
    code, _, stderr = await pierhead(
        "serve", "--port", "0", "--data", "data", "--log-level", "error", cwd=tmp_path
    )
    assert code == 1
    assert "newer than version" in last_line(stderr)


async def test_a_redis_node_s_directory_without_store_is_one_line_and_exit_1(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / NODE_FILE).write_text("node-a\n")  # what a node on Redis leaves there
    code, _, stderr = await pierhead(
        "serve", "--port", "0", "--data", "data", "--log-level", "error", cwd=tmp_path
    )
    assert code == 1
    assert last_line(stderr) == (
        "pierhead serve: data belongs to a node on Redis: give --store with the node's Redis URL"
    )
    assert not (data / DATABASE_NAME).exists()  # no empty SQLite store made beside it


@pytest.mark.parametrize("command", [["list"], ["revoke", "ci"]])
async def test_token_commands_on_a_file_are_usage_errors(
    tmp_path: Path, command: list[str]
) -> None:
    (tmp_path / "a-file").write_text("")
    code, _, stderr = await pierhead("token", *command, "--data", "a-file", cwd=tmp_path)
    assert code == 2
    assert last_line(stderr) == "pierhead token: --data a-file is not a directory"


@pytest.mark.parametrize("command", [["list"], ["revoke", "ci"]])
async def test_token_commands_do_not_make_a_store_where_there_is_none(
    tmp_path: Path, command: list[str]
) -> None:
    (tmp_path / "empty").mkdir()
    for typo in ("TYPO", "empty"):
        code, _, stderr = await pierhead("token", *command, "--data", typo, cwd=tmp_path)
        assert code == 2
        assert last_line(stderr) == (
            f"pierhead token: there is no pierhead store in {typo} (is --data right?)"
        )
    assert not (tmp_path / "TYPO").exists()
    assert list((tmp_path / "empty").iterdir()) == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--expires", "5"], "argument --expires: expected a duration like 30d, 12h, 45m or 90s"),
        (["--expires", "0s"], "argument --expires: a token that expires in '0s' could never be"),
        (["--expires", "0d"], "argument --expires: a token that expires in '0d' could never be"),
        (
            ["--workspaces", "deploy prod"],
            "argument --workspaces: 'deploy prod' is not a workspace",
        ),
        (["--workspaces", ""], "argument --workspaces: '' is not a workspace pattern"),
        (["--name", "a b/c"], "argument --name: 'a b/c' is not a token name (1 to 64 letters"),
        (["--name", "x" * 65], "argument --name: 'xxxxxxxx"),
    ],
)
async def test_bad_token_settings_are_usage_errors(
    tmp_path: Path, options: list[str], message: str
) -> None:
    code, _, stderr = await pierhead(
        "token", "create", "--name", "ci", "--role", "worker", *options, cwd=tmp_path
    )
    assert code == 2
    assert last_line(stderr).startswith(f"pierhead token create: error: {message}")
    assert not (tmp_path / "pierhead-data").exists()


async def test_good_token_settings_still_make_a_token(tmp_path: Path) -> None:
    code, stdout, _ = await pierhead(
        "token",
        "create",
        "--name",
        "ci",
        "--role",
        "worker",
        "--workspaces",
        "deploy-[ab]*",
        "--expires",
        "90s",
        cwd=tmp_path,
    )
    assert code == 0, stdout
    assert stdout.splitlines()[-1].startswith("ph_")
    code, stdout, _ = await pierhead("token", "list", cwd=tmp_path)
    assert code == 0
    assert "deploy-[ab]*" in stdout
