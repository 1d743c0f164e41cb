"""The soak's steady load: paced SDK workers publishing a mix of kinds, and SDK watchers
draining their subscriptions, each counting what it saw so that nothing can go missing unseen.

A worker publishes at a constant rate by catching up with the clock: on every tick it
publishes as many events as are due since it started, so a late tick does not lower the rate
and the total after ``t`` seconds is ``rate * t`` within one event.
"""

from __future__ import annotations

import asyncio
import fnmatch
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import schema
import sdk

MIX: tuple[schema.PayloadKind, ...] = (
    "scalar",
    "log",
    "scalar",
    "progress",
    "scalar",
    "log",
    "status",
    "scalar",
    "log",
    "progress",
)
"""The kind of a worker's k-th event is ``MIX[k % len(MIX)]``: 4 scalars, 3 logs, 2 progress
updates and a status in every ten."""
SERIES = ("loss", "accuracy", "throughput")
"""Scalar names; few of them, so the folded state stays the same size, as it would for a job."""
PHASES = ("load", "train", "evaluate", "save")
TICK_S = 0.02
"""How often a worker catches up with its schedule."""


def payload(k: int) -> schema.WorkerPayload:
    """A worker's ``k``-th event (from 0): its kind from ``MIX``, its content from ``k``."""
    match MIX[k % len(MIX)]:
        case "scalar":
            return schema.Scalar(name=SERIES[k % len(SERIES)], value=k * 0.5, step=k)
        case "log":
            return schema.LogRecord(
                message=f"step {k}: batch done, {k % 977} samples skipped", logger="soak"
            )
        case "progress":
            return schema.Progress(name="epoch", current=float(k % 1000), total=1000.0)
        case _:
            return schema.Status(key="phase", value=PHASES[k // len(MIX) % len(PHASES)])


@dataclass(slots=True)
class WorkerRun:
    workspace: str
    run_id: str
    rate: float
    """Events per second."""
    published: Counter[str] = field(default_factory=Counter)
    """Events queued, by kind."""

    @property
    def total(self) -> int:
        return sum(self.published.values())


async def publish_paced(run: WorkerRun, worker: sdk.Worker, stop: asyncio.Event) -> None:
    """Publish ``run.rate`` events a second until ``stop`` is set."""
    started = time.monotonic()
    k = 0
    while not stop.is_set():
        due = int(run.rate * (time.monotonic() - started))
        while k < due:
            item = payload(k)
            await worker.publish(item)
            run.published[item.__struct_config__.tag] += 1  # type: ignore[index]
            k += 1
        # A pacing tick: the schedule, not a wait for something to happen.
        await asyncio.sleep(TICK_S)


@dataclass(slots=True)
class WatcherTally:
    pattern: str
    kinds: list[schema.PayloadKind] | None
    received: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Worker events received, by (workspace, kind)."""
    missed: list[sdk.Missed] = field(default_factory=list)
    out_of_order: int = 0
    """Events at or below an offset already received in their workspace."""
    last_offsets: dict[str, int] = field(default_factory=dict)
    subscription: sdk.Subscription | None = None

    @property
    def total(self) -> int:
        return sum(self.received.values())

    def expected(self, runs: Sequence[WorkerRun]) -> Counter[tuple[str, str]]:
        """Worker events this watcher must receive, by (workspace, kind)."""
        wanted: Counter[tuple[str, str]] = Counter()
        for run in runs:
            if not fnmatch.fnmatchcase(run.workspace, self.pattern):
                continue
            for kind, count in run.published.items():
                if self.kinds is None or kind in self.kinds:
                    wanted[run.workspace, kind] += count
        return wanted

    def shortfall(self, runs: Sequence[WorkerRun]) -> dict[tuple[str, str], tuple[int, int]]:
        """(received, expected) wherever they differ."""
        wanted = self.expected(runs)
        keys = set(wanted) | set(self.received)
        return {
            key: (self.received[key], wanted[key])
            for key in sorted(keys)
            if self.received[key] != wanted[key]
        }

    def problems(self, runs: Sequence[WorkerRun]) -> list[str]:
        """What went wrong for this watcher; empty when it received exactly what was queued."""
        found: list[str] = []
        if self.missed:
            found.append(f"{len(self.missed)} missed notices (retention overtook it)")
        if self.out_of_order:
            found.append(f"{self.out_of_order} events out of order or twice")
        if self.subscription is not None and not self.subscription.recovered:
            found.append("the subscription did not recover exactly")
        differ = self.shortfall(runs)
        if differ:
            listed = ", ".join(
                f"{ws} {kind} {got}/{want}" for (ws, kind), (got, want) in differ.items()
            )
            found.append(f"received/queued {listed}")
        return [f"watcher {self.label}: {problem}" for problem in found]

    @property
    def label(self) -> str:
        return self.pattern if self.kinds is None else f"{self.pattern} {','.join(self.kinds)}"


async def drain(tally: WatcherTally, subscription: sdk.Subscription) -> None:
    """Read a subscription for as long as it lasts, counting what arrives."""
    async for item in subscription:
        if isinstance(item, sdk.Missed):
            tally.missed.append(item)
            continue
        if item.offset <= tally.last_offsets.get(item.workspace, 0):
            tally.out_of_order += 1
        tally.last_offsets[item.workspace] = item.offset
        if item.run_id is not None:
            kind: str = item.payload.__struct_config__.tag  # type: ignore[assignment]
            tally.received[item.workspace, kind] += 1
