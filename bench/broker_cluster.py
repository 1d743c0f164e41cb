"""Several broker nodes on one Redis store: what crossing from one node to another costs.

Every node is a ``pierhead serve --store redis://... --redis-durability aof`` process on one
Redis server started by the benchmark (:func:`bench._peer_servers.start_store_redis`, with
``appendfsync always``, as ``redis-ingest`` judges its goal on). Node A writes every workspace
measured here: its worker connects there first. The other nodes follow it from the store
(a pub/sub hint from the commit script, then a read) and serve their own watchers from that
mirror; a catch or release sent to another node is forwarded to A over pub/sub.

The workloads and the clients are ``broker-latency``'s, ``broker-catch``'s and
``broker-fanout``'s (:func:`bench.broker.run_stream`, :func:`bench.broker.catch_round`); the
baseline of each is the same workload with everyone on node A, in the same run, the repeats
interleaved and compared pairwise where it matters.

Three reports: ``cluster-latency``, ``cluster-catch``, ``cluster-fanout``.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from broker import BrokerConfig

from . import broker
from ._peer_servers import PeerMissingError, redis_client_version, start_store_redis
from ._procs import Child, Fleet
from ._report import Goal, Report, Spread, spread_header
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
"""Three times ``broker-fanout``'s, chosen while CPU was read in clock ticks (10 ms); pairs
three times longer again were no less noisy."""
FANOUT_DELIVERY_GROWTH_GOAL: Final = 1.10
"""Most a delivery may cost on a node following the workspace, against on the writer's node
(the median of per-round ratios): a node's CPU per delivered event must not grow with nodes."""
FOLLOW_COST_GOAL: Final = 1.0
"""Most a node may spend following a workspace for its watchers, per event published, against
what the writer's node spends taking those events in: reading a stream must not cost more than
writing it."""
FANOUT_FILL_EVENTS: Final = broker.fanout_events(
    1, BrokerConfig().tail_events
) + broker.fanout_events(FANOUT_WATCHERS, FANOUT_DELIVERIES)
"""Events published before the first measured repeat, not measured, with the watchers split
between the nodes: enough to fill both nodes' in-memory tails (``tail_events``) and start
evicting. A node grows its heap as its tails fill: node B, whose tail grows only while its
watchers follow the workspace, took 12,700, 6,600 and 7,500 minor page faults in its first
three serving repeats and 200 to 1,000 from then on, so the first pairs weighed against two
nodes."""
FANOUT_REPEATS: Final = 9
"""Rounds of the four layouts, more than the other benchmarks' repeats: one round's figures
move by a fifth either way on a 2-core machine whose clients take most of both cores; the goals
are judged on the medians."""

MISSING: Final = "n/a"


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


def _setup_note(cluster: str, nodes: int) -> str:
    return (
        f"{nodes} nodes (`pierhead serve --store redis://... {' '.join(NODE_OPTIONS)}`, default"
        " `--position-check`, a repair path only) on one Redis server started by the benchmark"
        f" (`--appendonly yes --appendfsync always`): {cluster}. Node {WRITER} writes the"
        " workspace (its worker connects there); the other nodes follow it from the store"
    )


def _missing_report(name: str, title: str, goals: Sequence[str], why: str) -> Report:
    return Report(
        name=name,
        title=title,
        notes=(f"Not measured: {why}",),
        header=("variant",),
        rows=(),
        goals=tuple(Goal(goal, "not measured", passed=False) for goal in goals),
    )


# Publish-to-watcher latency across nodes ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class LatencyMeasurement:
    same_node: Latencies
    """Watchers on the writer: the baseline."""
    cross_node: Latencies
    """Watchers on another node."""
    rate: int
    watchers: int
    repeats: int
    warm: int
    count: int
    server: str
    broker_warnings: int
    load_average: float | None

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
    samples: dict[str, list[list[float]]] = {name: [] for name in variants}
    load = load_average()
    with running_cluster((WRITER, "B")) as cluster:
        for repeat in range(repeats):
            # Alternate which goes first, so neither always runs on a machine the other warmed.
            order = list(variants) if repeat % 2 == 0 else list(reversed(variants))
            for name in order:
                stream = Stream("broker", "json", "paced", watchers, warm, events, rate)
                outcome = broker.run_stream(
                    stream, cluster.placement(variants[name]), "cluster-latency"
                )
                samples[name].append([value / 1000 for value in outcome.latencies_us])
        warnings = cluster.broker_warnings
        server = cluster.server
    same, cross = (Latencies.of(name, samples[name]) for name in variants)
    return LatencyMeasurement(
        same, cross, rate, watchers, repeats, warm, events, server, warnings, load
    )


def latency_goal_description(rate: int, watchers: int) -> str:
    return (
        f"publish on node {WRITER} to {watchers} watchers on node B at {rate:,} events/s: p99"
        f" adds <= {LATENCY_ADDED_GOAL_MS:g} ms to the same-node p99"
    )


def latency_report(result: LatencyMeasurement) -> Report:
    notes = (
        _setup_note(result.server, 2),
        f"`broker-latency`'s workload: one worker on node {WRITER} publishes {result.rate:,}"
        f" `Scalar` events per second in small batches (one every {TICK_S * 1000:g} ms), each"
        f" carrying its send time; each of {result.watchers} watchers subtracts it from its own"
        " clock on arrival. Events are committed to Redis and fsynced (WAITAOF) before node"
        f" {WRITER} sends them",
        f"Baseline: the same watchers on node {WRITER}, the writer. Across nodes: on node B,"
        " which hears the commit script's pub/sub hint, reads the new events from the stream"
        " and folds them into its mirror before sending them",
        f"{result.repeats} interleaved repeats (the order alternating) of {result.count:,}"
        f" events after {result.warm:,} warm-up events",
        broker.LATENCY_NOTE,
        machine_note(result.broker_warnings, result.load_average),
    )
    baseline = result.same_node.p99_spread.median
    rows = tuple(
        broker.latency_row(latencies, baseline)
        for latencies in (result.same_node, result.cross_node)
    )
    goal = Goal(
        latency_goal_description(result.rate, result.watchers),
        f"{result.added_p99_ms:+.2f} ms ({result.cross_node.p99_ms:.2f} vs"
        f" {result.same_node.p99_ms:.2f} ms; median of per-repeat differences"
        f" {result.paired_added_p99_ms:+.2f} ms)",
        passed=result.added_p99_ms <= LATENCY_ADDED_GOAL_MS,
    )
    return Report(
        name="cluster-latency",
        title=f"publish-to-watcher latency across nodes at {result.rate:,} events/s",
        notes=notes,
        header=broker.latency_header("same node"),
        rows=rows,
        goals=(goal,),
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
        return _missing_report(
            "cluster-latency", "publish-to-watcher latency across nodes", (goal,), str(exc)
        )
    return latency_report(result)


# Catch-to-worker latency across nodes -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CatchMeasurement:
    same_node: Latencies
    """The operator on the worker's node: the baseline."""
    cross_node: Latencies
    """The operator on node C."""
    repeats: int
    warm: int
    count: int
    server: str
    broker_warnings: int
    load_average: float | None


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
    samples: dict[str, list[list[float]]] = {name: [] for name in CATCH_VARIANTS}
    load = load_average()
    with running_cluster((WRITER, "B", CATCH_OPERATOR)) as cluster:
        for repeat in range(repeats):
            order = list(CATCH_VARIANTS) if repeat % 2 == 0 else list(reversed(CATCH_VARIANTS))
            for name in order:
                operator = cluster.nodes[CATCH_VARIANTS[name]]
                samples[name].append(
                    broker.catch_round(
                        "broker",
                        cluster.writer.url,
                        operator.url,
                        warm=warm,
                        count=round_trips,
                        gap_s=gap_s,
                    )
                )
        warnings = cluster.broker_warnings
        server = cluster.server
    same, cross = (Latencies.of(name, samples[name]) for name in CATCH_VARIANTS)
    return CatchMeasurement(same, cross, repeats, warm, round_trips, server, warnings, load)


def catch_report(result: CatchMeasurement) -> Report:
    notes = (
        _setup_note(result.server, 3),
        "`broker-catch`'s workload: an operator (watcher session) sends `catch` and `release`"
        f" in turn, waiting {broker.CATCH_GAP_S * 1000:g}-{broker.CATCH_GAP_S * 1500:g} ms after"
        f" each `ok`; the workspace's worker, on node {WRITER}, times the arrival of each"
        " `semaphores` push against the send time (same machine)",
        f"Baseline: the operator on node {WRITER}. Across nodes: on node {CATCH_OPERATOR}, which"
        f" forwards the request to node {WRITER} over Redis pub/sub; node {WRITER} stores the"
        " change, pushes it to the worker and answers back the same way",
        f"{result.repeats} interleaved repeats (the order alternating) of {result.count:,}"
        f" requests after {result.warm:,} warm-up requests",
        broker.LATENCY_NOTE,
        machine_note(result.broker_warnings, result.load_average),
    )
    baseline = result.same_node.p99_spread.median
    rows = tuple(
        broker.latency_row(latencies, baseline)
        for latencies in (result.same_node, result.cross_node)
    )
    goal = Goal(
        CATCH_GOAL,
        f"{result.cross_node.p99_ms:.2f} ms (same node {result.same_node.p99_ms:.2f} ms)",
        passed=result.cross_node.p99_ms <= CATCH_GOAL_MS,
    )
    return Report(
        name="cluster-catch",
        title="catch-to-worker latency across nodes",
        notes=notes,
        header=broker.latency_header("same node"),
        rows=rows,
        goals=(goal,),
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
        return _missing_report(
            "cluster-catch", "catch-to-worker latency across nodes", (CATCH_GOAL,), str(exc)
        )
    return catch_report(result)


# Fan-out over one node and over two ---------------------------------------------------------

FanoutLayout = Literal["one node", "one watcher on B", "two nodes", "every watcher on B"]
FANOUT_LAYOUTS: Final[tuple[FanoutLayout, ...]] = (
    "one node",
    "one watcher on B",
    "two nodes",
    "every watcher on B",
)
FANOUT_NODES: Final = (WRITER, "B")


def fanout_layout(layout: FanoutLayout, watchers: int) -> dict[str, int]:
    """Watchers per node: all on node A, one of them on B, split evenly, or all on B."""
    on_b = {
        "one node": 0,
        "one watcher on B": 1,
        "two nodes": watchers // 2,
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


@dataclass(frozen=True, slots=True)
class FanoutRound:
    """One repeat of every layout, run back to back: the figures that take one layout's CPU
    from another's come from one round, so that the machine's drift between rounds cancels."""

    repeats: dict[FanoutLayout, FanoutRepeat]
    watchers: int
    events: int

    def _us_per_event(self, layout: FanoutLayout, node: str) -> float | None:
        cpu = self.repeats[layout].cpu_s.get(node)
        return None if cpu is None else cpu / self.events * 1e6

    def writer_us_per_delivery(self) -> float | None:
        """Node A's CPU per delivery, its ingest taken out: node A serving every watcher, less
        node A serving none (every watcher on B), over the deliveries."""
        serving = self._us_per_event("one node", WRITER)
        writing = self._us_per_event("every watcher on B", WRITER)
        if serving is None or writing is None:
            return None
        return (serving - writing) / self.watchers

    def follower_us_per_delivery(self) -> float | None:
        """Node B's CPU per delivery, its following taken out: node B serving every watcher,
        less node B serving one, over the deliveries between them."""
        every = self._us_per_event("every watcher on B", "B")
        one = self._us_per_event("one watcher on B", "B")
        if every is None or one is None:
            return None
        return (every - one) / (self.watchers - 1)

    def delivery_growth(self) -> float | None:
        """What a delivery costs on a node following the workspace against on the writer's."""
        follower, writer = self.follower_us_per_delivery(), self.writer_us_per_delivery()
        if follower is None or writer is None or writer <= 0:
            return None
        return follower / writer

    def ingest_us_per_event(self) -> float | None:
        """Node A's CPU per event published while it serves no watcher: taking the worker's
        frames, committing them to Redis, acknowledging them."""
        return self._us_per_event("every watcher on B", WRITER)

    def follow_us_per_event(self) -> float | None:
        """Node B's CPU per event published to follow the workspace for its watchers, however
        many: node B serving one watcher, less that watcher's deliveries."""
        one, delivery = self._us_per_event("one watcher on B", "B"), self.follower_us_per_delivery()
        return None if one is None or delivery is None else one - delivery

    def follow_vs_ingest(self) -> float | None:
        follow, ingest = self.follow_us_per_event(), self.ingest_us_per_event()
        if follow is None or ingest is None or ingest <= 0:
            return None
        return follow / ingest

    def idle_follow_us_per_event(self) -> float | None:
        """Node B's CPU per event published while it serves no watcher (one node): what a
        node spends on a workspace that none of its watchers follows."""
        return self._us_per_event("one node", "B")

    def serving_growth(self) -> float | None:
        """The serving nodes' CPU per delivery, two nodes against one: the second node's
        following and its deliveries together."""
        one = self.repeats["one node"].serving_us_per_delivery()
        two = self.repeats["two nodes"].serving_us_per_delivery()
        return None if one is None or two is None or one <= 0 else two / one

    def added_us_per_event(self) -> float | None:
        """The serving nodes' CPU per event published, two nodes less one."""
        one = self.repeats["one node"].serving_us_per_delivery()
        two = self.repeats["two nodes"].serving_us_per_delivery()
        return None if one is None or two is None else (two - one) * self.watchers

    def deliveries_ratio(self, layout: FanoutLayout) -> float:
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

    def median(self, figure: Callable[[FanoutRound], float | None]) -> float | None:
        """The median of a figure over the rounds; None if any round lacks it."""
        values = [figure(round_) for round_ in self.rounds]
        if not values or any(value is None for value in values):
            return None
        return statistics.median(value for value in values if value is not None)


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
    "events per frame",
)


def _us_cell(values: Sequence[float | None]) -> str:
    known = [value for value in values if value is not None]
    return Spread.of(known).cell(".2f") if known else MISSING


def _us(value: float | None) -> str:
    return MISSING if value is None else f"{value:.2f}"


def _ratio(value: float | None) -> str:
    return MISSING if value is None else f"{value:.2f}x"


def _fanout_row(layout: FanoutLayout, result: FanoutMeasurement) -> tuple[str, ...]:
    repeats = result.repeats(layout)
    placed = fanout_layout(layout, result.watchers)
    frames = [
        value
        for repeat in repeats
        for node in placed
        if (value := repeat.events_per_frame(node)) is not None
    ]
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
        _us_cell([repeat.node_us_per_delivery(WRITER) for repeat in repeats]),
        _us_cell([repeat.node_us_per_delivery("B") for repeat in repeats]),
        Spread.of(frames).cell(",.0f") if frames else MISSING,
    )


def fanout_goal_descriptions(watchers: int) -> tuple[str, str]:
    return (
        f"fan-out to {watchers} watchers: CPU per delivered event on a node following the"
        f" workspace against the writer's node, <= {FANOUT_DELIVERY_GROWTH_GOAL:.2f}x",
        "a node following the workspace for its watchers: CPU per event published against"
        f" the writer's ingest, <= {FOLLOW_COST_GOAL:.2f}x",
    )


def fanout_report(result: FanoutMeasurement) -> Report:
    writer = result.median(FanoutRound.writer_us_per_delivery)
    follower = result.median(FanoutRound.follower_us_per_delivery)
    growth = result.median(FanoutRound.delivery_growth)
    follow = result.median(FanoutRound.follow_us_per_event)
    ingest = result.median(FanoutRound.ingest_us_per_event)
    follow_ratio = result.median(FanoutRound.follow_vs_ingest)
    notes = (
        _setup_note(result.server, 2),
        f"`broker-fanout`'s workload: one worker on node {WRITER} floods `publish` frames of"
        f" {BATCH} `LogRecord` events (at most {WINDOW} unacknowledged); {result.watchers}"
        " watchers follow the workspace and count the events of each `events` frame. Four"
        f" layouts of the same watchers: all on node {WRITER} (one node, node B running but"
        " serving none), one of them on B, half on B, all on B",
        "On 2 cores the ratio of deliveries per second shows what the second node costs, not"
        " how the cluster scales: every process shares the same two cores. So CPU: each"
        " process's, in cores over the repeat (median (min..max)), and each node's CPU time over"
        " the events its own watchers were delivered (us/delivery; node A's includes its"
        " ingest)",
        "What must not grow with nodes, the CPU per delivered event of each node, is taken"
        " from differences within a round, so that what a node spends whatever its watchers"
        f" drops out: node {WRITER} serving every watcher less node {WRITER} serving none,"
        f" {_us(writer)} us per delivery; node B serving every watcher less node B serving one,"
        f" {_us(follower)} us per delivery. What a node spends to follow the workspace at all"
        " is a cost per event published, not per delivery: node B serving one watcher less"
        f" that watcher's deliveries, {_us(follow)} us per event published, against node"
        f" {WRITER}'s ingest (serving none) of {_us(ingest)} us",
        "Together, the serving nodes' CPU per delivery with the watchers split between two"
        " nodes against one node:"
        f" {_ratio(result.median(FanoutRound.serving_growth))} (a second serving node adds"
        f" {_us(result.median(FanoutRound.added_us_per_event))} us per event published:"
        " its following, and the two serving nodes taking turns on two cores); node B"
        " following the workspace for no watcher (one node) spends"
        f" {_us(result.median(FanoutRound.idle_follow_us_per_event))} us per event published",
        f"{len(result.rounds)} rounds of the four layouts (the order reversed every other"
        f" round), each of {result.events:,} events after {result.warm:,} warm-up events, once"
        f" {result.fill:,} events published to the watchers of both nodes (not measured) have"
        " filled both nodes' in-memory tails; each figure is the median of per-round figures."
        " CPU is read from each process's CPU clock",
        machine_note(result.broker_warnings, result.load_average),
    )
    growth_goal, follow_goal = fanout_goal_descriptions(result.watchers)
    goals = (
        Goal(
            growth_goal,
            MISSING
            if growth is None
            else f"{growth:.2f}x (median of per-round ratios; {_us(follower)} vs"
            f" {_us(writer)} us/delivery)",
            passed=growth is not None and growth <= FANOUT_DELIVERY_GROWTH_GOAL,
        ),
        Goal(
            follow_goal,
            MISSING
            if follow_ratio is None
            else f"{follow_ratio:.2f}x (median of per-round ratios; {_us(follow)} vs"
            f" {_us(ingest)} us per event published)",
            passed=follow_ratio is not None and follow_ratio <= FOLLOW_COST_GOAL,
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
        return _missing_report(
            "cluster-fanout",
            "fan-out over one node and over two",
            fanout_goal_descriptions(FANOUT_WATCHERS),
            str(exc),
        )
    return fanout_report(result)
