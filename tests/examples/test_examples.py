"""The examples run against a real broker and do what their docstrings say."""

from __future__ import annotations

import asyncio
import sys

import pytest

import schema
import sdk
from broker.testing import running_broker
from tests.support import ROOT

pytestmark = pytest.mark.asyncio

EXAMPLES = ROOT / "examples"


async def start(script: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLES / script), *args, stdout=asyncio.subprocess.PIPE
    )


async def test_deploy_worker_pauses_on_failure_until_released() -> None:
    async with running_broker() as broker, sdk.Watcher(broker.url) as operator:
        events = await operator.subscribe("deploy-demo", kinds=["event", "semaphores"])
        process = await start(
            "deploy_worker.py", "--url", broker.url, "--hosts", "4", "--fail-on", "db-2",
            "--pace", "0.01",
        )  # fmt: skip
        try:
            messages: list[str] = []
            async for item in events:
                assert isinstance(item, schema.EventMsg)
                payload = item.payload
                if isinstance(payload, schema.SemaphoresChange):
                    if payload.caught:  # the worker caught itself after the failure
                        await operator.release("deploy-demo")
                    continue
                assert isinstance(payload, schema.WorkspaceEvent)
                messages.append(payload.message)
                if payload.message == "rollout finished":
                    break
            assert await asyncio.wait_for(process.wait(), 30) == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert "db-2: service did not come back after restart" in messages
    assert [m for m in messages if m.endswith(": done")] == [f"db-{n}: done" for n in range(1, 5)]


async def test_training_worker_publishes_and_answers_set_lr() -> None:
    async with running_broker() as broker, sdk.Watcher(broker.url) as operator:
        process = await start(
            "training_worker.py", "--url", broker.url, "--epochs", "2", "--steps", "100",
            "--pace", "0.01",
        )  # fmt: skip
        try:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), 30)
            run_id = line.decode().removeprefix("run id: ").strip()
            answer = await operator.call("train-demo", run_id, "set_lr", {"value": 0.01})
            assert answer == {"old": 0.1, "new": 0.01}
            with pytest.raises(sdk.ActionFailedError, match="out of range"):
                await operator.call("train-demo", run_id, "set_lr", {"value": 50})
            assert await asyncio.wait_for(process.wait(), 60) == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        state = (await operator.workspaces("train-demo"))[0]
        assert state.progress["epochs"].current == 2
        rates = [
            e.payload.value  # type: ignore[union-attr]
            async for e in operator.history("train-demo", after=0, kinds=["scalar"])
            if e.series is None and getattr(e.payload, "name", "") == "lr"
        ]
        assert rates[0] == 0.1
        assert rates[-1] == 0.01
