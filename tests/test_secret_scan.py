"""The secret scan plugin, run on test sessions of its own: it finds a secret planted in each
kind of log, fails that session and names each leak, and passes a session without one."""

from __future__ import annotations

import re

import pytest

from tests.child_process_hooks.sitecustomize import SCAN_DIR_VARIABLE, TEST_VARIABLE
from tests.support import ROOT

pytest_plugins = ["pytester"]

HELPERS = """
import asyncio
import subprocess
import sys
import re
from pathlib import Path

from broker._tokens import SqliteTokenStore
from broker.testing import broker_process

CLI = [sys.executable, "-c", "from pierhead._cli import main; raise SystemExit(main())"]


def made_here(data: Path) -> str:
    store = SqliteTokenStore(data)
    try:
        return store.create("here", ["watcher"])[1]
    finally:
        store.close()


def made_by_the_cli(data: Path) -> str:
    command = [*CLI, "token", "create", "--name", "cli", "--role", "watcher", "--data", str(data)]
    printed = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return printed.splitlines()[-1]
"""

PLANTED = """
import logging

import pytest

from broker.testing import BrokerExitedError
from helpers import CLI, asyncio, broker_process, made_by_the_cli, made_here, subprocess, sys


def test_captured_log(tmp_path):
    logging.getLogger("planted").warning("presented %s", made_here(tmp_path))


def test_captured_stderr(tmp_path):
    print("presented", made_here(tmp_path)[-25:-3], file=sys.stderr)


def test_captured_stdout_of_a_token_nobody_made():
    print('{"event": "hello", "token": "ph_0123456789ab_' + "Q" * 43 + '"}')


def test_broker_process(tmp_path):
    secret = made_by_the_cli(tmp_path / "data")

    async def serve():
        # One argument: a value that starts with "-" (1 in 64 secrets) would be read as an
        # option, and the error would not quote it.
        async with broker_process(tmp_path / "data", f"--log-level={secret[-21:-1]}"):
            pass

    with pytest.raises(BrokerExitedError):
        asyncio.run(serve())


def test_serve_by_subprocess(tmp_path):
    secret = made_by_the_cli(tmp_path / "data")
    served = subprocess.run([*CLI, "serve", "--sync", secret], capture_output=True, text=True)
    assert served.returncode == 2
"""

CLEAN = """
import sdk
from helpers import asyncio, broker_process, made_by_the_cli, made_here


def test_token_printed_alone(tmp_path):
    print(made_here(tmp_path))


def test_broker_with_tokens(tmp_path):
    made_here(tmp_path / "data")
    secret = made_by_the_cli(tmp_path / "data")

    async def serve():
        async with broker_process(tmp_path / "data", "--auth", "token") as broker:
            async with sdk.Watcher(broker.url, token=secret) as watcher:
                assert await watcher.workspaces() == []
            # Once it has answered, the broker drains on SIGTERM.
            code, _ = await broker.timed_exit()
            assert code == 0

    asyncio.run(serve())
"""


@pytest.fixture
def session(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A directory for a session of its own, run as a process that is no child of this run's
    scan: this run must not see its planted secrets."""
    monkeypatch.delenv(SCAN_DIR_VARIABLE, raising=False)
    monkeypatch.delenv(TEST_VARIABLE, raising=False)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(helpers=HELPERS)
    return pytester


def run(session: pytest.Pytester) -> pytest.RunResult:
    return session.runpytest_subprocess("-p", "tests.secret_scan", "-p", "no:cacheprovider")


def test_a_secret_in_any_kind_of_log_fails_the_session(session: pytest.Pytester) -> None:
    session.makepyfile(test_planted=PLANTED)
    result = run(session)
    result.assert_outcomes(passed=5)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "secret scan: 4 tokens seen (2 made in this process, 2 in child processes),"
            " * bytes of logs scanned (*); 5 LEAKS",
            "secret scan: LEAK test_planted.py::test_captured_log:"
            " the secret of token * in captured log call",
            "secret scan: LEAK test_planted.py::test_captured_stderr:"
            " the secret of token * in captured stderr call",
            "secret scan: LEAK test_planted.py::test_captured_stdout_of_a_token_nobody_made:"
            " a token-shaped string, id 0123456789ab in captured stdout call",
            "secret scan: LEAK test_planted.py::test_broker_process:"
            " the secret of token * in the stderr of `pierhead serve` (pid *)",
            "secret scan: LEAK test_planted.py::test_serve_by_subprocess:"
            " the secret of token * in the stderr of `pierhead serve` (pid *)",
        ],
        consecutive=True,
    )


def test_a_session_without_a_leak_passes_and_says_what_it_scanned(
    session: pytest.Pytester,
) -> None:
    session.makepyfile(test_clean=CLEAN)
    result = run(session)
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.OK
    (summary,) = [line for line in result.outlines if line.startswith("secret scan:")]
    scanned = re.fullmatch(
        r"secret scan: 3 tokens seen \(2 made in this process, 1 in child processes\),"
        r" ([\d,]+) bytes of logs scanned \(([\d,]+) in (\d+) captured test sections,"
        r" ([\d,]+) in the stderr of 2 child processes\); no leak",
        summary,
    )
    assert scanned is not None, summary
    total, in_sections, sections, in_children = (int(n.replace(",", "")) for n in scanned.groups())
    assert sections >= 1
    assert in_sections > 0
    assert in_children > 0
    assert total == in_sections + in_children
