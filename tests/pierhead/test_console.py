"""``pierhead watch``: the view model and its text, NDJSON output against a real broker, and
the live screen under a pseudo-terminal."""

from __future__ import annotations

import asyncio
import datetime
import io
import re
import socket
import sys
from pathlib import Path

import msgspec
import pytest
from rich.console import Console

import schema
import sdk
from broker import BrokerServer
from broker._watcher_session import WatcherSession
from broker.testing import running_broker
from pierhead._cli import main
from pierhead._console import run_watch
from pierhead._console_view import Command, ConsoleModel, decode_keys, render_rich, render_text
from schema import (
    EventMsg,
    Payload,
    Presence,
    Progress,
    SemaphoresChange,
    WorkerEntry,
    WorkspaceDetails,
    WorkspaceEvent,
    WorkspaceSemaphores,
    WorkspaceState,
)
from tests.support import free_port, until
from tests.terminal import Terminal

T0 = datetime.datetime(2026, 3, 1, 12, 0, 0, tzinfo=datetime.UTC)
NOW = T0 + datetime.timedelta(seconds=42)


def worker(run_id: str, *, connected: bool = True) -> WorkerEntry:
    return WorkerEntry(run_id=run_id, connected=connected, connected_at=T0, last_seen=T0)


def state(name: str, *, workers: tuple[WorkerEntry, ...] = (), **fields: object) -> WorkspaceState:
    base = WorkspaceState(name=name, epoch=1, created=T0, updated=T0, workers=workers)
    return msgspec.structs.replace(base, **fields)


def event(workspace: str, offset: int, payload: Payload, *, seconds: int = 0) -> EventMsg:
    time = T0 + datetime.timedelta(seconds=seconds)
    return EventMsg(
        workspace=workspace, offset=offset, create_time=time, received_time=time, payload=payload
    )


def model_of(*states: WorkspaceState) -> ConsoleModel:
    model = ConsoleModel("*")
    model.update_states({s.name: s for s in states})
    model.set_connection("connected")
    return model


def section(text: str, title: str) -> str:
    """The lines of one lane (or of the events) in a rendering, from its title to the next."""
    match = re.search(rf"^{title} \(.*?(?=^(?:ACTIVE|CAUGHT|IDLE|EVENTS) \(|\Z)", text, re.M | re.S)
    assert match is not None, text
    return match.group(0)


# The view model and its text -----------------------------------------------------------------


def three_lanes() -> ConsoleModel:
    return model_of(
        state(
            "deploy-prod",
            workers=(worker("r-1"),),
            details=WorkspaceDetails(current_host="db-4"),
            progress={"hosts": Progress(name="hosts", current=3, total=10)},
            semaphores=WorkspaceSemaphores(has_mutex=True, holder="r-1", fence=7),
            last_event=WorkspaceEvent(message="rollout started"),
        ),
        state(
            "deploy-stage",
            workers=(worker("r-2"),),
            semaphores=WorkspaceSemaphores(caught=True, by="alice", reason="disk looks full"),
            last_event=WorkspaceEvent(message="db-3 failed", severity="error"),
        ),
        state("train-old", workers=(worker("t-9", connected=False),), updated=None),
        state("train-new"),
    )


def test_workspaces_go_to_their_lanes_with_caught_reason_mutex_and_progress() -> None:
    text = render_text(three_lanes(), 160, NOW)
    active, caught, idle = (section(text, lane) for lane in ("ACTIVE", "CAUGHT", "IDLE"))
    assert "ACTIVE (1)" in active
    assert "deploy-prod" in active
    assert "r-1 fence 7" in active  # the mutex holder and its fence
    assert "db-4 hosts 3/10" in active
    assert "info: rollout started" in active
    assert "42s" in active
    assert "deploy-stage" in caught
    assert "disk looks full (by alice)" in caught
    assert "error: db-3 failed" in caught
    assert "train-new" in idle
    assert "t-9 (offline)" in idle
    assert "deploy-" not in idle
    assert text.splitlines()[0] == "pierhead watch *  [connected]  1 active, 1 caught, 2 idle"
    assert all(len(line) <= 160 for line in text.splitlines())


def test_a_caught_workspace_with_a_connected_worker_is_caught_not_active() -> None:
    model = model_of(
        state("w", workers=(worker("r"),), semaphores=WorkspaceSemaphores(caught=True, reason="x"))
    )
    text = render_text(model, 100, NOW)
    assert "w " in section(text, "CAUGHT")
    assert "ACTIVE (0)" in text


def test_host_progress_from_the_details_and_narrow_lines_are_clipped() -> None:
    details = WorkspaceDetails(progress_hosts_completed="3", progress_hosts_total="10")
    model = model_of(state("w", workers=(worker("r"),), details=details))
    assert "hosts 3/10" in render_text(model, 100, NOW)
    model = model_of(state("w" * 60, workers=(worker("r" * 60),), details=details))
    assert all(len(line) <= 50 for line in render_text(model, 50, NOW).splitlines())


def test_the_banner_shows_reconnecting() -> None:
    model = three_lanes()
    model.set_connection(sdk.ConnectionState.RECONNECTING)
    assert "[reconnecting…]" in render_text(model, 120, NOW).splitlines()[0]
    model.set_connection(sdk.ConnectionState.CONNECTED)
    assert "[connected]" in render_text(model, 120, NOW).splitlines()[0]


def test_a_filter_hides_rows_until_cleared() -> None:
    model = three_lanes()
    for key in ["/", "t", "r", "a", "i", "n"]:
        assert model.press(key) is None
    assert "filter: train_" in render_text(model, 120, NOW)
    assert "deploy-prod" in render_text(model, 120, NOW)  # not applied before Enter
    model.press("enter")
    text = render_text(model, 120, NOW)
    assert "deploy-prod" not in text
    assert "deploy-stage" not in text
    assert "train-new" in text
    assert "filter: train  (2 of 4 shown)" in text
    assert model.selected == "train-new"
    model.press("/")
    for key in "deploy-*":
        model.press(key)
    model.press("enter")
    assert model.visible() == ["deploy-prod", "deploy-stage"]
    model.press("esc")
    assert len(model.visible()) == 4


def test_keys_move_the_selection_and_ask_for_commands() -> None:
    model = three_lanes()
    # Screen order: the active lane, then caught, then idle (by name within a lane).
    assert model.visible() == ["deploy-prod", "deploy-stage", "train-new", "train-old"]
    assert model.selected == "deploy-prod"
    assert "> deploy-prod" in render_text(model, 120, NOW)
    model.press("down")
    model.press("j")
    assert model.selected == "train-new"
    model.press("up")
    assert model.press("c") == Command("catch", "deploy-stage")
    assert model.press("r") == Command("release", "deploy-stage")
    for _ in range(10):
        model.press("down")
    assert model.selected == "train-old"
    assert model.press("q") == Command("quit")
    assert ConsoleModel().press("c") is None


def test_terminal_bytes_decode_to_keys() -> None:
    assert decode_keys(b"\x1b[A\x1b[Bjk") == ["up", "down", "j", "k"]
    assert decode_keys(b"\x1bOA") == ["up"]
    assert decode_keys(b"\x1b") == ["esc"]
    assert decode_keys(b"/ab\x7f\r") == ["/", "a", "b", "backspace", "enter"]
    assert decode_keys(b"\x1b[15~q") == ["q"]


def test_deliveries_fold_into_the_lanes_and_fill_the_tail() -> None:
    model = model_of(schema.new_workspace_state("job", epoch=1, created=T0))
    assert "job" in section(render_text(model, 120, NOW), "IDLE")
    model.deliver(event("job", 1, Presence(run_id="r", state="connected", client="c"), seconds=1))
    model.deliver(event("job", 2, Progress(name="steps", current=3, total=10), seconds=2))
    model.deliver(event("job", 3, WorkspaceEvent(message="warming up"), seconds=3))
    text = render_text(model, 120, NOW)
    assert "steps 3/10" in section(text, "ACTIVE")
    assert "39s" in section(text, "ACTIVE")
    caught = SemaphoresChange(caught=True, by="bob", reason="look first")
    model.deliver(event("job", 4, caught, seconds=4))
    mutex = msgspec.structs.replace(caught, has_mutex=True, holder="r", fence=2)
    model.deliver(event("job", 5, mutex))
    model.deliver(event("job", 6, SemaphoresChange(by="bob", has_mutex=True, holder="r", fence=2)))
    model.deliver(event("job", 7, Presence(run_id="r", state="disconnected")))
    model.deliver(sdk.Missed("job", 8, 20))
    text = render_text(model, 120, NOW)
    assert "job" in section(text, "IDLE")
    assert "r (offline)" in section(text, "IDLE")
    assert [(line.text, line.severity) for line in model.tail] == [
        ("worker r connected", "info"),
        ("warming up", "info"),
        ("caught by bob: look first", "warning"),
        ("mutex granted to r (fence 2)", "info"),
        ("released by bob", "success"),
        ("worker r disconnected", "warning"),
        ("events 8 to 20 are gone (retention)", "warning"),
    ]
    events = section(text, "EVENTS")
    assert events.index("warming up") < events.index("released by bob")
    assert model.states["job"].last_offset == 7
    # Delivering the same event again changes nothing in the state.
    before = model.states["job"]
    model.deliver(event("job", 3, WorkspaceEvent(message="warming up")))
    assert model.states["job"] is before


def test_the_tail_is_bounded_oldest_first_and_follows_the_filter() -> None:
    model = model_of(state("a"), state("b"))
    for offset in range(1, 251):
        name = "a" if offset % 2 else "b"
        model.deliver(event(name, offset, WorkspaceEvent(message=f"m{offset}"), seconds=offset))
    assert len(model.tail) == 200
    assert model.tail[0].text == "m51"
    assert model.tail[-1].text == "m250"
    events = section(render_text(model, 120, NOW, tail_lines=5), "EVENTS")
    assert events.splitlines()[0] == "EVENTS (last 5 of 200)"
    assert [line.split()[-1] for line in events.splitlines()[1:]] == [
        f"m{n}" for n in range(246, 251)
    ]
    model.filter = "a"
    events = section(render_text(model, 120, NOW, tail_lines=3), "EVENTS")
    assert events.splitlines()[0] == "EVENTS (last 3 of 100)"
    assert [line.split()[-1] for line in events.splitlines()[1:]] == ["m245", "m247", "m249"]


def test_the_rich_screen_shows_the_lanes_and_the_tail() -> None:
    model = three_lanes()
    model.deliver(
        event("deploy-prod", 1, WorkspaceEvent(message="db-4 healthy", severity="success"))
    )
    console = Console(file=io.StringIO(), width=140, height=40, record=True)
    console.print(render_rich(model, NOW, console))
    text = console.export_text()
    assert "ACTIVE (1)" in text
    assert "disk looks full (by alice)" in section(text, "CAUGHT")
    assert "3/10" in text
    assert "db-4 healthy" in text
    assert "● connected" in text


# Against a real broker -----------------------------------------------------------------------


class Output(io.StringIO):
    """A stdout that wakes whoever waits for its lines."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def write(self, text: str) -> int:
        self.changed.set()
        return super().write(text)

    def events(self) -> list[EventMsg]:
        lines = [line for line in self.getvalue().splitlines() if line.startswith("{")]
        return [msgspec.json.decode(line, type=EventMsg) for line in lines]

    def messages(self) -> list[str]:
        return [e.payload.message for e in self.events() if isinstance(e.payload, WorkspaceEvent)]

    async def wait_for_messages(self, count: int, timeout: float = 10) -> list[str]:
        async with asyncio.timeout(timeout):
            while len(self.messages()) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.messages()


def subscriptions(broker: BrokerServer) -> int:
    assert broker.broker is not None
    sessions = [
        watcher for watcher in broker.broker.watchers if isinstance(watcher, WatcherSession)
    ]
    assert len(sessions) == len(broker.broker.watchers)
    return sum(len(session.subscriptions) for session in sessions)


async def stop(task: asyncio.Task[int]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.asyncio
async def test_json_prints_each_event_as_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    output = Output()
    monkeypatch.setattr(sys, "stdout", output)
    async with running_broker() as broker, sdk.Worker(broker.url, "job-1", run_id="r") as job:
        await job.connected()
        task = asyncio.create_task(run_watch(broker.url, None, "job-*", json_output=True))
        try:
            await until(lambda: subscriptions(broker) == 1)
            for n in range(5):
                await job.event(f"step {n}", "success" if n == 4 else "info")
            assert await output.wait_for_messages(5) == [f"step {n}" for n in range(5)]
        finally:
            await stop(task)
    events = [e for e in output.events() if isinstance(e.payload, WorkspaceEvent)]
    assert events[-1].payload == WorkspaceEvent(message="step 4", severity="success")
    assert {(e.workspace, e.run_id) for e in events} == {("job-1", "r")}


@pytest.mark.asyncio
async def test_json_goes_on_across_a_broker_restart_without_gaps_or_duplicates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    output = Output()
    monkeypatch.setattr(sys, "stdout", output)
    data = tmp_path / "data"
    port = free_port()
    async with running_broker(data, port=port) as broker:
        url = broker.url
        task = asyncio.create_task(run_watch(url, None, "job-*", json_output=True))
        await until(lambda: subscriptions(broker) == 1)
        async with sdk.Worker(url, "job-1", run_id="r") as job:
            for n in range(3):
                await job.post_event(f"step {n}")
        await output.wait_for_messages(3)
    try:
        async with running_broker(data, port=port) as broker:
            async with sdk.Worker(url, "job-1", run_id="r2") as job:
                for n in range(3, 6):
                    await job.post_event(f"step {n}")
            messages = await output.wait_for_messages(6)
    finally:
        await stop(task)
    assert messages == [f"step {n}" for n in range(6)]
    offsets = [e.offset for e in output.events()]
    assert offsets == sorted(set(offsets))
    assert "reconnecting" in capsys.readouterr().err


@pytest.mark.asyncio
async def test_once_prints_the_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    output = Output()
    monkeypatch.setattr(sys, "stdout", output)
    async with running_broker() as broker:
        async with (
            sdk.Worker(broker.url, "job-1", run_id="r") as job,
            sdk.Watcher(broker.url) as watcher,
        ):
            await job.progress("steps", 3, total=10)
            await job.post_event("halfway", "warning")
            async with sdk.Worker(broker.url, "job-2", run_id="q") as other:
                await other.connected()
            await watcher.catch("job-2", "hold on")
            code = await run_watch(broker.url, None, "job-*", json_output=False, once=True)
    assert code == 0
    text = output.getvalue()
    assert "steps 3/10" in section(text, "ACTIVE")
    assert "warning: halfway" in section(text, "ACTIVE")
    assert "hold on (by pierhead-sdk" in section(text, "CAUGHT")
    assert "EVENTS" not in text


@pytest.mark.asyncio
async def test_an_unreachable_broker_is_exit_code_3_and_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    url = f"ws://127.0.0.1:{port}"
    for json_output in (True, False):
        assert await run_watch(url, None, "*", json_output=json_output) == 3
        out, err = capsys.readouterr()
        assert out == ""
        reason = "connection refused (nothing listens there)"
        assert err == f"pierhead: cannot reach the broker at {url}: {reason}\n"


def test_main_reports_an_unreachable_broker(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["watch", "--url", "ws://127.0.0.1:1", "--once"]) == 3
    assert capsys.readouterr().err.startswith("pierhead: cannot reach the broker")


# The live screen in a terminal ----------------------------------------------------------------


def in_lane(frame: str, lane: str, *texts: str) -> bool:
    """Whether every text is in ``lane``'s part of the screen (up to the next lane)."""
    match = re.search(rf"{lane} \(\d+\)(.*?)(?:ACTIVE \(|CAUGHT \(|IDLE \(|events|\Z)", frame, re.S)
    return match is not None and all(text in match.group(1) for text in texts)


@pytest.mark.asyncio
async def test_the_screen_in_a_terminal_shows_the_caught_lane_releases_and_quits(
    terminals: list[Terminal],
) -> None:
    async with running_broker() as broker:
        async with sdk.Worker(broker.url, "job-1", run_id="run-1") as job:
            await job.connected()
            # As an operator would, from another terminal.
            catch = await asyncio.create_subprocess_exec(
                sys.executable, "-c", "from pierhead._cli import main; raise SystemExit(main())",
                "catch", "job-1", "--reason", "paused for inspection", "--url", broker.url,
            )  # fmt: skip
            assert await catch.wait() == 0
            watch = [sys.executable, "-m", "pierhead", "watch", "--url", broker.url, "job-*"]
            terminal = Terminal(watch)
            terminals.append(terminal)
            await terminal.wait_for(
                lambda frame: in_lane(frame, "CAUGHT", "job-1", "paused for inspection")
            )
            terminal.send(b"r")  # releases the selected workspace, the only one
            await terminal.wait_for(lambda frame: in_lane(frame, "ACTIVE", "job-1", "run-1"))
            await job.wait_released()
            terminal.send(b"q")
            assert await terminal.exit_code() == 0
    assert b"\x1b[?1049l" in terminal.output  # the alternate screen was left
