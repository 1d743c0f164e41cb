"""A child process on a pseudo-terminal, for testing what a person would see."""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import struct
import subprocess
import termios
from collections.abc import Callable, Iterator

import pytest

from tests.support import ROOT

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[()][0-9A-Za-z]|\x1b[=>78]")


def _take_controlling_terminal() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """A child process on a pseudo-terminal of 120x40, its screen output read as it comes."""

    def __init__(self, argv: list[str]) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
        for name in ("NO_COLOR", "FORCE_COLOR", "TERM_PROGRAM"):
            env.pop(name, None)
        self.process = subprocess.Popen(
            argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=ROOT,
            start_new_session=True,
            # The pty becomes the session's controlling terminal, so Ctrl-C is a SIGINT, as
            # it is for a person at a terminal.
            preexec_fn=_take_controlling_terminal,
        )
        os.close(slave)
        self.master = master
        self.output = bytearray()
        self.changed = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(master, self._read)

    def _read(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except OSError:
            data = b""
        if data:
            self.output += data
        else:
            self._loop.remove_reader(self.master)
        self.changed.set()

    def frames(self) -> list[str]:
        """What was drawn, one screen per cursor-home, without escape sequences."""
        raw = self.output.decode("utf-8", errors="replace")
        return [_ANSI.sub("", frame) for frame in raw.split("\x1b[H")]

    async def wait_for(self, condition: Callable[[str], bool], timeout: float = 15) -> str:
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for frame in reversed(self.frames()[-3:]):
                        if condition(frame):
                            return frame
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            raise AssertionError(f"not on the screen: {self.frames()[-1]}") from None

    def send(self, keys: bytes) -> None:
        os.write(self.master, keys)

    async def exit_code(self) -> int:
        return await asyncio.to_thread(self.process.wait, 15)

    def close(self) -> None:
        self._loop.remove_reader(self.master)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        os.close(self.master)


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    opened: list[Terminal] = []
    yield opened
    for terminal in opened:
        terminal.close()
