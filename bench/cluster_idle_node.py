"""``cluster-idle-node``: what a node spends on a workspace it serves nothing of, per commit that
another node makes.

Every node subscribes to the commit hints of every workspace (docs/storage.md, "Following, and
what repairs a lost hint"): a node pays this for each commit anywhere in the cluster, whether or
not its clients have anything to do with the workspace. It is the part of a node's CPU that grows
with the cluster's commits rather than its own work, so it is reported beside what the writer
spends per commit, measured in the same run, and judged against it.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Final

import sdk.sync

from . import broker
from ._peer_servers import PeerMissingError
from ._report import Goal, Report, Spread, spread_cell
from ._stats import load_average, machine_note
from .broker import TICK_S, Stream
from .broker_cluster import (
    WRITER,
    Cluster,
    interleaved,
    missing_report,
    running_cluster,
    setup_note,
)

NAME: Final = "cluster-idle-node"
TITLE: Final = "what a node serving none of a workspace spends per commit on another node"
IDLE_NODE: Final = "B"
RATES: Final = (50, 200, 500)
"""Events per second, published one per frame (``TICK_S`` paces at most one frame every 2 ms):
node A commits about once per event."""
SECONDS: Final = 8.0
QUICK_SECONDS: Final = 1.0
REPEATS: Final = 3
QUICK_REPEATS: Final = 1
IDLE_VS_WRITER_GOAL: Final = 0.33
"""Most of node A's CPU per commit that node B may spend per commit, at the highest rate (where
a node's fixed costs weigh least on the figure): a node that serves none of a workspace must
cost the cluster far less than the node that writes it (0.21 to 0.25 when it was introduced)."""
GOAL: Final = (
    f"node B, serving none of the workspace, spends <= {IDLE_VS_WRITER_GOAL:g}x node A's CPU per"
    f" commit at {RATES[-1]} events/s"
)
IDLE: Final = "idle"
"""The variant in which nothing is published: both nodes' CPU at rest, the baseline."""


@dataclass(frozen=True, slots=True)
class IdleNodeRepeat:
    """One variant's figures over one repeat."""

    seconds: float
    commits: int
    """Node A's commits over the span (its ``commits`` counter)."""
    hints: int
    """Commit hints node B heard over the span (its ``cluster_hints`` counter)."""
    cpu_s: dict[str, float | None]
    """CPU time of each node over the span."""

    def cpu_ms_per_s(self, node: str) -> float | None:
        """The node's CPU over the span, in milliseconds per second."""
        cpu = self.cpu_s.get(node)
        return None if cpu is None else cpu / self.seconds * 1000


@dataclass(frozen=True, slots=True)
class IdleNodeMeasurement:
    repeats: dict[str, list[IdleNodeRepeat]]
    """By variant (``idle``, then each rate), one per repeat."""
    seconds: float
    server: str
    broker_warnings: int
    load_average: float | None

    def _idle_ms_per_s(self, node: str) -> float | None:
        known = [
            value
            for repeat in self.repeats[IDLE]
            if (value := repeat.cpu_ms_per_s(node)) is not None
        ]
        return statistics.median(known) if known else None

    def us_per_commit(self, repeat: IdleNodeRepeat, node: str) -> float | None:
        """The node's CPU over the repeat beyond its idle rate, per commit of node A."""
        busy, idle = repeat.cpu_ms_per_s(node), self._idle_ms_per_s(node)
        if busy is None or idle is None or not repeat.commits:
            return None
        return (busy - idle) * repeat.seconds * 1000 / repeat.commits

    def idle_vs_writer(self, repeat: IdleNodeRepeat) -> float | None:
        """Node B's CPU per commit against node A's, in the same repeat."""
        idle, writer = self.us_per_commit(repeat, IDLE_NODE), self.us_per_commit(repeat, WRITER)
        return None if idle is None or writer is None or writer <= 0 else idle / writer


def variant(rate: int) -> str:
    """The variant that publishes ``rate`` events per second (0: the baseline)."""
    return f"{rate} events/s" if rate else IDLE


def _counters(watcher: sdk.sync.Watcher) -> dict[str, int | float]:
    return watcher.stats().counters


def _cpu(cluster: Cluster) -> dict[str, float | None]:
    return {name: node.process.cpu_seconds() for name, node in cluster.nodes.items()}


def _spent(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


def measure(*, seconds: float = SECONDS, repeats: int = REPEATS) -> IdleNodeMeasurement:
    """Node A publishes to one watcher on node A at each rate, and nothing for the baseline;
    node B serves nothing. The variants take turns, ``repeats`` times."""
    by_name = {variant(rate): rate for rate in (0, *RATES)}
    load = load_average()
    with running_cluster((WRITER, IDLE_NODE)) as cluster:
        # Open for the whole run, in every variant alike; read between the spans only.
        with (
            sdk.sync.Watcher(cluster.writer.url) as writer,
            sdk.sync.Watcher(cluster.nodes[IDLE_NODE].url) as idle_node,
        ):

            def one(name: str) -> IdleNodeRepeat:
                rate = by_name[name]
                commits, hints = _counters(writer)["commits"], _counters(idle_node)["cluster_hints"]
                cpu, started = _cpu(cluster), time.monotonic()
                if rate:
                    events = round(rate * seconds)
                    stream = Stream("broker", "json", "paced", 1, 1, events, rate)
                    broker.run_stream(stream, cluster.placement({WRITER: 1}), NAME)
                else:
                    time.sleep(seconds)
                elapsed, after = time.monotonic() - started, _cpu(cluster)
                return IdleNodeRepeat(
                    seconds=elapsed,
                    commits=int(_counters(writer)["commits"] - commits),
                    hints=int(_counters(idle_node)["cluster_hints"] - hints),
                    cpu_s={node: _spent(cpu[node], after[node]) for node in after},
                )

            runs = interleaved(list(by_name), repeats, one)
        warnings, server = cluster.broker_warnings, cluster.server
    return IdleNodeMeasurement(runs, seconds, server, warnings, load)


HEADER: Final = (
    "variant",
    "commits/s",
    "hints heard by B per commit",
    "node A ms/s",
    "node B ms/s",
    "node A us/commit",
    "node B us/commit",
    "node B vs node A",
)


def _row(result: IdleNodeMeasurement, name: str) -> tuple[str, ...]:
    repeats = result.repeats[name]
    idle = name == IDLE
    return (
        name,
        spread_cell((r.commits / r.seconds for r in repeats), ",.0f"),
        "-"
        if idle
        else spread_cell((r.hints / r.commits if r.commits else None for r in repeats), ".2f"),
        spread_cell((r.cpu_ms_per_s(WRITER) for r in repeats), ".1f"),
        spread_cell((r.cpu_ms_per_s(IDLE_NODE) for r in repeats), ".1f"),
        "-" if idle else spread_cell((result.us_per_commit(r, WRITER) for r in repeats), ",.0f"),
        "-" if idle else spread_cell((result.us_per_commit(r, IDLE_NODE) for r in repeats), ",.0f"),
        "-" if idle else spread_cell((result.idle_vs_writer(r) for r in repeats), ".2f"),
    )


def report(result: IdleNodeMeasurement) -> Report:
    notes = (
        setup_note(result.server, 2),
        f"Node {WRITER} writes one workspace: one worker publishes one `Scalar` event per frame"
        f" at each rate (frames at most every {TICK_S * 1000:g} ms), node {WRITER} commits"
        f" about once per frame, and one watcher on node {WRITER} follows it. Node {IDLE_NODE}"
        " serves nothing of it: no watcher, no worker; it hears each commit's pub/sub hint"
        " and reads the workspace at most every 0.25 s (its state only)",
        f"Baseline: the variant `{IDLE}`, nothing published, measured in the same run; a"
        " node's CPU per commit is its CPU over the span beyond its idle rate, over node"
        f" {WRITER}'s commits (its `commits` counter; the hints from node {IDLE_NODE}'s"
        " `cluster_hints`). Each span includes the start of the clients' processes",
        f"{len(result.repeats[IDLE])} interleaved repeats (the order"
        f" alternating) of about {result.seconds:g} s per variant; cells are median"
        " (min..max) over the repeats",
        "Every node pays node B's figure for every commit in the cluster: it is what the"
        " cluster's CPU per commit grows by with each node added",
        machine_note(result.broker_warnings, result.load_average),
    )
    judged = [result.idle_vs_writer(r) for r in result.repeats[variant(RATES[-1])]]
    known = [ratio for ratio in judged if ratio is not None]
    spread = Spread.of(known) if known else None
    goal = Goal(
        GOAL,
        "not measured"
        if spread is None
        else f"{spread.median:.2f}x (median over the repeats, {spread.min:.2f} to"
        f" {spread.max:.2f})",
        passed=spread is not None and spread.median <= IDLE_VS_WRITER_GOAL,
    )
    return Report(
        name=NAME,
        title=TITLE,
        notes=notes,
        header=HEADER,
        rows=tuple(_row(result, name) for name in result.repeats),
        goals=(goal,),
    )


def run(*, quick: bool) -> Report:
    try:
        if quick:
            return report(measure(seconds=QUICK_SECONDS, repeats=QUICK_REPEATS))
        return report(measure())
    except PeerMissingError as exc:
        return missing_report(NAME, TITLE, (GOAL,), str(exc))
