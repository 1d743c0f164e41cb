"""Action arguments are converted to the parameters' annotations; a mismatch is a bad call."""

from __future__ import annotations

import asyncio
import pathlib
from typing import Any

import msgspec
import pytest

import schema
import sdk
from broker.testing import running_broker
from sdk._actions import ActionRegistry

GUARD_S = 20


class Window(msgspec.Struct):
    start: int
    end: int


@pytest.mark.asyncio
async def test_arguments_are_converted_and_a_mismatch_is_refused_without_running() -> None:
    runs: list[tuple[str, object]] = []
    async with running_broker() as broker:
        worker = sdk.Worker(broker.url, "train", run_id="r")

        @worker.action()
        def set_lr(value: float) -> float:
            runs.append(("set_lr", value))
            return value

        @worker.action()
        async def pick(hosts: list[str], window: Window, dry_run: bool = False) -> str:
            runs.append(("pick", (hosts, window, dry_run)))
            return f"{len(hosts)} {window.end - window.start} {dry_run}"

        @worker.action()
        def untyped(anything, count: int = 1):  # type: ignore[no-untyped-def]
            runs.append(("untyped", (anything, count)))
            return count

        async with worker, sdk.Watcher(broker.url) as ops:
            await worker.connected()
            async with asyncio.timeout(GUARD_S):
                with pytest.raises(sdk.BadCallError, match=r"`value`.*float.*str") as bad:
                    await ops.call("train", "r", "set_lr", {"value": "abc"})
                assert isinstance(bad.value, sdk.ActionFailedError)
                with pytest.raises(sdk.BadCallError, match="`hosts`"):
                    await ops.call("train", "r", "pick", {"hosts": "db-1", "window": {}})
                with pytest.raises(sdk.BadCallError, match="`window`"):
                    await ops.call("train", "r", "pick", {"hosts": ["a"], "window": {"start": "x"}})
                assert runs == []
                # JSON values of the right type pass; an int is a float; numbers and booleans
                # spelled as text (what a command line sends) are taken as such.
                assert await ops.call("train", "r", "set_lr", {"value": 1}) == 1.0
                assert runs == [("set_lr", 1.0)]
                assert type(runs[0][1]) is float
                assert await ops.call("train", "r", "set_lr", {"value": "0.5"}) == 0.5
                answer = await ops.call(
                    "train",
                    "r",
                    "pick",
                    {"hosts": ["a", "b"], "window": {"start": 2, "end": 7}, "dry_run": "true"},
                )
                assert answer == "2 5 True"
                assert await ops.call("train", "r", "untyped", {"anything": {"k": [1]}}) == 1
                assert runs[2:] == [
                    ("pick", (["a", "b"], Window(2, 7), True)),
                    ("untyped", ({"k": [1]}, 1)),
                ]


@pytest.mark.asyncio
async def test_no_argument_name_is_taken_by_call_itself() -> None:
    async with running_broker() as broker:
        worker = sdk.Worker(broker.url, "deploy", run_id="r")

        @worker.action()
        def wait_for(timeout: float, action: str, workspace: str) -> list[Any]:
            return [timeout, action, workspace]

        async with worker, sdk.Watcher(broker.url) as ops:
            await worker.connected()
            arguments = {"timeout": 90, "action": "restart", "workspace": "elsewhere"}
            answer = await asyncio.wait_for(
                ops.call("deploy", "r", "wait_for", arguments, timeout=5), GUARD_S
            )
            assert answer == [90.0, "restart", "elsewhere"]


def test_an_annotation_json_cannot_reach_is_refused_at_registration() -> None:
    def read(path: pathlib.Path) -> str:
        return str(path)

    with pytest.raises(TypeError, match="'path' is annotated"):
        ActionRegistry().register(read)


@pytest.mark.asyncio
async def test_the_registry_answers_a_bad_call_with_its_own_error_type() -> None:
    registry = ActionRegistry()
    registry.register(lambda value: value, name="echo")

    def half(value: float) -> float:
        return value / 2

    registry.register(half)
    request = schema.ActionRequest(call=1, name="half", args={"value": [1]})
    result = await registry.run(request)
    assert not result.ok
    assert result.error is not None
    assert result.error.type == "pierhead.bad_call"
    assert "bad arguments for half" in result.error.message
    assert (await registry.run(schema.ActionRequest(call=2, name="half", args={"value": 3}))) == (
        schema.ActionResult(call=2, ok=True, result=1.5)
    )
