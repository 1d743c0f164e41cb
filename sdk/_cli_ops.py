"""Operator commands of ``pierhead``: ls, tail, catch, release, mutex break, delete, call.

Each one connects once (no retry loop: a script wants an answer), does one thing and returns an
exit code: 0 done, 1 refused by the broker, 3 broker unreachable. Usage errors (2) are
argparse's.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import msgspec

import schema

from ._errors import (
    AuthenticationError,
    BrokerRefusedError,
    ClosedError,
    ForbiddenError,
    PierheadError,
)
from ._watcher import Missed, Watcher

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_UNREACHABLE = 3
CONNECT_TIMEOUT_S = 5.0

_JSON = msgspec.json.Encoder()


class UnreachableError(PierheadError):
    """The broker could not be reached at all."""


@asynccontextmanager
async def connected_watcher(url: str, token: str | None) -> AsyncIterator[Watcher]:
    """A watcher after one successful handshake, or UnreachableError."""
    watcher = Watcher(url, token=token, client="pierhead-cli", reconnect=False)
    await watcher.start()
    try:
        try:
            await asyncio.wait_for(watcher.connected(), CONNECT_TIMEOUT_S)
        except (ClosedError, TimeoutError) as exc:
            cause = exc.__cause__ or exc
            if isinstance(cause, (AuthenticationError, ForbiddenError, BrokerRefusedError)):
                raise cause from None  # reached, and refused: exit 1 with its reason
            raise UnreachableError(f"cannot reach the broker at {url}: {cause}") from None
        yield watcher
    finally:
        await watcher.close()


def add_operator_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    ls = commands.add_parser("ls", parents=[common], help="list workspaces")
    ls.add_argument("pattern", nargs="?", default="*", help="glob over names (default: *)")
    ls.add_argument("--json", action="store_true", help="one JSON object per workspace")
    ls.set_defaults(run=run_ls)

    tail = commands.add_parser("tail", parents=[common], help="follow one workspace's events")
    tail.add_argument("workspace")
    tail.add_argument(
        "-n", "--lines", type=int, default=20, help="history lines first (default 20)"
    )
    tail.add_argument("--no-follow", action="store_true", help="print the history and stop")
    tail.add_argument("--json", action="store_true", help="NDJSON events instead of text")
    tail.set_defaults(run=run_tail)

    catch = commands.add_parser("catch", parents=[common], help="pause a workspace")
    catch.add_argument("workspace")
    catch.add_argument("--reason", default=None)
    catch.set_defaults(run=lambda a: _simple(a, lambda w: w.catch(a.workspace, a.reason)))

    release = commands.add_parser("release", parents=[common], help="resume a caught workspace")
    release.add_argument("workspace")
    release.set_defaults(run=lambda a: _simple(a, lambda w: w.release(a.workspace)))

    mutex = commands.add_parser("mutex", help="the workspace mutex")
    mutex_commands = mutex.add_subparsers(dest="mutex_command", metavar="COMMAND", required=True)
    breaking = mutex_commands.add_parser(
        "break", parents=[common], help="take the mutex from its holder (admin)"
    )
    breaking.add_argument("workspace")
    breaking.set_defaults(run=lambda a: _simple(a, lambda w: w.break_mutex(a.workspace)))

    delete = commands.add_parser("delete", parents=[common], help="delete a workspace (admin)")
    delete.add_argument("workspace")
    delete.add_argument("--force", action="store_true", help="even with workers connected")
    delete.set_defaults(
        run=lambda a: _simple(a, lambda w: w.delete_workspace(a.workspace, force=a.force))
    )

    call = commands.add_parser("call", parents=[common], help="call an action a worker offers")
    call.add_argument("workspace")
    call.add_argument("run_id")
    call.add_argument("action")
    call.add_argument("args", nargs="*", metavar="KEY=VALUE", help="values are JSON, else text")
    call.add_argument("--timeout", type=float, default=30.0)
    call.set_defaults(run=run_call)


def parse_arguments(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; a value that parses as JSON is taken as JSON (1, true, [..])."""
    arguments: dict[str, Any] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {pair!r}")
        try:
            arguments[key] = json.loads(value)
        except json.JSONDecodeError:
            arguments[key] = value
    return arguments


async def _simple(args: argparse.Namespace, action: Callable[[Watcher], Awaitable[None]]) -> int:
    async with connected_watcher(args.url, args.token) as watcher:
        await action(watcher)
    print("ok")
    return EXIT_OK


async def run_ls(args: argparse.Namespace) -> int:
    async with connected_watcher(args.url, args.token) as watcher:
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


def describe(event: schema.EventMsg) -> str:
    """One line for a human: time, kind (or severity), what happened."""
    payload = event.payload
    time = event.received_time.strftime("%H:%M:%S")
    match payload:
        case schema.WorkspaceEvent(message=message, severity=severity):
            text = f"{severity:<8} {message}"
        case schema.LogRecord(message=message, level=level):
            text = f"log:{level:<4} {message}"
        case schema.Scalar(name=name, value=value, step=step):
            text = f"scalar   {name}={value:g}" + (f" (step {step})" if step is not None else "")
        case schema.Progress(name=name, current=current, total=total):
            text = f"progress {name} {current:g}" + (f"/{total:g}" if total is not None else "")
        case schema.Status(key=key, value=value):
            text = f"status   {key}={value}"
        case schema.SemaphoresChange():
            caught = "caught" if payload.caught else "released"
            mutex = f", mutex {payload.holder} (fence {payload.fence})" if payload.has_mutex else ""
            text = f"semaphores {caught}{mutex}" + (f" by {payload.by}" if payload.by else "")
        case schema.Presence(run_id=run_id, state=presence):
            text = f"presence {run_id} {presence}"
        case _:
            text = f"{payload.__struct_config__.tag:<8} {_JSON.encode(payload).decode()}"
    origin = f" [{event.run_id}]" if event.run_id else ""
    return f"{time} #{event.offset:<6} {text}{origin}"


async def run_tail(args: argparse.Namespace) -> int:
    async with connected_watcher(args.url, args.token) as watcher:
        history: list[schema.EventMsg] = []
        if args.lines > 0:
            async for event in watcher.history(args.workspace, page_size=min(args.lines, 1000)):
                history.append(event)
                if len(history) >= args.lines:
                    break
        history.reverse()
        for event in history:
            _print_event(event, args.json)
        if args.no_follow:
            return EXIT_OK
        last = history[-1].offset if history else None
        epoch = next((s.epoch for s in await watcher.workspaces(args.workspace)), None)
        since: Any = "latest"
        if last is not None and epoch is not None:
            since = {args.workspace: schema.Cursor(epoch=epoch, offset=last)}
        subscription = await watcher.subscribe(args.workspace, since=since)
        async for item in subscription:
            if isinstance(item, Missed):
                print(f"-- events {item.from_offset} to {item.to_offset} are gone --", flush=True)
            else:
                _print_event(item, args.json)
    return EXIT_OK


def _print_event(event: schema.EventMsg, as_json: bool) -> None:
    line = _JSON.encode(event).decode() if as_json else describe(event)
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def run_call(args: argparse.Namespace) -> int:
    arguments = parse_arguments(args.args)
    async with connected_watcher(args.url, args.token) as watcher:
        result = await watcher.call(
            args.workspace, args.run_id, args.action, arguments, timeout=args.timeout
        )
    print(json.dumps(result, indent=None))
    return EXIT_OK
