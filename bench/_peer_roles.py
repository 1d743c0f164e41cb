"""What the peers' client processes share with :mod:`bench._peers`: the same commands, messages
and counting, over another protocol.

A peer's client module has a ``publish`` and a ``watch`` role and calls :func:`main` with them.
``publish`` answers ``ready``, ``warmed`` and ``result`` as :mod:`bench._peers` does, then keeps
its connection open until ``close``, so that a server still working through what it was sent is
not cut off. ``watch`` is :func:`watch` with a way to open one connection (a :class:`Feed`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from typing import Protocol

from ._peers import Commands, Follower, Params, Role, _run, emit


class Feed(Protocol):
    """One watcher connection."""

    async def next_events(self) -> tuple[int, Sequence[int | None]]:
        """Wait for the next message: its arrival (``time.time_ns``) and, for each event in it
        that the benchmark counts, its send-time stamp (None where it carries none)."""
        ...


OpenFeed = Callable[[AsyncExitStack], Awaitable[Feed]]


async def _follow(
    feed: Feed, follower: Follower, params: Params, on_warm: Callable[[], None]
) -> None:
    warm, latency = params["warm"], params["latency"]
    total = warm + params["events"]
    if warm == 0:
        follower.warmed = True
        on_warm()
    while follower.count < total:
        now, stamps = await feed.next_events()
        for stamp in stamps:
            follower.count += 1
            if latency and follower.count > warm and stamp is not None:
                follower.latencies_us.append((now - stamp) // 1000)
        if stamps:
            follower.last_ns = now
        if not follower.warmed and follower.count >= warm:
            follower.warmed = True
            on_warm()
    if follower.count != total:
        raise RuntimeError(f"received {follower.count} events, {total} were published")


async def watch(params: Params, open_feed: OpenFeed) -> None:
    """``connections`` watchers; ``ready`` once all are open, ``warmed`` once each has the
    ``warm`` events, ``result`` once each has ``warm + events``, as :mod:`bench._peers` says."""
    followers = [Follower() for _ in range(params["connections"])]
    warmed = 0
    cpu = 0.0

    def on_warm() -> None:
        nonlocal warmed, cpu
        warmed += 1
        if warmed == len(followers):
            cpu = time.process_time()
            emit("warmed")

    async with AsyncExitStack() as stack:
        feeds = await asyncio.gather(*(open_feed(stack) for _ in followers))
        emit("ready")
        async with asyncio.TaskGroup() as tasks:
            for feed, follower in zip(feeds, followers, strict=True):
                tasks.create_task(_follow(feed, follower, params, on_warm))
    emit(
        "result",
        events=sum(follower.count - params["warm"] for follower in followers),
        last_ns=max(follower.last_ns for follower in followers),
        latencies_us=[value for follower in followers for value in follower.latencies_us],
        cpu_s=time.process_time() - cpu,
    )


async def publish_steps(
    params: Params, commands: Commands, run: Callable[[int], Awaitable[int]]
) -> None:
    """The publisher's exchange: ``run(count)`` publishes and returns when it is done."""
    emit("ready")
    await commands.expect("warm")
    await run(params["warm"])
    emit("warmed")
    await commands.expect("go")
    cpu = time.process_time()
    start_ns = time.time_ns()
    end_ns = await run(params["events"])
    cpu_s = time.process_time() - cpu
    emit("result", start_ns=start_ns, end_ns=end_ns, events=params["events"], cpu_s=cpu_s)
    await commands.expect("close")


def main(roles: Mapping[str, Role], argv: Sequence[str] | None = None) -> int:
    """``python -m MODULE ROLE PARAMS`` for a module whose roles are ``roles``."""
    role_name, raw_params = sys.argv[1:3] if argv is None else argv
    try:
        asyncio.run(_run(roles[role_name], json.loads(raw_params)))
    except asyncio.CancelledError:
        return 1  # stdin closed: nobody is left to report to
    except Exception as exc:
        traceback.print_exc()
        with contextlib.suppress(BrokenPipeError):
            emit("error", message=f"{type(exc).__name__}: {exc}")
        return 1
    return 0
