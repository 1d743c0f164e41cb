"""Operator commands of ``pierhead``: ls, tail, catch, release, mutex break, delete, call.

Each one checks its arguments against the wire schema before connecting (a usage error, exit
2), connects once (no retry loop: a script wants an answer), does one thing and returns an exit
code: 0 done, 1 refused by the broker, 3 broker unreachable. ``tail`` is the exception: while
following it reconnects like ``watch``, and resumes where it was.
"""

from __future__ import annotations

import argparse
import datetime
import fnmatch
import json
import re
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec

import schema
from sdk import BrokerRefusedError, Delivery, Missed, Watcher

from ._console import follow_lines
from ._console_view import describe_call, describe_semaphores
from ._exit import EXIT_OK
from ._reach import connected_watcher

CLIENT = "pierhead-cli"
HISTORY_PAGE_MAX = 1000

_JSON = msgspec.json.Encoder()


class UsageError(Exception):
    """An argument the broker would reject: reported as a usage error before connecting."""


_ARGUMENTS = {
    "workspace": "workspace",
    "pattern": "pattern",
    "reason": "--reason",
    "run_id": "run id",
    "action": "action",
    "timeout_s": "--timeout",
    "args": "KEY=VALUE arguments",
    "limit": "--lines",
}
"""Frame fields by the name of the command-line argument they come from."""
_AT_FIELD = re.compile(r" - at `\$\.([A-Za-z_]+)[^`]*`$")


Frame = TypeVar("Frame", bound=msgspec.Struct)


def checked(frame_type: type[Frame], **fields: Any) -> Frame:
    """The frame a command would send, checked by the schema's own rules (the broker's).

    Raises UsageError naming the argument at fault, so nothing malformed is ever sent.
    """
    tag = frame_type.__struct_config__.tag
    try:
        return msgspec.convert({"type": tag, "id": 0, **fields}, frame_type)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = _AT_FIELD.search(message)
        if match is None:
            raise UsageError(message) from None
        field = match.group(1)
        value = fields.get(field)
        shown = repr(value)
        if isinstance(value, str) and len(shown) > 40:
            shown = f"({len(value):,} characters)"
        reason = message[: match.start()]
        raise UsageError(f"invalid {_ARGUMENTS.get(field, field)} {shown}: {reason}") from None


def add_operator_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    def command(
        parent: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str
    ) -> argparse.ArgumentParser:
        parser = parent.add_parser(name, parents=[common], help=summary)
        parser.set_defaults(parser=parser)
        return parser

    ls = command(commands, "ls", "list workspaces")
    ls.add_argument("pattern", nargs="?", default="*", help="glob over names (default: *)")
    ls.add_argument("--json", action="store_true", help="one JSON object per workspace")
    ls.set_defaults(run=run_ls)

    stats = command(commands, "stats", "the broker's counters (with several nodes, every node's)")
    stats.add_argument(
        "pattern", nargs="?", default="*", help="glob over counter names (e.g. 'notify.*')"
    )
    stats.add_argument("--json", action="store_true", help="one JSON object")
    stats.set_defaults(run=run_stats)

    tail = command(commands, "tail", "follow one workspace's events")
    tail.add_argument("workspace")
    tail.add_argument(
        "-n", "--lines", type=int, default=20, help="history lines first (default 20)"
    )
    tail.add_argument(
        "--no-follow",
        action="store_true",
        help="print the history and stop (following waits for a workspace that does not exist"
        " yet, and goes on across broker restarts)",
    )
    tail.add_argument("--json", action="store_true", help="NDJSON events instead of text")
    tail.set_defaults(run=run_tail)

    catch = command(commands, "catch", "pause a workspace")
    catch.add_argument("workspace")
    catch.add_argument(
        "--reason", default=None, help="why, shown with the catch to its workers and watchers"
    )
    catch.set_defaults(
        run=lambda a: _simple(
            a, schema.Catch, lambda w: w.catch(a.workspace, a.reason), workspace=a.workspace,
            reason=a.reason,
        )
    )  # fmt: skip

    release = command(commands, "release", "resume a caught workspace")
    release.add_argument("workspace")
    release.set_defaults(
        run=lambda a: _simple(
            a, schema.Release, lambda w: w.release(a.workspace), workspace=a.workspace
        )
    )

    mutex = commands.add_parser("mutex", help="the workspace mutex")
    mutex_commands = mutex.add_subparsers(dest="mutex_command", metavar="COMMAND", required=True)
    breaking = command(mutex_commands, "break", "take the mutex from its holder (admin)")
    breaking.add_argument("workspace")
    breaking.set_defaults(
        run=lambda a: _simple(
            a, schema.MutexBreak, lambda w: w.break_mutex(a.workspace), workspace=a.workspace
        )
    )

    delete = command(commands, "delete", "delete a workspace (admin)")
    delete.add_argument("workspace")
    delete.add_argument("--force", action="store_true", help="even with workers connected")
    delete.set_defaults(
        run=lambda a: _simple(
            a,
            schema.DeleteWorkspace,
            lambda w: w.delete_workspace(a.workspace, force=a.force),
            workspace=a.workspace,
        )
    )

    call = command(commands, "call", "call an action a worker offers")
    call.add_argument("workspace")
    call.add_argument("run_id")
    call.add_argument("action")
    call.add_argument(
        "args",
        nargs="*",
        type=key_value,
        metavar="KEY=VALUE",
        help="values are JSON, else text",
    )
    call.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    call.set_defaults(run=run_call)


def key_value(pair: str) -> tuple[str, Any]:
    """``key=value``; a value that parses as JSON is taken as JSON (1, true, [..])."""
    key, separator, value = pair.partition("=")
    if not separator or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {pair!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


async def _simple(
    args: argparse.Namespace,
    frame_type: type[msgspec.Struct],
    action: Callable[[Watcher], Awaitable[None]],
    **fields: Any,
) -> int:
    checked(frame_type, **fields)
    async with connected_watcher(args.url, args.token, client=CLIENT) as watcher:
        await action(watcher)
    print("ok")
    return EXIT_OK


async def run_ls(args: argparse.Namespace) -> int:
    checked(schema.ListWorkspaces, pattern=args.pattern)
    async with connected_watcher(args.url, args.token, client=CLIENT) as watcher:
        states = await watcher.workspaces(args.pattern)
    if args.json:
        for state in states:
            print(_JSON.encode(state).decode())
        return EXIT_OK
    now = datetime.datetime.now(datetime.UTC)
    rows = [("WORKSPACE", "STATE", "WORKERS", "MUTEX", "UPDATED", "LAST EVENT")]
    for state in states:
        connected = sum(worker.connected for worker in state.workers)
        semaphores = state.semaphores
        mutex = f"{semaphores.holder} (fence {semaphores.fence})" if semaphores.has_mutex else "-"
        last = state.last_event
        rows.append(
            (
                state.name,
                lane_of(state),
                f"{connected}/{len(state.workers)}",
                mutex,
                age(state.updated, now),
                f"[{last.severity}] {last.message}" if last else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]).rstrip())
    return EXIT_OK


async def run_stats(args: argparse.Namespace) -> int:
    async with connected_watcher(args.url, args.token, client=CLIENT) as watcher:
        report = await watcher.stats()
    counters = {
        name: value
        for name, value in sorted(report.counters.items())
        if fnmatch.fnmatchcase(name, args.pattern)
    }
    if args.json:
        shown = {"server": report.server, "uptime_s": report.uptime_s, "counters": counters}
        print(_JSON.encode(shown).decode())
        return EXIT_OK
    print(f"{report.server}, up {report.uptime_s:,.0f} s")
    width = max((len(name) for name in counters), default=0)
    for name, value in counters.items():
        shown_value = f"{value:,}" if isinstance(value, int) else f"{value:,.3f}"
        print(f"{name.ljust(width)}  {shown_value}")
    return EXIT_OK


def lane_of(state: schema.WorkspaceState) -> str:
    """boardwalkd's lanes: caught, active (a worker connected), idle."""
    if state.semaphores.caught:
        return "caught"
    return "active" if any(worker.connected for worker in state.workers) else "idle"


def age(moment: datetime.datetime | None, now: datetime.datetime) -> str:
    if moment is None:
        return "-"
    seconds = max(0, int((now - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


class EventLines:
    """One line per event for a human: time, offset, kind (or severity), what happened.

    A semaphores change is told by what it changed (caught, released, mutex granted to whom),
    so the lines remember the semaphores of the workspace as of the latest change they told.
    """

    def __init__(self, *, as_json: bool) -> None:
        self.as_json = as_json
        self.semaphores = schema.WorkspaceSemaphores()
        """The semaphores before the next event: what a change is told from."""

    def describe(self, event: schema.EventMsg) -> str:
        payload = event.payload
        time = event.received_time.strftime("%H:%M:%S")
        match payload:
            case schema.WorkspaceEvent(message=message, severity=severity):
                text = f"{severity:<8} {message}"
            case schema.LogRecord(message=message, level=level):
                text = f"log:{level:<4} {message}"
            case schema.Scalar(name=name, value=value, step=step):
                text = f"scalar   {name}={value:g}" + (
                    f" (step {step})" if step is not None else ""
                )
            case schema.Progress(name=name, current=current, total=total):
                text = f"progress {name} {current:g}" + (f"/{total:g}" if total is not None else "")
            case schema.Status(key=key, value=value):
                text = f"status   {key}={value}"
            case schema.SemaphoresChange():
                after = schema.semaphores_of(payload)
                change, _ = describe_semaphores(self.semaphores, after)
                self.semaphores = after
                text = f"semaphores {change}"
            case schema.Presence(run_id=run_id, state=presence):
                text = f"presence {run_id} {presence}"
            case schema.CallRecord():
                text = describe_call(payload)[0]
            case _:
                text = f"{payload.__struct_config__.tag:<8} {_JSON.encode(payload).decode()}"
        origin = f" [{event.run_id}]" if event.run_id else ""
        return f"{time} #{event.offset:<6} {text}{origin}"

    def deliver(self, item: Delivery) -> None:
        if isinstance(item, Missed):
            line = f"-- events {item.from_offset} to {item.to_offset} are gone --"
        elif self.as_json:
            line = _JSON.encode(item).decode()
        else:
            line = self.describe(item)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


async def run_tail(args: argparse.Namespace) -> int:
    if args.lines < 0:
        raise UsageError(f"invalid --lines {args.lines}: 0 or more")
    page_size = min(max(args.lines, 1), HISTORY_PAGE_MAX)
    checked(schema.HistoryQuery, workspace=args.workspace, limit=page_size)
    lines = EventLines(as_json=args.json)
    async with connected_watcher(args.url, args.token, client=CLIENT) as watcher:
        state = next(iter(await watcher.workspaces(args.workspace)), None)
        history: list[schema.EventMsg] = []
        if state is not None or args.no_follow:
            try:
                history = await _recent(watcher, args.workspace, args.lines, page_size)
            except BrokerRefusedError as exc:
                # Deleted meanwhile: following waits for it to come back.
                if args.no_follow or exc.code is not schema.ErrorCode.NOT_FOUND:
                    raise
                state = None
        lines.semaphores = await _semaphores_before(watcher, args.workspace, history, state)
        for event in history:
            lines.deliver(event)
        if args.no_follow:
            return EXIT_OK
    since: schema.StartPosition | dict[str, schema.Cursor] = "earliest"
    if state is not None and history:
        since = {args.workspace: schema.Cursor(epoch=state.epoch, offset=history[-1].offset)}
    elif state is not None and args.lines == 0:
        since = "latest"
    code, message = await follow_lines(
        args.url, args.token, args.workspace, since, lines.deliver, client=CLIENT
    )
    if message:
        print(message, file=sys.stderr)
    return code


async def _recent(
    watcher: Watcher, workspace: str, count: int, page_size: int
) -> list[schema.EventMsg]:
    """The newest ``count`` events of ``workspace``, oldest first."""
    events: list[schema.EventMsg] = []
    if count == 0:
        return events
    async for event in watcher.history(workspace, page_size=page_size):
        events.append(event)
        if len(events) >= count:
            break
    events.reverse()
    return events


async def _semaphores_before(
    watcher: Watcher,
    workspace: str,
    history: list[schema.EventMsg],
    state: schema.WorkspaceState | None,
) -> schema.WorkspaceSemaphores:
    """The semaphores just before the first event the tail shows."""
    if not history:
        return state.semaphores if state is not None else schema.WorkspaceSemaphores()
    earlier = watcher.history(
        workspace, before=history[0].offset, page_size=1, kinds=["semaphores"]
    )
    async for event in earlier:
        assert isinstance(event.payload, schema.SemaphoresChange)
        return schema.semaphores_of(event.payload)
    return schema.WorkspaceSemaphores()


async def run_call(args: argparse.Namespace) -> int:
    arguments = dict(args.args)
    checked(
        schema.ActionCall,
        workspace=args.workspace,
        run_id=args.run_id,
        action=args.action,
        args=arguments,
        timeout_s=args.timeout,
    )
    async with connected_watcher(args.url, args.token, client=CLIENT) as watcher:
        result = await call_action(watcher, args, arguments)
    print(json.dumps(result, indent=None))
    return EXIT_OK


async def call_action(watcher: Watcher, args: argparse.Namespace, arguments: dict[str, Any]) -> Any:
    """The one place the command calls ``Watcher.call``: its signature decides how the
    action's own arguments travel beside the call's timeout."""
    return await watcher.call(
        args.workspace, args.run_id, args.action, arguments, timeout=args.timeout
    )
