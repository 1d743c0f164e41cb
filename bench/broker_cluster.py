"""Several broker nodes on one Redis store: what crossing from one node to another costs.

Every node is a ``pierhead serve --store redis://... --redis-durability aof`` process on one
Redis server started by the benchmark (:func:`bench._peer_servers.start_store_redis`, with
``appendfsync always``, as ``redis-ingest`` judges its goal on). Node A writes every workspace
measured here: its worker connects there first. The other nodes follow it from the store
(a pub/sub hint from the commit script, then a read) and serve their own watchers from that
mirror; a catch or release sent to another node is forwarded to A over pub/sub.

The workloads and the clients are ``broker-latency``'s, ``broker-catch``'s and
``broker-fanout``'s (:func:`bench.broker.run_stream`, :func:`bench.broker.catch_round`); the
baseline of each is measured in the same run, its repeats interleaved with the others: the same
workload with everyone on node A for latency and catch, node A's own costs for fan-out.

Three reports: ``cluster-latency``, ``cluster-catch``, ``cluster-fanout``.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, TypeVar

from broker import BrokerConfig

from . import broker
from ._peer_servers import PeerMissingError, redis_client_version, start_store_redis
from ._procs import Child, Fleet
from ._report import Goal, Report, Spread, spread_cell, spread_header
from ._stats import Latencies, load_average, load_cell, machine_note
from .broker import BATCH, BROKER, TICK_S, WINDOW, Placement, Stream, StreamOutcome

NODE_OPTIONS: Final = ("--redis-durability", "aof")
WRITER: Final = "A"
"""The node every measured workspace is written by."""

REPEATS: Final = broker.REPEATS
QUICK_REPEATS: Final = broker.QUICK_REPEATS

LATENCY_RATE: Final = broker.LATENCY_RATE
LATENCY_WATCHERS: Final = broker.LATENCY_WATCHERS
LATENCY_ADDED_GOAL_MS: Final = 2.0
"""What following the writer from another node may add to the p99 of publish-to-watcher."""

CATCH_GOAL_MS: Final = 10.0
"""p99 of catch-to-worker latency from another node than the worker's."""
CATCH_OPERATOR: Final = "C"

FANOUT_WATCHERS: Final = 100
FANOUT_DELIVERIES: Final = 3 * broker.FANOUT_DELIVERIES
"""Three times ``broker-fanout``'s, chosen while CPU was read in clock ticks (10 ms); repeats
three times longer again were no less noisy."""
DELIVERY_COST_GOAL: Final = 1.0
"""Most a delivery may cost on a node following the workspace, against one on the writer's node
(the median of per-round ratios): a node's CPU per delivered event must not grow with nodes."""
SERVING_COST_GOAL: Final = 1.0
"""Most a node following the workspace may spend per event published whatever its number of
watchers (its following and its pages), against the writer's node (its ingest and its pages):
reading a stream must not cost more than writing it."""
FANOUT_FILL_EVENTS: Final = broker.fanout_events(
    1, BrokerConfig().tail_events
) + broker.fanout_events(FANOUT_WATCHERS, FANOUT_DELIVERIES)
"""Events published before the first measured repeat, not measured, with the watchers split
between the nodes: enough to fill both nodes' in-memory tails (``tail_events``) and start
evicting. A node grows its heap as its tails fill: node B, whose tail grows only while its
watchers follow the workspace, took 12,700, 6,600 and 7,500 minor page faults in its first
three serving repeats and 200 to 1,000 from then on, so the first repeats weighed against
two nodes."""
FANOUT_REPEATS: Final = 9
"""Rounds of the layouts, more than the other benchmarks' repeats: one round's figures move by
a fifth either way on a 2-core machine whose clients take most of both cores; the goals are
judged on the medians."""

MISSING: Final = "n/a"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    process: Child
    url: str


@dataclass(frozen=True, slots=True)
class Cluster:
    nodes: dict[str, Node]
    redis: Child
    server: str
    """Such as ``Valkey 9.1.2``, and the nodes' client."""

    @property
    def writer(self) -> Node:
        return self.nodes[WRITER]

    @property
    def broker_warnings(self) -> int:
        return sum(node.process.log_warnings for node in self.nodes.values())

    def placement(self, watchers: dict[str, int]) -> Placement:
        """A worker on node A; ``watchers`` connections on each named node; the CPU of every
        node and of Redis measured."""
        return Placement(
            self.writer.process,
            self.writer.url,
            tuple((self.nodes[name].url, count) for name, count in watchers.items() if count),
            store=self.redis,
            others={name: node.process for name, node in self.nodes.items() if name != WRITER},
        )


@contextmanager
def running_cluster(names: Sequence[str]) -> Iterator[Cluster]:
    """One Redis server and a node on it per name, the first the writer; all stopped and their
    files removed on exit. :class:`PeerMissingError` without a server or redis-py."""
    with ExitStack() as stack:
        # The directory goes after the processes that write in it have stopped.
        data = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pierhead-bench-")))
        fleet = stack.enter_context(Fleet())
        client = redis_client_version()
        (data / "redis").mkdir()
        redis = start_store_redis(
            fleet, data / "redis", appendfsync="always", timeout=broker.STARTUP_TIMEOUT_S
        )
        nodes: dict[str, Node] = {}
        for name in names:
            directory = data / f"node-{name}"
            directory.mkdir()
            options = ("--store", redis.url, *NODE_OPTIONS)
            child, port = fleet.broker(directory, timeout=broker.STARTUP_TIMEOUT_S, options=options)
            child.name = f"node {name}"
            nodes[name] = Node(name, child, f"ws://127.0.0.1:{port}")
        yield Cluster(nodes, redis.process, f"{redis.name} {redis.version}; the nodes' {client}")


def setup_note(cluster: str, nodes: int) -> str:
    return (
        f"{nodes} nodes (`pierhead serve --store redis://... {' '.join(NODE_OPTIONS)}`, default"
        " `--position-check`, a repair path only) on one Redis server started by the benchmark"
        f" (`--appendonly yes --appendfsync always`): {cluster}. Node {WRITER} writes the"
        " workspace (its worker connects there); the other nodes follow it from the store"
    )


def missing_report(name: str, title: str, goals: Sequence[str], why: str) -> Report:
    return Report(
        name=name,
        title=title,
        notes=(f"Not measured: {why}",),
        header=("variant",),
        rows=(),
        goals=tuple(Goal(goal, "not measured", passed=False) for goal in goals),
    )


def interleaved(
    variants: Sequence[str], repeats: int, measure: Callable[[str], T]
) -> dict[str, list[T]]:
    """Each variant's result from ``measure``, per repeat; the variants take turns, the
    order alternating so that none always runs on a machine another warmed."""
    samples: dict[str, list[T]] = {name: [] for name in variants}
    for repeat in range(repeats):
        order = list(variants) if repeat % 2 == 0 else list(reversed(variants))
        for name in order:
            samples[name].append(measure(name))
    return samples


def cross_node_report(
    result: CrossNodeLatencies,
    *,
    name: str,
    title: str,
    nodes: int,
    workload: tuple[str, ...],
    unit: str,
    goal: Goal,
) -> Report:
    """A latency on the writer and across nodes: the notes every such report has around the
    ``workload`` notes, a row per variant against the same-node p99, and the ``goal``."""
    notes = (
        setup_note(result.server, nodes),
        *workload,
        f"{result.repeats} interleaved repeats (the order alternating) of {result.count:,}"
        f" {unit} after {result.warm:,} warm-up {unit}",
        broker.LATENCY_NOTE,
        machine_note(result.broker_warnings, result.load_average),
    )
    baseline = result.same_node.p99_spread.median
    rows = tuple(
        broker.latency_row(latencies, baseline)
        for latencies in (result.same_node, result.cross_node)
    )
    return Report(
        name=name,
        title=title,
        notes=notes,
        header=broker.latency_header("same node"),
        rows=rows,
        goals=(goal,),
    )


# Publish-to-watcher latency across nodes ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class CrossNodeLatencies:
    """One latency measured with the clients on the writer (the baseline), then on another
    node, in interleaved repeats."""

    same_node: Latencies
    """The clients on the writer: the baseline."""
    cross_node: Latencies
    """The clients on another node."""
    repeats: int
    warm: int
    count: int
    """Measured events or requests per repeat, after ``warm``."""
    server: str
    broker_warnings: int
    load_average: float | None


@dataclass(frozen=True, slots=True)
class LatencyMeasurement(CrossNodeLatencies):
    rate: int
    watchers: int

    @property
    def added_p99_ms(self) -> float:
        """Pooled p99 across nodes minus pooled p99 on the writer: what the goal is judged on."""
        return self.cross_node.p99_ms - self.same_node.p99_ms

    @property
    def paired_added_p99_ms(self) -> float:
        """The median over repeats of each repeat's p99 difference."""
        return statistics.median(
            cross - same
            for cross, same in zip(
                self.cross_node.repeat_p99_ms, self.same_node.repeat_p99_ms, strict=True
            )
        )


def latency_variants(watchers: int) -> dict[str, dict[str, int]]:
    """Variant names and where their watchers connect; the baseline first."""
    return {
        f"{watchers} watchers on node {WRITER} (same node)": {WRITER: watchers},
        f"{watchers} watchers on node B (across nodes)": {"B": watchers},
    }


def measure_latency(
    *,
    rate: int = LATENCY_RATE,
    seconds: float = broker.LATENCY_SECONDS,
    warm_seconds: float = broker.LATENCY_WARM_SECONDS,
    watchers: int = LATENCY_WATCHERS,
    repeats: int = REPEATS,
) -> LatencyMeasurement:
    """Publish on node A to watchers on node A, then on node B, ``repeats`` times in turn."""
    warm, events = round(rate * warm_seconds), round(rate * seconds)
    variants = latency_variants(watchers)
    load = load_average()
    with running_cluster((WRITER, "B")) as cluster:

        def latencies_ms(name: str) -> list[float]:
            stream = Stream("broker", "json", "paced", watchers, warm, events, rate)
            outcome = broker.run_stream(
                stream, cluster.placement(variants[name]), "cluster-latency"
            )
            return [value / 1000 for value in outcome.latencies_us]

        samples = interleaved(list(variants), repeats, latencies_ms)
        warnings = cluster.broker_warnings
        server = cluster.server
    same, cross = (Latencies.of(name, samples[name]) for name in variants)
    return LatencyMeasurement(
        same_node=same,
        cross_node=cross,
        repeats=repeats,
        warm=warm,
        count=events,
        server=server,
        broker_warnings=warnings,
        load_average=load,
        rate=rate,
        watchers=watchers,
    )


def latency_goal_description(rate: int, watchers: int) -> str:
    return (
        f"publish on node {WRITER} to {watchers} watchers on node B at {rate:,} events/s: p99"
        f" adds <= {LATENCY_ADDED_GOAL_MS:g} ms to the same-node p99"
    )


def latency_report(result: LatencyMeasurement) -> Report:
    workload = (
        f"`broker-latency`'s workload: one worker on node {WRITER} publishes {result.rate:,}"
        f" `Scalar` events per second in small batches (one every {TICK_S * 1000:g} ms), each"
        f" carrying its send time; each of {result.watchers} watchers subtracts it from its own"
        " clock on arrival. Events are committed to Redis and fsynced (WAITAOF) before node"
        f" {WRITER} sends them",
        f"Baseline: the same watchers on node {WRITER}, the writer. Across nodes: on node B,"
        " which hears the commit script's pub/sub hint, reads the new events from the stream"
        " and folds them into its mirror before sending them",
    )
    goal = Goal(
        latency_goal_description(result.rate, result.watchers),
        f"{result.added_p99_ms:+.2f} ms ({result.cross_node.p99_ms:.2f} vs"
        f" {result.same_node.p99_ms:.2f} ms; median of per-repeat differences"
        f" {result.paired_added_p99_ms:+.2f} ms)",
        passed=result.added_p99_ms <= LATENCY_ADDED_GOAL_MS,
    )
    return cross_node_report(
        result,
        name="cluster-latency",
        title=f"publish-to-watcher latency across nodes at {result.rate:,} events/s",
        nodes=2,
        workload=workload,
        unit="events",
        goal=goal,
    )


def run_latency(*, quick: bool) -> Report:
    try:
        if quick:
            result = measure_latency(
                seconds=broker.QUICK_LATENCY_SECONDS,
                warm_seconds=broker.QUICK_LATENCY_WARM_SECONDS,
                repeats=QUICK_REPEATS,
            )
        else:
            result = measure_latency()
    except PeerMissingError as exc:
        goal = latency_goal_description(LATENCY_RATE, LATENCY_WATCHERS)
        return missing_report(
            "cluster-latency", "publish-to-watcher latency across nodes", (goal,), str(exc)
        )
    return latency_report(result)


# Catch-to-worker latency across nodes -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CatchMeasurement(CrossNodeLatencies):
    """The operator on the worker's node (the baseline), then on node C."""


CATCH_VARIANTS: Final[dict[str, str]] = {
    f"operator on node {WRITER} (same node)": WRITER,
    f"operator on node {CATCH_OPERATOR} (across nodes)": CATCH_OPERATOR,
}
"""Variant names and the node the operator connects to; the baseline first."""
CATCH_GOAL: Final = (
    f"catch from node {CATCH_OPERATOR} to a worker on node {WRITER}: p99 <= {CATCH_GOAL_MS:g} ms"
)


def measure_catch(
    *,
    round_trips: int = broker.CATCH_ROUND_TRIPS,
    warm: int = broker.CATCH_WARM,
    repeats: int = REPEATS,
    gap_s: float = broker.CATCH_GAP_S,
) -> CatchMeasurement:
    """An operator's catch or release to the worker's ``semaphores`` push, the worker on node
    A, the operator on node A, then on node C (three nodes), ``repeats`` times in turn."""
    load = load_average()
    with running_cluster((WRITER, "B", CATCH_OPERATOR)) as cluster:

        def latencies_ms(name: str) -> list[float]:
            operator = cluster.nodes[CATCH_VARIANTS[name]]
            return broker.catch_round(
                "broker",
                cluster.writer.url,
                operator.url,
                warm=warm,
                count=round_trips,
                gap_s=gap_s,
            )

        samples = interleaved(list(CATCH_VARIANTS), repeats, latencies_ms)
        warnings = cluster.broker_warnings
        server = cluster.server
    same, cross = (Latencies.of(name, samples[name]) for name in CATCH_VARIANTS)
    return CatchMeasurement(
        same_node=same,
        cross_node=cross,
        repeats=repeats,
        warm=warm,
        count=round_trips,
        server=server,
        broker_warnings=warnings,
        load_average=load,
    )


def catch_report(result: CatchMeasurement) -> Report:
    workload = (
        "`broker-catch`'s workload: an operator (watcher session) sends `catch` and `release`"
        f" in turn, waiting {broker.CATCH_GAP_S * 1000:g}-{broker.CATCH_GAP_S * 1500:g} ms after"
        f" each `ok`; the workspace's worker, on node {WRITER}, times the arrival of each"
        " `semaphores` push against the send time (same machine)",
        f"Baseline: the operator on node {WRITER}. Across nodes: on node {CATCH_OPERATOR}, which"
        f" forwards the request to node {WRITER} over Redis pub/sub; node {WRITER} stores the"
        " change, pushes it to the worker and answers back the same way",
    )
    goal = Goal(
        CATCH_GOAL,
        f"{result.cross_node.p99_ms:.2f} ms (same node {result.same_node.p99_ms:.2f} ms)",
        passed=result.cross_node.p99_ms <= CATCH_GOAL_MS,
    )
    return cross_node_report(
        result,
        name="cluster-catch",
        title="catch-to-worker latency across nodes",
        nodes=3,
        workload=workload,
        unit="requests",
        goal=goal,
    )


def run_catch(*, quick: bool) -> Report:
    try:
        if quick:
            result = measure_catch(
                round_trips=broker.QUICK_CATCH_ROUND_TRIPS,
                warm=broker.QUICK_CATCH_WARM,
                repeats=QUICK_REPEATS,
            )
        else:
            result = measure_catch()
    except PeerMissingError as exc:
        return missing_report(
            "cluster-catch", "catch-to-worker latency across nodes", (CATCH_GOAL,), str(exc)
        )
    return catch_report(result)


# Fan-out over one node and over two ---------------------------------------------------------

FanoutLayout = Literal[
    "one node", "one watcher on B", "two nodes", "one watcher on A", "every watcher on B"
]
FANOUT_LAYOUTS: Final[tuple[FanoutLayout, ...]] = (
    "one node",
    "one watcher on B",
    "two nodes",
    "one watcher on A",
    "every watcher on B",
)
FANOUT_NODES: Final = (WRITER, "B")


def fanout_layout(layout: FanoutLayout, watchers: int) -> dict[str, int]:
    """Watchers per node: all on node A, all but one, split evenly, one, or none."""
    on_b = {
        "one node": 0,
        "one watcher on B": 1,
        "two nodes": watchers // 2,
        "one watcher on A": watchers - 1,
        "every watcher on B": watchers,
    }[layout]
    return {WRITER: watchers - on_b, "B": on_b}


@dataclass(frozen=True, slots=True)
class FanoutRepeat:
    """One repeat of one layout."""

    deliveries_per_s: float
    window_s: float
    cpu_s: dict[str, float | None]
    """CPU time over the repeat of each node (by name) and of ``redis``."""
    delivered: dict[str, int]
    """Events delivered to each node's watchers."""
    frames: dict[str, int]
    """Frames that carried them, by node."""
    client_cpu_s: float
    other_load: float | None

    @classmethod
    def of(
        cls, outcome: StreamOutcome, watchers: dict[str, int], events: int, nodes: dict[str, Node]
    ) -> FanoutRepeat:
        cpu = {WRITER: outcome.server_cpu_s, **outcome.others_cpu_s, "redis": outcome.store_cpu_s}
        return cls(
            deliveries_per_s=outcome.delivered / outcome.elapsed_s,
            window_s=outcome.window_s,
            cpu_s=cpu,
            delivered={name: count * events for name, count in watchers.items()},
            frames={name: outcome.frames_by_url.get(nodes[name].url, 0) for name in watchers},
            client_cpu_s=outcome.client_cpu_s,
            other_load=outcome.other_load,
        )

    def cores(self, process: str) -> float | None:
        cpu = self.cpu_s.get(process)
        return None if cpu is None else cpu / max(self.window_s, 1e-9)

    def node_us_per_delivery(self, node: str) -> float | None:
        """The node's CPU over the events it delivered; None when it delivered none."""
        cpu, delivered = self.cpu_s.get(node), self.delivered.get(node, 0)
        return None if cpu is None or not delivered else cpu / delivered * 1e6

    def events_per_frame(self, node: str) -> float | None:
        """How many events a frame to the node's watchers carried, on average."""
        frames = self.frames.get(node, 0)
        return self.delivered.get(node, 0) / frames if frames else None

    def serving_us_per_delivery(self) -> float | None:
        """The CPU of the nodes that delivered events, over every delivery: what serving the
        watchers costs, however many nodes share it."""
        serving = [node for node, count in self.delivered.items() if count]
        cpu = [self.cpu_s.get(node) for node in serving]
        if any(value is None for value in cpu):
            return None
        return sum(value or 0.0 for value in cpu) / sum(self.delivered.values()) * 1e6


def _ratio_of(value: float | None, base: float | None) -> float | None:
    """``value / base`` where both are known and above zero; a difference of CPU readings at or
    below zero is noise, not a figure to judge."""
    if value is None or base is None or value <= 0 or base <= 0:
        return None
    return value / base


@dataclass(frozen=True, slots=True)
class FanoutRound:
    """One repeat of every layout, run back to back: the figures that take one layout's CPU
    from another's come from one round, so that the machine's drift between rounds cancels.

    Each node's CPU per event published is, to a first approximation, what it spends whatever
    its number of watchers (node A: its ingest; node B: following the workspace; both: the
    pages they encode once for all their watchers) plus a cost per delivery. Each node is
    measured alike: serving every watcher, and serving one."""

    repeats: dict[FanoutLayout, FanoutRepeat]
    watchers: int
    events: int

    def _us_per_event(self, layout: FanoutLayout, node: str) -> float | None:
        cpu = self.repeats[layout].cpu_s.get(node)
        return None if cpu is None else cpu / self.events * 1e6

    def _us_per_delivery(self, node: str, every: FanoutLayout, one: FanoutLayout) -> float | None:
        """The node serving every watcher less the node serving one, over the deliveries
        between them."""
        serving_every, serving_one = self._us_per_event(every, node), self._us_per_event(one, node)
        if serving_every is None or serving_one is None:
            return None
        return (serving_every - serving_one) / (self.watchers - 1)

    def writer_us_per_delivery(self) -> float | None:
        """Node A's CPU per delivery, at the margin."""
        return self._us_per_delivery(WRITER, "one node", "one watcher on A")

    def follower_us_per_delivery(self) -> float | None:
        """Node B's CPU per delivery, at the margin."""
        return self._us_per_delivery("B", "every watcher on B", "one watcher on B")

    def _us_per_event_serving(
        self, node: str, one: FanoutLayout, delivery: float | None
    ) -> float | None:
        """The node serving one watcher, less that watcher's deliveries."""
        serving_one = self._us_per_event(one, node)
        return None if serving_one is None or delivery is None else serving_one - delivery

    def writer_us_per_event(self) -> float | None:
        """What node A spends per event published whatever its number of watchers: its ingest
        (taking the worker's frames, committing them, acknowledging them) and its pages."""
        return self._us_per_event_serving(WRITER, "one watcher on A", self.writer_us_per_delivery())

    def follower_us_per_event(self) -> float | None:
        """What node B spends per event published whatever its number of watchers: following
        the workspace (the hint, the read, the decode, its mirror) and its pages."""
        return self._us_per_event_serving("B", "one watcher on B", self.follower_us_per_delivery())

    def delivery_cost_ratio(self) -> float | None:
        """A delivery on node B against one on node A."""
        return _ratio_of(self.follower_us_per_delivery(), self.writer_us_per_delivery())

    def serving_cost_ratio(self) -> float | None:
        """Node B's CPU per event published whatever its watchers, against node A's."""
        return _ratio_of(self.follower_us_per_event(), self.writer_us_per_event())

    def ingest_us_per_event(self) -> float | None:
        """Node A's CPU per event published while it serves no watcher."""
        return self._us_per_event("every watcher on B", WRITER)

    def idle_follow_us_per_event(self) -> float | None:
        """Node B's CPU per event published while it serves no watcher (one node): what a
        node spends on a workspace that none of its watchers follows."""
        return self._us_per_event("one node", "B")

    def serving_growth(self) -> float | None:
        """The serving nodes' CPU per delivery, two nodes against one."""
        one = self.repeats["one node"].serving_us_per_delivery()
        two = self.repeats["two nodes"].serving_us_per_delivery()
        return _ratio_of(two, one)

    def added_us_per_event(self) -> float | None:
        """The serving nodes' CPU per event published, two nodes less one."""
        one = self.repeats["one node"].serving_us_per_delivery()
        two = self.repeats["two nodes"].serving_us_per_delivery()
        return None if one is None or two is None else (two - one) * self.watchers

    def deliveries_ratio(self, layout: FanoutLayout) -> float:
        """The layout's deliveries per second against one node's."""
        return self.repeats[layout].deliveries_per_s / self.repeats["one node"].deliveries_per_s


@dataclass(frozen=True, slots=True)
class FanoutMeasurement:
    rounds: tuple[FanoutRound, ...]
    watchers: int
    events: int
    warm: int
    fill: int
    server: str
    broker_warnings: int
    load_average: float | None

    def repeats(self, layout: FanoutLayout) -> tuple[FanoutRepeat, ...]:
        return tuple(round_.repeats[layout] for round_ in self.rounds)

    def spread(self, figure: Callable[[FanoutRound], float | None]) -> Spread | None:
        """A figure over the rounds; None if any round lacks it."""
        values = [figure(round_) for round_ in self.rounds]
        if not values or any(value is None for value in values):
            return None
        return Spread.of(value for value in values if value is not None)

    def median(self, figure: Callable[[FanoutRound], float | None]) -> float | None:
        spread = self.spread(figure)
        return None if spread is None else spread.median


def measure_fanout(
    *,
    watchers: int = FANOUT_WATCHERS,
    deliveries: int = FANOUT_DELIVERIES,
    warm: int = broker.FANOUT_WARM,
    repeats: int = FANOUT_REPEATS,
    fill: int = FANOUT_FILL_EVENTS,
) -> FanoutMeasurement:
    """One worker on node A flooding to ``watchers`` watchers placed by each layout in turn,
    ``repeats`` rounds, after ``fill`` events that are not measured."""
    if watchers < 2:
        raise ValueError(f"{watchers} watchers: the layouts need at least two")
    events = broker.fanout_events(watchers, deliveries)
    rounds: list[FanoutRound] = []
    load = load_average()
    with running_cluster(FANOUT_NODES) as cluster:
        filling = Stream("broker", "json", "flood", watchers, 0, fill)
        two_nodes = cluster.placement(fanout_layout("two nodes", watchers))
        broker.run_stream(filling, two_nodes, f"cluster-fanout-fill{watchers}")
        for index in range(repeats):
            found: dict[FanoutLayout, FanoutRepeat] = {}
            order = FANOUT_LAYOUTS if index % 2 == 0 else FANOUT_LAYOUTS[::-1]
            for layout in order:
                placed = fanout_layout(layout, watchers)
                stream = Stream("broker", "json", "flood", watchers, warm, events)
                outcome = broker.run_stream(
                    stream, cluster.placement(placed), f"cluster-fanout{watchers}"
                )
                found[layout] = FanoutRepeat.of(outcome, placed, events, cluster.nodes)
            rounds.append(FanoutRound(found, watchers, events))
        warnings = cluster.broker_warnings
        server = cluster.server
    return FanoutMeasurement(tuple(rounds), watchers, events, warm, fill, server, warnings, load)


FANOUT_HEADER: Final = (
    "variant",
    "watchers per node",
    *spread_header("deliveries/s"),
    "median vs one node",
    "node A CPU",
    "node B CPU",
    "Redis CPU",
    "client CPU",
    "other CPU",
    "node A us/delivery",
    "node B us/delivery",
    "node A events/frame",
    "node B events/frame",
)


def _us(value: float | None) -> str:
    return MISSING if value is None else f"{value:.2f}"


def _ratio(value: float | None) -> str:
    return MISSING if value is None else f"{value:.2f}x"


def _fanout_row(layout: FanoutLayout, result: FanoutMeasurement) -> tuple[str, ...]:
    repeats = result.repeats(layout)
    placed = fanout_layout(layout, result.watchers)
    return (
        f"{BROKER}, {layout}",
        ", ".join(f"{count} on {node}" for node, count in placed.items() if count),
        *Spread.of(repeat.deliveries_per_s for repeat in repeats).cells(",.0f"),
        _ratio(result.median(lambda round_: round_.deliveries_ratio(layout))),
        load_cell(repeat.cores(WRITER) for repeat in repeats),
        load_cell(repeat.cores("B") for repeat in repeats),
        load_cell(repeat.cores("redis") for repeat in repeats),
        load_cell(repeat.client_cpu_s / max(repeat.window_s, 1e-9) for repeat in repeats),
        load_cell(repeat.other_load for repeat in repeats),
        load_cell(repeat.node_us_per_delivery(WRITER) for repeat in repeats),
        load_cell(repeat.node_us_per_delivery("B") for repeat in repeats),
        spread_cell((repeat.events_per_frame(WRITER) for repeat in repeats), ",.0f"),
        spread_cell((repeat.events_per_frame("B") for repeat in repeats), ",.0f"),
    )


def fanout_goal_descriptions(watchers: int) -> tuple[str, str]:
    return (
        f"fan-out to {watchers} watchers: CPU per delivered event on a node following the"
        f" workspace against the writer's node, <= {DELIVERY_COST_GOAL:.2f}x",
        "what a node spends per event published whatever its watchers: following the"
        f" workspace against writing it, <= {SERVING_COST_GOAL:.2f}x",
    )


def _judged(
    result: FanoutMeasurement,
    ratio: Callable[[FanoutRound], float | None],
    figures: tuple[float | None, float | None],
    unit: str,
) -> tuple[str, float | None]:
    """A goal's measured text and the median ratio it is judged on."""
    spread = result.spread(ratio)
    if spread is None:
        return MISSING, None
    follower, writer = figures
    text = (
        f"{spread.median:.2f}x (median of per-round ratios, {spread.min:.2f} to"
        f" {spread.max:.2f}; medians {_us(follower)} vs {_us(writer)} {unit})"
    )
    return text, spread.median


def fanout_report(result: FanoutMeasurement) -> Report:
    writer_delivery = result.median(FanoutRound.writer_us_per_delivery)
    follower_delivery = result.median(FanoutRound.follower_us_per_delivery)
    writer_event = result.median(FanoutRound.writer_us_per_event)
    follower_event = result.median(FanoutRound.follower_us_per_event)
    notes = (
        setup_note(result.server, 2),
        f"`broker-fanout`'s workload: one worker on node {WRITER} floods `publish` frames of"
        f" {BATCH} `LogRecord` events (at most {WINDOW} unacknowledged); {result.watchers}"
        " watchers follow the workspace and count the events and the frames that bring them."
        f" Five layouts of the same watchers: all on node {WRITER} (one node: node B running"
        f" but serving none), all but one on {WRITER}, half on each node, one on {WRITER},"
        " all on B",
        "On 2 cores the ratio of deliveries per second shows what the second node costs, not"
        " how the cluster scales: every process shares the same two cores. So CPU: each"
        " process's, in cores over the repeat (median (min..max)), and each node's CPU time over"
        " the events its own watchers were delivered (us/delivery: node A's includes its"
        " ingest and node B's its following, spread over the node's deliveries)",
        "Each node is measured alike, serving every watcher and serving one, in the same round:"
        " the difference over the deliveries between is its CPU per delivery (node"
        f" {WRITER} {_us(writer_delivery)} us, node B {_us(follower_delivery)} us; the figure"
        " that must not grow with nodes), and serving one less that watcher's deliveries is"
        " what it spends per event published whatever its number of watchers (node"
        f" {WRITER}: its ingest and its pages, {_us(writer_event)} us; node B: following the"
        f" workspace and its pages, {_us(follower_event)} us). Node {WRITER} serving none"
        f" spends {_us(result.median(FanoutRound.ingest_us_per_event))} us per event published",
        "Together, the serving nodes' CPU per delivery with the watchers split between two"
        " nodes against one node:"
        f" {_ratio(result.median(FanoutRound.serving_growth))} (a second serving node adds"
        f" {_us(result.median(FanoutRound.added_us_per_event))} us per event published: its"
        " following, what its deliveries cost more or less than node A's, and the two busy"
        " nodes taking turns on two cores); node B following the workspace for no watcher"
        f" (one node) spends {_us(result.median(FanoutRound.idle_follow_us_per_event))} us per"
        " event published",
        f"{len(result.rounds)} rounds of the layouts (the order reversed every other round),"
        f" each repeat {result.events:,} events after {result.warm:,} warm-up events, once"
        f" {result.fill:,} events published to the watchers of both nodes (not measured) have"
        " filled both nodes' in-memory tails; each figure is the median of per-round figures."
        " CPU is read from each process's CPU clock",
        machine_note(result.broker_warnings, result.load_average),
    )
    delivery_goal, serving_goal = fanout_goal_descriptions(result.watchers)
    delivery_text, delivery_ratio = _judged(
        result,
        FanoutRound.delivery_cost_ratio,
        (follower_delivery, writer_delivery),
        "us/delivery",
    )
    serving_text, serving_ratio = _judged(
        result,
        FanoutRound.serving_cost_ratio,
        (follower_event, writer_event),
        "us per event published",
    )
    goals = (
        Goal(
            delivery_goal,
            delivery_text,
            passed=delivery_ratio is not None and delivery_ratio <= DELIVERY_COST_GOAL,
        ),
        Goal(
            serving_goal,
            serving_text,
            passed=serving_ratio is not None and serving_ratio <= SERVING_COST_GOAL,
        ),
    )
    return Report(
        name="cluster-fanout",
        title=f"fan-out to {result.watchers} watchers over one node and over two",
        notes=notes,
        header=FANOUT_HEADER,
        rows=tuple(_fanout_row(layout, result) for layout in FANOUT_LAYOUTS),
        goals=goals,
    )


def run_fanout(*, quick: bool) -> Report:
    try:
        if quick:
            result = measure_fanout(
                deliveries=broker.QUICK_FANOUT_DELIVERIES,
                warm=broker.QUICK_FANOUT_WARM,
                repeats=QUICK_REPEATS,
                fill=broker.fanout_events(FANOUT_WATCHERS, broker.QUICK_FANOUT_DELIVERIES),
            )
        else:
            result = measure_fanout()
    except PeerMissingError as exc:
        return missing_report(
            "cluster-fanout",
            "fan-out over one node and over two",
            fanout_goal_descriptions(FANOUT_WATCHERS),
            str(exc),
        )
    return fanout_report(result)
