"""What more than one test module needs: the repository's paths, waiting on a condition, a
process's memory, a flood of events, and the ``pierhead`` command as a child process. The raw
protocol client is :mod:`tests.broker.wire`.

Test modules import from here, never from one another.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Final

import schema
from tests.broker.wire import WireClient

ROOT: Final = Path(__file__).resolve().parent.parent
"""The repository's top directory."""
PROTOCOL: Final = ROOT / "docs" / "protocol.md"


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
