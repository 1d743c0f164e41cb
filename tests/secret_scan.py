"""pytest plugin: no token secret appears in any log of the whole run.

Listed in ``tests/conftest.py``. Over the run it learns every token secret made: in this
process (``TokenStore.create`` records for the length of the run) and in every Python child
process (``tests/child_process_hooks/sitecustomize.py``, which also copies each child's
stderr). It keeps what it needs of every log of the run:

- the captured log, stderr and stdout of every test report. Standard output counts as a log:
  an in-process broker logs there through structlog's default logger. A line that is a token
  alone is not: that is how ``pierhead token create`` shows a secret on purpose;
- the stderr of every Python child process: each ``pierhead serve``, whether started through
  ``broker.testing.BrokerProcess``, by the benchmarks' process fleet or by ``subprocess``, and
  each command and client process the tests run.

At the end of the session it searches all of them for every secret (whole, or ``WINDOW``
characters in a row of its random part) and for any token-shaped string, prints one summary
line, and fails the run on a leak, naming the test and the log (never the secret: a token is
named by its id).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import tempfile
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

from broker._tokens import TokenStore
from tests.child_process_hooks.sitecustomize import (
    SCAN_DIR_VARIABLE,
    STDERR_PREFIX,
    TEST_VARIABLE,
    TOKENS_PREFIX,
    recording,
)
from tests.secret_leaks import (
    SecretIndex,
    candidates,
    token_id,
    token_shaped,
    without_printed_tokens,
)

HOOKS: Final = Path(__file__).resolve().parent / "child_process_hooks"
"""The directory put first on the children's ``PYTHONPATH``, for its ``sitecustomize``."""
_SUBCOMMAND: Final = re.compile(r"[a-z][a-z0-9_-]{0,18}")
"""A word after a program's name shown in a report: too short to hold ``WINDOW`` characters."""


@dataclass(frozen=True, slots=True)
class LogSource:
    """One log of the run, cut down to the runs a secret could hide in."""

    test: str
    """The node id of the test it belongs to (a child: the test running when it started)."""
    what: str
    runs: frozenset[str]
    size: int
    """Bytes of log."""
    from_child: bool
    """The stderr of a child process, else a captured section of a test report."""


@dataclass(frozen=True, slots=True)
class MadeSecret:
    secret: str
    test: str
    in_child: bool


@dataclass(frozen=True, slots=True)
class Leak:
    source: LogSource
    token_id: str
    made_in_run: bool
    """A secret the run made, or only a string of a token's shape."""

    def describe(self) -> str:
        what = "the secret of token" if self.made_in_run else "a token-shaped string, id"
        test = self.source.test or "outside any test"
        return f"{test}: {what} {self.token_id} in {self.source.what}"


def section_source(test: str, title: str, content: str) -> LogSource:
    """A captured section of a test report (``Captured stdout call``...) as a log."""
    text = without_printed_tokens(content) if "stdout" in title else content
    runs = frozenset(candidates(text))
    return LogSource(test, title.lower(), runs, len(content.encode()), from_child=False)


def _command(argv: list[str]) -> str:
    """How a child was started, by program and subcommand (``pierhead serve``): its options
    are left out, as they may hold a secret (``--token``)."""
    if len(argv) > 2 and argv[1] == "-c":
        head, rest = ["pierhead" if "pierhead._cli" in argv[2] else "python -c"], argv[3:]
    elif len(argv) > 2 and argv[1] == "-m":
        command = argv[2] in ("pierhead", "broker")  # both run the ``pierhead`` subcommands
        head, rest = ["pierhead"] if command else ["python -m", argv[2]], argv[3:]
    elif len(argv) > 1 and Path(argv[0]).name.startswith("python"):
        head, rest = ["python", Path(argv[1]).name], argv[2:]
    else:
        head, rest = [Path(argv[0]).name if argv else "?"], argv[1:]
    subcommands = list(itertools.takewhile(_SUBCOMMAND.fullmatch, rest))[:2]
    return " ".join([*head, *subcommands])


def child_sources(directory: Path) -> list[LogSource]:
    """The stderr of every child process, as copied by ``sitecustomize``."""
    sources = []
    for path in sorted(directory.glob(f"{STDERR_PREFIX}*")):
        header, _, log = path.read_bytes().partition(b"\n")
        started = json.loads(header)
        what = f"the stderr of `{_command(started['argv'])}` (pid {started['pid']})"
        text = log.decode(errors="replace")
        runs = frozenset(candidates(text))
        sources.append(LogSource(started["test"], what, runs, len(log), from_child=True))
    return sources


def child_secrets(directory: Path) -> list[MadeSecret]:
    """The secrets child processes made, as noted by ``sitecustomize``."""
    made = []
    for path in sorted(directory.glob(f"{TOKENS_PREFIX}*")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            made.append(MadeSecret(record["secret"], record["test"], in_child=True))
    return made


def find_leaks(secrets: Iterable[str], sources: Iterable[LogSource]) -> list[Leak]:
    index = SecretIndex({secret: secret for secret in secrets})
    leaks: list[Leak] = []
    for source in sources:
        known = {token_id(secret) for secret in index.labels_in(source.runs)}
        leaks.extend(Leak(source, found, made_in_run=True) for found in sorted(known))
        shaped = token_shaped(source.runs) - known
        leaks.extend(Leak(source, found, made_in_run=False) for found in sorted(shaped))
    return leaks


@dataclass(frozen=True, slots=True)
class ScanResult:
    made: list[MadeSecret]
    sources: list[LogSource]
    leaks: list[Leak]

    def summary(self) -> str:
        in_children = sum(secret.in_child for secret in self.made)
        children = [source for source in self.sources if source.from_child]
        sections = len(self.sources) - len(children)
        child_bytes = sum(source.size for source in children)
        section_bytes = sum(source.size for source in self.sources) - child_bytes
        outcome = f"{len(self.leaks)} LEAKS" if self.leaks else "no leak"
        return (
            f"secret scan: {len(self.made)} tokens seen ({len(self.made) - in_children} made in"
            f" this process, {in_children} in child processes),"
            f" {section_bytes + child_bytes:,} bytes of logs scanned ({section_bytes:,} in"
            f" {sections:,} captured test sections, {child_bytes:,} in the stderr of"
            f" {len(children):,} child processes); {outcome}"
        )


class SecretScan:
    """The plugin's state for one session."""

    def __init__(self) -> None:
        self._directory = Path(tempfile.mkdtemp(prefix="pierhead-secret-scan-"))
        self._patch = pytest.MonkeyPatch()
        self._made: list[MadeSecret] = []
        self._sections: list[LogSource] = []
        self._test = ""
        self.result: ScanResult | None = None

    def start(self) -> None:
        self._patch.setenv(SCAN_DIR_VARIABLE, str(self._directory))
        self._patch.setenv(TEST_VARIABLE, "")
        self._patch.setenv("PYTHONPATH", str(HOOKS), prepend=os.pathsep)
        self._patch.setattr(TokenStore, "create", recording(TokenStore.create, self._record))

    def stop(self) -> None:
        self._patch.undo()
        shutil.rmtree(self._directory, ignore_errors=True)

    def _record(self, secret: str) -> None:
        self._made.append(MadeSecret(secret, self._test, in_child=False))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, object, object]:
        # The children a test starts inherit its name, so that their logs can be told apart.
        self._test = item.nodeid
        os.environ[TEST_VARIABLE] = item.nodeid
        try:
            return (yield)
        finally:
            self._test = ""
            os.environ[TEST_VARIABLE] = ""

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # A report also carries the sections of the phases before it: take its own only.
        self._sections.extend(
            section_source(report.nodeid, title, content)
            for title, content in report.sections
            if title.endswith(f" {report.when}")
        )

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        made = self._made + child_secrets(self._directory)
        sources = self._sections + child_sources(self._directory)
        self.result = ScanResult(made, sources, find_leaks((m.secret for m in made), sources))
        if self.result.leaks:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.result is None:
            return
        terminalreporter.write_line(self.result.summary(), red=bool(self.result.leaks))
        for leak in self.result.leaks:
            terminalreporter.write_line(f"secret scan: LEAK {leak.describe()}", red=True)


_PLUGIN_NAME: Final = "pierhead-secret-scan"


def pytest_configure(config: pytest.Config) -> None:
    scan = SecretScan()
    scan.start()
    config.pluginmanager.register(scan, _PLUGIN_NAME)


def pytest_unconfigure(config: pytest.Config) -> None:
    scan = config.pluginmanager.get_plugin(_PLUGIN_NAME)
    if isinstance(scan, SecretScan):
        scan.stop()
        config.pluginmanager.unregister(scan)
