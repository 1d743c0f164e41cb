"""What more than one test module needs: the repository's paths, a port a server can be
restarted on, waiting on a condition, a process's memory, a flood of events, the ``pierhead``
command as a child process, and the store a parametrised broker test runs on
(:class:`BrokerStore`, the ``broker_store`` fixture of tests/conftest.py). The raw protocol
client is :mod:`tests.broker.wire`.

Test modules import from here, never from one another.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

import schema
import sdk
from broker._server import BrokerServer
from broker.testing import BrokerProcess, broker_process, running_broker
from tests.broker.wire import WireClient

if TYPE_CHECKING:
    # Only its type: tests.redis_server is a pytest plugin, imported by pytest first.
    from tests.redis_server import RedisServer

ROOT: Final = Path(__file__).resolve().parent.parent
"""The repository's top directory."""
PROTOCOL: Final = ROOT / "docs" / "protocol.md"


# Ports --------------------------------------------------------------------------------------

_EPHEMERAL_RANGE: Final = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST_PORT: Final = 10_000
"""Below this, ports that services on the machine listen on by convention."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now and the kernel never hands out itself.

    For a server a test starts on a port it chose, and starts again on the same port after a
    kill. A port the kernel handed out (``--port 0``) is in its ephemeral range: while the server
    is down, the kernel may give it to any new client socket as its local port, and the restart
    then fails with "address already in use". Outside that range only an explicit bind takes it.
    """
    try:
        low, high = (int(part) for part in _EPHEMERAL_RANGE.read_text().split())
    except (OSError, ValueError):
        # Not Linux: its default range starts at 32768, the IANA one (BSD, macOS) at 49152.
        low, high = 32_768, 65_535
    candidates = [port for port in range(_LOWEST_PORT, 65_536) if not low <= port <= high]
    for port in random.sample(candidates, k=min(100, len(candidates))):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port on 127.0.0.1 outside the ephemeral range {low}-{high}")


# Waiting ------------------------------------------------------------------------------------

WAIT_S: Final = 15.0
"""The longest a test waits for any one condition before it fails."""
POLL_S: Final = 0.01
"""How often a condition nothing signals is checked again."""


async def until(
    condition: Callable[[], bool],
    what: str | Callable[[], str] = "the condition",
    *,
    timeout: float = WAIT_S,
    changed: asyncio.Event | None = None,
) -> None:
    """Return as soon as ``condition()`` holds.

    The condition is checked again each time ``changed`` is set (cleared before each wait), or
    every :data:`POLL_S` without it. ``timeout`` bounds a broken test, never paces a working
    one: past it the test fails with an ``AssertionError`` saying what it waited for
    (``what``, or ``what()`` at that moment). The condition may raise to fail sooner.
    """
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                if changed is None:
                    await asyncio.sleep(POLL_S)
                else:
                    changed.clear()
                    await changed.wait()
    except TimeoutError:
        waited_for = what() if callable(what) else what
        raise AssertionError(f"timed out after {timeout:g} s waiting for {waited_for}") from None


async def until_answered(
    check: Callable[[], Awaitable[bool]],
    what: str = "the condition",
    *,
    timeout: float = WAIT_S,
) -> None:
    """:func:`until` for a condition that must be asked for (a request to a broker, an HTTP
    GET): asked again as soon as the previous answer came back no, every :data:`POLL_S`."""
    try:
        async with asyncio.timeout(timeout):
            while not await check():
                await asyncio.sleep(POLL_S)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what}") from None


# Processes ----------------------------------------------------------------------------------


def memory_kib(pid: int, field: str = "VmRSS") -> int:
    """Resident memory (``VmRSS``) or its peak so far (``VmHWM``), from /proc; where there is
    no /proc, the current resident size from ``ps`` for both."""
    status = Path(f"/proc/{pid}/status")
    if not status.exists():
        output = subprocess.run(
            ["ps", "-o", "rss=", "-p", str(pid)], capture_output=True, text=True, check=True
        )
        return int(output.stdout.strip())
    for line in status.read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for process {pid}")


# A flood --------------------------------------------------------------------------------------

FLOOD_EVENTS: Final = 40_000
FLOOD_BATCH: Final = 500
FLOOD_LINE: Final = "x" * 1000
"""40 MB in all: far more than the socket buffers between a broker and a client hold."""


def flood_lines(start: int, count: int) -> list[schema.WorkerPayload]:
    return [
        schema.LogRecord(message=FLOOD_LINE, logger=str(i)) for i in range(start, start + count)
    ]


async def flood(worker: WireClient) -> None:
    """Publish :data:`FLOOD_EVENTS` kilobyte log lines, :data:`FLOOD_BATCH` to a frame, as
    fast as the socket takes them; return once the broker has acknowledged them all."""
    for seq in range(1, FLOOD_EVENTS + 1, FLOOD_BATCH):
        await worker.publish(seq, flood_lines(seq, FLOOD_BATCH))
    acked = 0
    while acked < FLOOD_EVENTS:
        acked = (await worker.expect(schema.Ack)).seq
    assert acked == FLOOD_EVENTS


# The command --------------------------------------------------------------------------------

PIERHEAD: Final = [sys.executable, "-m", "pierhead"]
"""The ``pierhead`` command, run by this interpreter: the test's virtualenv may not be on PATH,
and a ``pierhead`` found there may be another copy."""
COMMAND_TIMEOUT_S: Final = 60.0
"""How long a command that should end at once may take, on a loaded machine, before the test
calls it hung."""


async def pierhead(*args: str, cwd: Path | None = None) -> tuple[int, str, str]:
    """Run ``pierhead ARGS`` to its end: the exit code, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        *PIERHEAD,
        *args,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(COMMAND_TIMEOUT_S):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


# The store of a parametrised broker test ------------------------------------------------------

StoreKind = Literal["sqlite", "redis"]
STORE_KINDS: Final[tuple[StoreKind, ...]] = ("sqlite", "redis")
REDIS_DATABASES: Final = 16
"""Redis' default ``databases``: the most brokers with data directories of their own a test
may run on one server."""


@dataclass
class BrokerStore:
    """The store a broker test runs its brokers on: the embedded SQLite store, or the test
    session's Redis server (``pierhead serve --store``).

    ``running_broker`` and ``broker_process`` are those of :mod:`broker.testing` with the
    store's settings added. On Redis each data directory gets a database of its own, as on
    SQLite it gets a file of its own: brokers of one test do not share workspaces (that is a
    cluster, tested on its own), and a broker restarted on its data directory finds its
    database (and its node name, kept in the directory) again.
    """

    STORE_CLASSES: ClassVar[dict[str, str]] = {"sqlite": "SQLiteStore", "redis": "RedisStore"}
    """What each kind's brokers must run on: a check that the parametrisation is real."""

    kind: StoreKind
    redis: RedisServer | None = None
    _databases: dict[Path, int] = field(default_factory=dict)

    def store_url(self, data_dir: Path) -> str | None:
        """The ``--store`` URL of a broker on ``data_dir``; None on SQLite."""
        if self.redis is None:
            return None
        key = data_dir.resolve()
        if key not in self._databases:
            assert len(self._databases) < REDIS_DATABASES, "more brokers than Redis databases"
            self._databases[key] = len(self._databases)
        return f"redis://127.0.0.1:{self.redis.port}/{self._databases[key]}"

    @asynccontextmanager
    async def running_broker(
        self, data_dir: Path | None = None, **settings: Any
    ) -> AsyncIterator[BrokerServer]:
        """``broker.testing.running_broker`` on this store."""
        with contextlib.ExitStack() as stack:
            if data_dir is None:
                data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ph-")))
            async with running_broker(data_dir, store=self.store_url(data_dir), **settings) as b:
                assert b.broker is not None
                assert type(b.broker.store).__name__ == self.STORE_CLASSES[self.kind]
                yield b

    @asynccontextmanager
    async def broker_process(self, data_dir: Path, *options: str) -> AsyncIterator[BrokerProcess]:
        """``broker.testing.broker_process`` on this store."""
        url = self.store_url(data_dir)
        store = ("--store", url) if url is not None else ()
        async with broker_process(data_dir, *store, *options) as broker:
            (listening,) = broker.events("listening")
            assert listening["store"].startswith(url or "sqlite"), listening
            yield broker


class Tail:
    """``pierhead tail --json`` as a process: its events as they come, its stderr at the end."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.events: list[dict[str, Any]] = []

    @classmethod
    async def start(cls, *args: str) -> Tail:
        process = await asyncio.create_subprocess_exec(
            *PIERHEAD, "tail", "--json", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        return cls(process)

    async def until_message(self, message: str) -> None:
        """Read events until one with ``message``; fails if the tail ends first."""
        assert self.process.stdout is not None
        while not any(e["payload"].get("message") == message for e in self.events):
            line = await asyncio.wait_for(self.process.stdout.readline(), COMMAND_TIMEOUT_S)
            assert line, f"tail ended with {await self.stop()}"
            self.events.append(json.loads(line))

    async def stop(self) -> tuple[int | None, str]:
        if self.process.returncode is None:
            self.process.terminate()
        _, stderr = await self.process.communicate()
        return self.process.returncode, stderr.decode()


async def subscribed(url: str, count: int = 1) -> None:
    """Until the broker at ``url`` counts ``count`` subscriptions."""
    async with sdk.Watcher(url) as watcher, asyncio.timeout(COMMAND_TIMEOUT_S):
        while (await watcher.stats()).counters["subscriptions"] < count:
            await asyncio.sleep(POLL_S)
