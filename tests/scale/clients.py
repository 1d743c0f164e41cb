"""One client process of a scale run: ``python -m tests.scale.clients hold PARAMS``.

``PARAMS`` is a JSON object: the broker's ``url``, the layout's figures (``sessions``,
``processes``, ``workspaces``, ``watchers``), this process's number (``process``), the
timeouts of each step and a ``deadline_s`` for the whole process. The process holds its share
of the layout (``tests.scale.layout``) as real SDK clients, ``Worker`` and ``Watcher`` with
their default reconnect backoff, and talks to the run like the benchmark peers do
(``bench._procs``): one JSON line per step on stdout, one command per line on stdin.

- At start it opens every session, subscribes every watcher to its pattern and answers
  ``ready``. The sessions then stay idle.
- ``restart``: the broker is about to be killed. Answers ``armed`` at once, then ``back`` once
  every session lost its connection and was welcomed again by the new broker (seen through the
  SDK's own connection states), with the monotonic time of the last return; at the reconnect
  timeout it answers ``back`` anyway, with how many are still missing.
- ``verify``: each worker publishes one marker scalar and waits for its ack; each watcher waits
  until the marker of every run in the workspaces its pattern matches has reached it.
  Answers ``verified`` with the counts.

The process ends when its stdin closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import Final

import schema
import sdk
from bench._peer_roles import main as run_role
from bench._peers import Commands, Params, emit
from sdk import ConnectionState
from tests.scale.layout import ScaleLayout, WatcherSpec, WorkerSpec
from tests.scale.limits import raise_open_files

MARKER: Final = "scale-marker"
"""The name of the scalar each worker publishes after the restart."""
CLIENT: Final = "pierhead-scale"
OPEN_AT_ONCE: Final = 100
"""Sessions a process opens side by side while setting up."""
YOUNG_COLLECTION_THRESHOLD: Final = 10_000
"""Allocations between two collections of the youngest generation (Python's default: 700)."""


class Reconnects:
    """Which sessions lost their connection after the restart mark and came back since."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.armed = False
        self.idle_drops = 0
        """Connections lost while idle, before the restart: none is expected."""
        self.flaps = 0
        """Connections lost again after coming back from the restart."""
        self.first_drop: float | None = None
        self.returns: list[float] = []
        """When each session that came back did (monotonic: the same clock in every process)."""
        self.all_back = asyncio.Event()
        self._lost: set[int] = set()
        self._back: set[int] = set()

    def arm(self, not_connected: Sequence[int]) -> None:
        """From now on a lost connection is the restart's; one already down counts as lost."""
        self.armed = True
        self._lost.update(not_connected)

    def changed(self, session: int, state: ConnectionState) -> None:
        if state is ConnectionState.RECONNECTING:
            if not self.armed:
                self.idle_drops += 1
            elif session in self._back:
                self.flaps += 1
            else:
                self._lost.add(session)
                if self.first_drop is None:
                    self.first_drop = time.monotonic()
        elif (
            state is ConnectionState.CONNECTED
            and session in self._lost
            and session not in self._back
        ):
            self._back.add(session)
            self.returns.append(time.monotonic())
            if len(self._back) == self.total:
                self.all_back.set()


class Following:
    """One watcher's subscription, read all along; it records the markers of its runs."""

    def __init__(self, watcher: sdk.Watcher, expected: frozenset[str]) -> None:
        self.watcher = watcher
        self.expected = expected
        self.seen: set[str] = set()
        self.events = 0
        self.missed = 0
        self.complete = asyncio.Event()
        if not expected:
            self.complete.set()

    async def read(self, subscription: sdk.Subscription) -> None:
        async for delivery in subscription:
            if isinstance(delivery, sdk.Missed):
                self.missed += 1
                continue
            self.events += 1
            payload = delivery.payload
            if (
                isinstance(payload, schema.Scalar)
                and payload.name == MARKER
                and delivery.run_id in self.expected
            ):
                self.seen.add(delivery.run_id)
                if len(self.seen) == len(self.expected):
                    self.complete.set()


async def _follow(
    session: int, changes: AsyncIterator[ConnectionState], reconnects: Reconnects
) -> None:
    async for state in changes:
        reconnects.changed(session, state)


async def _acked(worker: sdk.Worker, timeout: float) -> bool:
    ticket = await worker.scalar(MARKER, 1.0)
    try:
        await worker.wait_acked(ticket, timeout=timeout)
    except (TimeoutError, sdk.ClosedError):
        return False
    return True


def _state(client: sdk.Worker | sdk.Watcher) -> ConnectionState:
    return client.state if isinstance(client, sdk.Worker) else client.connection_state


def _connected(client: sdk.Worker | sdk.Watcher) -> bool:
    return _state(client) is ConnectionState.CONNECTED


class HeldSessions:
    """This process's share of the layout, as SDK clients."""

    def __init__(self, url: str, layout: ScaleLayout, process: int) -> None:
        self.clients: list[sdk.Worker | sdk.Watcher] = []
        self.workers: list[sdk.Worker] = []
        self.followings: list[tuple[str, Following]] = []
        for spec in layout.held_by(process):
            if isinstance(spec, WorkerSpec):
                worker = sdk.Worker(
                    url, spec.workspace, run_id=spec.run_id, client=CLIENT, close_timeout_s=1.0
                )
                self.workers.append(worker)
                self.clients.append(worker)
            else:
                assert isinstance(spec, WatcherSpec)
                watcher = sdk.Watcher(url, client=CLIENT)
                expected = layout.runs_followed(spec.pattern)
                self.followings.append((spec.pattern, Following(watcher, expected)))
                self.clients.append(watcher)
        self.reconnects = Reconnects(len(self.clients))
        self._tasks: list[asyncio.Task[None]] = []

    async def open(self, timeout: float) -> None:
        """Connect every session, subscribe every watcher, then follow their states."""
        subscribing = [
            asyncio.ensure_future(following.watcher.subscribe(pattern))
            for pattern, following in self.followings
        ]
        try:
            async with asyncio.timeout(timeout):
                # A few at a time: the setup is not what is measured, and thousands of
                # handshakes at once from every process only slow it down.
                for first in range(0, len(self.clients), OPEN_AT_ONCE):
                    chunk = self.clients[first : first + OPEN_AT_ONCE]
                    for client in chunk:
                        await client.start()
                    await asyncio.gather(*(client.connected() for client in chunk))
                subscriptions = await asyncio.gather(*subscribing)
        except TimeoutError:
            states = Counter(_state(client).value for client in self.clients)
            subscribed = sum(1 for future in subscribing if future.done())
            raise RuntimeError(
                f"not open after {timeout:g} s: sessions {dict(states)}, "
                f"{subscribed} of {len(subscribing)} watchers subscribed"
            ) from None
        for (_, following), subscription in zip(self.followings, subscriptions, strict=True):
            self._tasks.append(asyncio.create_task(following.read(subscription)))
        for i, client in enumerate(self.clients):
            self._tasks.append(
                asyncio.create_task(_follow(i, client.state_changes(), self.reconnects))
            )

    async def come_back(self, timeout: float) -> None:
        """Arm the reconnect count, then wait until all came back or ``timeout`` passed."""
        self.reconnects.arm([i for i, client in enumerate(self.clients) if not _connected(client)])
        emit("armed")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.reconnects.all_back.wait()

    async def verify(self, timeout: float) -> dict[str, int]:
        """One acked marker per worker, every expected marker at every watcher: the counts."""
        acks = [asyncio.ensure_future(_acked(worker, timeout)) for worker in self.workers]
        arrivals = [asyncio.ensure_future(f.complete.wait()) for _, f in self.followings]
        if acks or arrivals:
            await asyncio.wait([*acks, *arrivals], timeout=timeout)
        followings = [following for _, following in self.followings]
        counts = {
            "workers": len(self.workers),
            "acked": sum(1 for ack in acks if ack.done() and ack.result()),
            "watchers": len(followings),
            "complete": sum(1 for following in followings if following.complete.is_set()),
            "watcher_events": sum(following.events for following in followings),
            "missed": sum(following.missed for following in followings),
            "flaps": self.reconnects.flaps,
            "connected": sum(1 for client in self.clients if _connected(client)),
        }
        for waiting in [*acks, *arrivals]:
            waiting.cancel()
        await asyncio.gather(*acks, *arrivals, return_exceptions=True)
        return counts

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await asyncio.gather(*(c.close() for c in self.clients), return_exceptions=True)


async def hold(params: Params, commands: Commands) -> None:
    layout = ScaleLayout(
        sessions=params["sessions"],
        processes=params["processes"],
        workspaces=params["workspaces"],
        watchers=params["watchers"],
    )
    sessions = HeldSessions(params["url"], layout, params["process"])
    raise_open_files(len(sessions.clients))
    try:
        started = time.monotonic()
        await sessions.open(params["open_timeout_s"])
        emit("ready", sessions=len(sessions.clients), opened_s=time.monotonic() - started)

        await commands.expect("restart")
        await sessions.come_back(params["reconnect_timeout_s"])
        reconnects = sessions.reconnects
        emit(
            "back",
            sessions=reconnects.total,
            returns=reconnects.returns,
            first_drop=reconnects.first_drop,
            idle_drops=reconnects.idle_drops,
        )

        await commands.expect("verify")
        emit("verified", **await sessions.verify(params["verify_timeout_s"]))
        await commands.expect("stop")
    finally:
        await sessions.close()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tests.scale.clients hold PARAMS``."""
    # This process stands in for thousands of clients that would each hold one session in a
    # small heap of their own. With the default thresholds the collector would walk all of
    # their sessions every few hundred allocations and stall every one of them at once.
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD)
    return run_role({"hold": hold}, argv)


if __name__ == "__main__":
    sys.exit(main())
