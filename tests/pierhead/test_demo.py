"""``pierhead demo`` on a terminal: both simulated workers show, the dashboard's address is
printed and answers, and Ctrl-C ends it all."""

from __future__ import annotations

import os
import re
import sys
import urllib.request

import pytest

from tests.terminal import Terminal

CLI = "from pierhead._cli import main; raise SystemExit(main())"


@pytest.mark.asyncio
async def test_demo_shows_both_workers_and_ends_cleanly_on_ctrl_c(
    terminals: list[Terminal],
) -> None:
    terminal = Terminal([sys.executable, "-c", CLI, "demo"])
    terminals.append(terminal)
    frame = await terminal.wait_for(
        lambda screen: (
            "deploy-web" in screen
            and "train-resnet" in screen
            and "restarting services" in screen
            and "loss" in screen
        ),
        timeout=30,
    )
    assert "connected" in frame
    # The dashboard's address is printed beside the console, and it answers there.
    printed = re.search(rb"dashboard at (http://127\.0\.0\.1:\d+/)", terminal.output)
    assert printed is not None, terminal.output
    with urllib.request.urlopen(printed.group(1).decode(), timeout=10) as page:
        assert page.read().startswith(b"<!doctype html>")
    terminal.send(b"\x03")  # Ctrl-C
    assert await terminal.exit_code() == 0
    output = terminal.output.decode(errors="replace")
    assert "Traceback" not in output
    assert "auth_off" not in output  # a warning for operators; the demo chose it
    # Broker, workers and console all lived in that one process group; nothing is left.
    with pytest.raises(ProcessLookupError):
        os.killpg(terminal.process.pid, 0)
