"""Every operator subcommand as a real process against a real broker: output and exit codes;
and the command's parser, built with and without the broker package."""

from __future__ import annotations

import argparse
import asyncio
import json

import pytest

import sdk
from broker.testing import running_broker
from pierhead._cli import BROKER_COMMANDS, _parser
from tests.support import PIERHEAD
from tests.support import pierhead as run_pierhead

pytestmark = pytest.mark.asyncio


async def pierhead(*args: str, url: str | None = None) -> tuple[int, str, str]:
    return await run_pierhead(*args, *(["--url", url] if url else []))


async def test_version_and_usage() -> None:
    code, out, _ = await pierhead("version")
    assert code == 0
    assert out.startswith("pierhead ")
    code, _, err = await pierhead("catch")
    assert code == 2
    assert "usage" in err


async def test_ls_catch_release_and_tail() -> None:
    async with running_broker() as broker, sdk.Worker(broker.url, "deploy-a", run_id="r") as worker:
        await worker.post_event("first step")
        code, out, _ = await pierhead("ls", url=broker.url)
        assert code == 0
        header, row = out.splitlines()
        assert header.split()[:3] == ["WORKSPACE", "STATE", "WORKERS"]
        assert row.split()[:3] == ["deploy-a", "active", "1/1"]
        assert row.endswith("[info] first step")

        code, out, _ = await pierhead("catch", "deploy-a", "--reason", "look first", url=broker.url)
        assert (code, out) == (0, "ok\n")
        assert worker.caught
        code, out, _ = await pierhead("ls", "--json", url=broker.url)
        (state,) = [json.loads(line) for line in out.splitlines()]
        assert state["semaphores"]["caught"] is True
        assert state["semaphores"]["reason"] == "look first"
        code, out, _ = await pierhead("release", "deploy-a", url=broker.url)
        assert (code, out) == (0, "ok\n")

        code, out, _ = await pierhead("tail", "deploy-a", "--no-follow", url=broker.url)
        assert code == 0
        lines = out.splitlines()
        assert any(line.endswith("info     first step [r]") for line in lines)
        assert "semaphores caught" in out
        assert "semaphores released" in out
        code, out, _ = await pierhead(
            "tail", "deploy-a", "--no-follow", "--json", "-n", "2", url=broker.url
        )
        assert [json.loads(line)["workspace"] for line in out.splitlines()] == ["deploy-a"] * 2


async def test_tail_follows_live_events() -> None:
    async with running_broker() as broker, sdk.Worker(broker.url, "live", run_id="r") as worker:
        await worker.post_event("before")
        process = await asyncio.create_subprocess_exec(
            *PIERHEAD, "tail", "live", "--url", broker.url, stdout=asyncio.subprocess.PIPE
        )
        assert process.stdout is not None
        try:
            seen = ""
            while "before" not in seen:
                seen += (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
            await worker.event("after")
            while "after" not in seen:
                seen += (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
            assert seen.count("before") == 1
        finally:
            process.terminate()
            await process.wait()


async def test_refusals_exit_1_with_the_brokers_message() -> None:
    async with running_broker() as broker, sdk.Worker(broker.url, "busy", run_id="r"):
        code, _, err = await pierhead("mutex", "break", "busy", url=broker.url)
        assert code == 1
        assert err.strip() == "pierhead: refused: not_found: the mutex is not held"
        code, _, err = await pierhead("delete", "busy", url=broker.url)
        assert code == 1
        assert "conflict" in err
        code, out, _ = await pierhead("delete", "busy", "--force", url=broker.url)
        assert (code, out) == (0, "ok\n")
        code, _, err = await pierhead("catch", "nowhere", url=broker.url)
        assert code == 1
        assert "not_found" in err


async def test_call_prints_the_result_as_json() -> None:
    async with running_broker() as broker:
        worker = sdk.Worker(broker.url, "train", run_id="r")

        @worker.action()
        def scale(value: float, factor: int = 2) -> dict[str, float]:
            return {"scaled": value * factor}

        async with worker:
            await worker.connected()
            code, out, _ = await pierhead(
                "call", "train", "r", "scale", "value=1.5", "factor=3", url=broker.url
            )
            assert (code, json.loads(out)) == (0, {"scaled": 4.5})
            code, _, err = await pierhead("call", "train", "r", "scale", "wrong=1", url=broker.url)
            assert code == 1
            assert "bad arguments for scale" in err
            code, _, err = await pierhead("call", "train", "r", "scale", "novalue", url=broker.url)
            assert code == 2


async def test_an_unreachable_broker_exits_3_with_one_line() -> None:
    async with running_broker() as broker:
        url = broker.url
    for command in (["ls"], ["catch", "w"], ["tail", "w"], ["call", "w", "r", "a"]):
        code, out, err = await pierhead(*command, url=url)
        assert code == 3, command
        assert out == ""
        assert err.startswith("pierhead: cannot reach the broker at ")
        assert len(err.strip().splitlines()) == 1
        assert "Traceback" not in err


async def test_stats_prints_the_counters_a_pattern_picks() -> None:
    async with running_broker() as broker, sdk.Worker(broker.url, "deploy-a", run_id="r") as worker:
        await worker.post_event("first step")
        await worker.flush()
        code, out, _ = await pierhead("stats", "work*", url=broker.url)
        assert code == 0
        first, *rows = out.splitlines()
        assert first.startswith("pierhead/")
        assert ", up " in first
        assert {row.split()[0]: row.split()[1] for row in rows} == {
            "worker_sessions": "1",
            "workers": "1",
            "workspaces": "1",
        }
        code, out, _ = await pierhead("stats", "--json", url=broker.url)
        report = json.loads(out)
        assert report["counters"]["events_committed"] >= 2
        assert report["uptime_s"] >= 0


async def test_the_broker_commands_are_summed_up_as_the_broker_package_does() -> None:
    # `pierhead --help` lists them without importing the broker package: its own copy of
    # their one-line help must not drift from the parsers the broker adds.
    def summaries(parser: argparse.ArgumentParser) -> dict[str, str | None]:
        (commands,) = [
            action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
        ]
        return {choice.dest: choice.help for choice in commands._choices_actions}

    with_broker = summaries(_parser(with_broker=True))
    assert {name: with_broker[name] for name in BROKER_COMMANDS} == BROKER_COMMANDS
    assert summaries(_parser(with_broker=False)) == with_broker
