"""The README's tour, command by command, against a real broker process."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import sys
from pathlib import Path

import pytest

import schema
import sdk
from broker.testing import broker_process
from tests.support import ROOT

pytestmark = pytest.mark.asyncio

PIERHEAD = Path(sys.executable).parent / "pierhead"


def tour_commands() -> list[list[str]]:
    readme = (ROOT / "README.md").read_text()
    tour = readme.split("## A five-minute tour", 1)[1].split("\n## ", 1)[0]
    lines: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", tour, flags=re.DOTALL):
        lines.extend(line.strip() for line in block.splitlines() if line.strip())
    return [shlex.split(line.removesuffix("&")) for line in lines]


def runnable(command: list[str]) -> list[str]:
    program = {"pierhead": str(PIERHEAD), "python": sys.executable}[command[0]]
    return [program, *command[1:]]


async def test_the_tour_works_as_written(tmp_path: Path) -> None:
    commands = tour_commands()
    assert commands[0] == ["pierhead", "serve"]
    workers = [c for c in commands if c[0] == "python"]
    operations = [c for c in commands if c[0] == "pierhead" and c[1] != "serve"]
    assert len(workers) == 2
    assert len(operations) >= 6
    # ``pierhead serve`` itself, on a free port instead of 8765 and a store of the test's own.
    async with broker_process(tmp_path / "pierhead-data") as broker:
        env = {**os.environ, "PIERHEAD_URL": broker.url}
        started = [
            await asyncio.create_subprocess_exec(
                *runnable(command), cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE
            )
            for command in workers
        ]
        try:
            training = started[0]
            assert training.stdout is not None
            line = await asyncio.wait_for(training.stdout.readline(), 30)
            run_id = line.decode().removeprefix("run id: ").strip()
            async with sdk.Watcher(broker.url) as watcher:
                # The deploy fails on db-3 and catches itself: then the tour's release applies.
                changes = await watcher.subscribe(
                    "deploy-demo", since="earliest", kinds=["semaphores"]
                )
                async with asyncio.timeout(60):
                    async for item in changes:
                        payload = getattr(item, "payload", None)
                        if isinstance(payload, schema.SemaphoresChange) and payload.caught:
                            break
            for command in operations:
                argv = [run_id if part == "RUN_ID" else part for part in runnable(command)]
                process = await asyncio.create_subprocess_exec(
                    *argv, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )  # fmt: skip
                out, err = await asyncio.wait_for(process.communicate(), 60)
                assert process.returncode == 0, (command, err.decode())
                assert out, command
        finally:
            for process in started:
                if process.returncode is None:
                    process.kill()
                await process.wait()
