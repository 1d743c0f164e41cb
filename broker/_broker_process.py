"""``pierhead serve`` as a child process of your test: start, kill, stop, pause, restart.

``async with broker_process(data_dir) as broker:`` runs a real broker process on a free
loopback port with its store in ``data_dir``; ``broker.url`` is where to connect. Use it for
what an in-process broker (``running_broker()``) cannot show: a broker that dies by SIGKILL
with nothing flushed, one that drains on SIGTERM, one frozen by SIGSTOP, and a restart on the
same data (start a new ``broker_process`` on the same directory).

The broker runs under the interpreter running your tests, so it is the installed copy of
pierhead that runs (also inside a virtualenv made by nox or tox). Its stderr is read all the
time, because a full pipe would block the broker, and every line is kept in ``logs`` as a
parsed JSON record for assertions and for diagnosing a failed test (``describe()``).

Signals are POSIX: ``pause()`` and ``resume()`` do not exist on Windows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

START_TIMEOUT = 20.0
"""Seconds a broker may take from spawn to listening."""
EXIT_TIMEOUT = 20.0
"""Seconds ``wait()`` gives a broker to exit by default."""

# ``pierhead serve`` as the broker package runs it on its own (``python -m broker serve``), by
# this interpreter rather than found on PATH: the test's virtualenv may not be activated, and a
# ``pierhead`` on PATH may be another copy.
_SERVE = [sys.executable, "-m", "broker", "serve"]


class BrokerExitedError(RuntimeError):
    """The broker process ended before it was listening; the message holds its last logs."""


class BrokerProcess:
    """One run of ``pierhead serve --port 0 --data DIR --log-format json`` plus ``options``.

    ``options`` are further ``pierhead serve`` arguments, e.g. ``"--grace", "30"``. Prefer
    ``broker_process()``, which also makes sure the process is gone when the test ends.
    """

    def __init__(self, data_dir: Path, *options: str) -> None:
        self.data_dir = data_dir
        self.options = options
        self.logs: list[dict[str, Any]] = []
        """Every stderr line: the JSON log records, other lines as ``{"raw": line}``."""
        self.port = 0
        """The port the broker listens on, once ``start()`` returned."""
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._listening: asyncio.Future[int] | None = None

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:PORT``: where clients connect."""
        assert self.port, "the broker is not listening"
        return f"ws://127.0.0.1:{self.port}"

    @property
    def process(self) -> asyncio.subprocess.Process:
        """The running (or ended) child process."""
        assert self._process is not None, "the broker was not started"
        return self._process

    @property
    def returncode(self) -> int | None:
        """The exit code once the process ended (negative: killed by that signal), else None."""
        return self.process.returncode

    async def start(self) -> None:
        """Spawn the broker and return once it accepts connections.

        Raises ``BrokerExitedError`` if the broker exits first (a bad option, a locked data
        directory) and ``TimeoutError`` after ``START_TIMEOUT`` seconds.
        """
        command = [
            *_SERVE,
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--data",
            str(self.data_dir),
            "--log-format",
            "json",
            *self.options,
        ]
        # Unbuffered, so every log line is there the moment it is written, up to a SIGKILL;
        # faulthandler, so a broker that crashes hard leaves a traceback in the logs.
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"}
        self._listening = asyncio.get_running_loop().create_future()
        self._process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            cwd=self.data_dir.parent,
            env=env,
        )
        self._reader = asyncio.create_task(self._read_stderr())
        async with asyncio.timeout(START_TIMEOUT):
            self.port = await self._listening

    async def _read_stderr(self) -> None:
        assert self._process is not None
        assert self._process.stderr is not None
        assert self._listening is not None
        stream = self._process.stderr
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip("\n")
            try:
                record = json.loads(text)
            except ValueError:
                record = None
            if not isinstance(record, dict):
                record = {"raw": text}
            self.logs.append(record)
            # The broker logs its real port once bound: the only way to learn a --port 0 port.
            if record.get("event") == "listening" and not self._listening.done():
                self._listening.set_result(int(record["port"]))
        if not self._listening.done():
            self._listening.set_exception(BrokerExitedError(self.describe()))

    def events(self, name: str) -> list[dict[str, Any]]:
        """The log records whose ``event`` is ``name``."""
        return [record for record in self.logs if record.get("event") == name]

    def describe(self) -> str:
        """The data directory, the options and the last 40 log lines, for assertion messages."""
        lines = [json.dumps(record) for record in self.logs[-40:]]
        return f"broker on {self.data_dir} {self.options}:\n" + "\n".join(lines)

    def kill(self) -> None:
        """SIGKILL: no drain, no flush, nothing the process can do about it."""
        self.process.kill()

    def terminate(self) -> None:
        """SIGTERM: the broker drains and exits by itself (only once resumed, if paused)."""
        self.process.send_signal(signal.SIGTERM)

    def pause(self) -> None:
        """SIGSTOP: the broker freezes, its sockets stay open and nothing is answered.

        Clients see a broker that hangs rather than one that went away: connections stay up,
        frames pile up in the socket buffers, pings go unanswered. ``resume()`` carries on;
        ``kill()`` and ``close()`` work on a paused broker, SIGTERM waits for ``resume()``.
        """
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT: a paused broker carries on where it stopped."""
        self.process.send_signal(signal.SIGCONT)

    async def wait(self, timeout: float = EXIT_TIMEOUT) -> int:
        """Wait for the process to exit and its stderr to be read to the end; the exit code."""
        async with asyncio.timeout(timeout):
            code = await self.process.wait()
            if self._reader is not None:
                await self._reader
        return code

    async def timed_exit(self, timeout: float = EXIT_TIMEOUT) -> tuple[int, float]:
        """SIGTERM, then the exit code and the seconds it took to exit."""
        started = time.monotonic()
        self.terminate()
        code = await self.wait(timeout)
        return code, time.monotonic() - started

    async def close(self) -> None:
        """Make sure the process is gone (SIGKILL if it still runs) and reaped."""
        if self._process is None:
            return
        if self._process.returncode is None:
            # SIGKILL also ends a paused process, so no SIGCONT is needed first.
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
        try:
            await self.wait()
        finally:
            if self._reader is not None and not self._reader.done():
                self._reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._reader


@asynccontextmanager
async def broker_process(data_dir: Path, *options: str) -> AsyncIterator[BrokerProcess]:
    """A running broker process on ``data_dir``; killed on exit if it still runs.

    ``data_dir`` need not exist yet, its parent must. ``options`` are further
    ``pierhead serve`` arguments.
    """
    broker = BrokerProcess(data_dir, *options)
    try:
        await broker.start()
        yield broker
    finally:
        await broker.close()
