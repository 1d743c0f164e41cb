"""``pierhead serve`` as a real child process: start, learn the port, kill or stop, restart.

The broker is started with the interpreter running the tests, so it is the installed copy of
the package that runs (also inside a nox virtualenv). Its stderr is read all the time (a full
pipe would stall the broker) and kept as parsed JSON log lines for assertions and diagnosis.
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
EXIT_TIMEOUT = 20.0

_SERVE = [sys.executable, "-c", "from sdk._cli import main; raise SystemExit(main())", "serve"]


class BrokerExitedError(RuntimeError):
    """The broker process ended before it was listening."""


class BrokerProcess:
    """One run of ``pierhead serve --port 0 --data DIR --log-format json`` plus ``options``."""

    def __init__(self, data_dir: Path, *options: str) -> None:
        self.data_dir = data_dir
        self.options = options
        self.logs: list[dict[str, Any]] = []
        """Every stderr line: the JSON log records, other lines as ``{"raw": line}``."""
        self.port = 0
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._listening: asyncio.Future[int] | None = None

    @property
    def url(self) -> str:
        assert self.port, "the broker is not listening"
        return f"ws://127.0.0.1:{self.port}"

    @property
    def process(self) -> asyncio.subprocess.Process:
        assert self._process is not None, "the broker was not started"
        return self._process

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    async def start(self) -> None:
        """Spawn the broker and return once it accepts connections."""
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
            if record.get("event") == "listening" and not self._listening.done():
                self._listening.set_result(int(record["port"]))
        if not self._listening.done():
            self._listening.set_exception(BrokerExitedError(self.describe()))

    def events(self, name: str) -> list[dict[str, Any]]:
        """The log records whose ``event`` is ``name``."""
        return [record for record in self.logs if record.get("event") == name]

    def describe(self) -> str:
        lines = [json.dumps(record) for record in self.logs[-40:]]
        return f"broker on {self.data_dir} {self.options}:\n" + "\n".join(lines)

    def kill(self) -> None:
        """SIGKILL: no drain, no flush, nothing the process can do about it."""
        self.process.kill()

    def terminate(self) -> None:
        """SIGTERM: the broker drains and exits by itself."""
        self.process.send_signal(signal.SIGTERM)

    async def wait(self, timeout: float = EXIT_TIMEOUT) -> int:
        """Wait for the process to exit and its stderr to be read to the end."""
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
    """A running broker process on ``data_dir``; killed on exit if it still runs."""
    broker = BrokerProcess(data_dir, *options)
    try:
        await broker.start()
        yield broker
    finally:
        await broker.close()
