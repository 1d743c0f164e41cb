"""The ``pierhead`` command as a child process, for tests of what an operator sees."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

# Run by this interpreter, like ``broker_process`` does: the test's virtualenv may not be on PATH.
PIERHEAD = [sys.executable, "-c", "from sdk._cli import main; raise SystemExit(main())"]
COMMAND_TIMEOUT = 60.0
"""Seconds a command that should end at once may take, on a loaded machine."""


async def pierhead(*args: str, cwd: Path) -> tuple[int, str, str]:
    """Run ``pierhead ARGS`` in ``cwd`` to its end: the exit code, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        *PIERHEAD,
        *args,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(COMMAND_TIMEOUT):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()
