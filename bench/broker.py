"""The broker end to end: durable ingest, fan-out, publish-to-watcher and catch-to-worker latency.

Every participant is its own process on 127.0.0.1: the broker (``pierhead serve`` on a
temporary store, SQLite with ``synchronous=full``), one publisher, and the watchers, several
connections to a process. The baseline is a bare websockets relay (:mod:`bench._relay`) that
forwards every message of one publisher connection, unparsed and unstored, to N subscriber
connections. The broker and the relay are driven by the same client code (:mod:`bench._peers`)
with the same encoded frames, and their repeats are interleaved so that drift in clock speed or
background load hits both alike.

Four reports, one per figure: ``broker-ingest``, ``broker-fanout``, ``broker-latency`` and
``broker-catch``.
"""

from __future__ import annotations

import itertools
import math
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import schema

from ._peers import LOG_EVENT, envelope_frame
from ._plots import Plot, Point, Series
from ._procs import Child, ChildError, Fleet, run_queue_wait_s
from ._report import Goal, Report, spread_header
from ._stats import (
    Comparison,
    Latencies,
    MachineClock,
    Rates,
    Sample,
    load_average,
    machine_note,
    rate_row,
)

Target = Literal["broker", "relay"]
CodecName = Literal["json", "msgpack"]
RelayFrames = Literal["publish", "events"]
"""``publish``: the worker's frames, as the broker gets them. ``events``: the frames a watcher
gets from the broker, each event in its full envelope (see ``bench._peers.Publisher``)."""

CODEC_LABELS: Final[dict[CodecName, str]] = {"json": "JSON", "msgpack": "MessagePack"}
BROKER: Final = "pierhead broker"
RELAY: Final = "bare websockets relay"

BATCH: Final = 100
"""Events in one ``publish`` frame."""
WINDOW: Final = 20
"""Most ``publish`` frames a flooding worker has unacknowledged."""

REPEATS: Final = 3
QUICK_REPEATS: Final = 1

INGEST_CODECS: Final[tuple[CodecName, ...]] = ("json", "msgpack")
INGEST_EVENTS: Final = 200_000
INGEST_WARM: Final = 5_000
QUICK_INGEST_EVENTS: Final = 2_000
QUICK_INGEST_WARM: Final = 500
INGEST_GOAL: Final = 30_000
"""Durable events per second from one worker, JSON."""

FANOUT_WATCHERS: Final = (10, 100)
FANOUT_DELIVERIES: Final = 1_500_000
"""Events times watchers per repeat: fewer events for more watchers, so each run is as long."""
FANOUT_WARM: Final = 1_000
QUICK_FANOUT_DELIVERIES: Final = 20_000
QUICK_FANOUT_WARM: Final = 200
FANOUT_GOAL: Final = 0.5
"""The broker's deliveries per second, as a fraction of the relay's to as many subscribers."""
PUBLISHER_RUN_ID: Final = "bench-publisher"

ENVELOPE_BYTES: Final = {
    "publish": len(schema.JSON_CODEC.encode(schema.Publish(seq=1, events=[LOG_EVENT] * BATCH)))
    // BATCH,
    "events": len(
        envelope_frame(
            schema.JSON_CODEC,
            [LOG_EVENT] * BATCH,
            workspace="bench-fanout10-1",
            run_id=PUBLISHER_RUN_ID,
        )
    )
    // BATCH,
}
"""JSON bytes per event of the flood: in a ``publish`` frame and in an ``events`` frame."""

SWEEP_WATCHERS: Final = (1, 10, 30, 100)
"""Watcher counts of ``broker-fanout-watchers``, each with :data:`FANOUT_DELIVERIES`."""
CONNECTIONS_PER_PROCESS: Final = 25
MAX_WATCHER_PROCESSES: Final = 4

LATENCY_RATE: Final = 2_000
"""Events per second, published in small batches every :data:`TICK_S`."""
LATENCY_WATCHERS: Final = 10
LATENCY_SECONDS: Final = 3.0
LATENCY_WARM_SECONDS: Final = 0.5
QUICK_LATENCY_SECONDS: Final = 0.5
QUICK_LATENCY_WARM_SECONDS: Final = 0.25
LATENCY_GOAL_MS: Final = 20.0
"""p99 of publish-to-watcher latency."""
TICK_S: Final = 0.002
SWEEP_RATES: Final = (500, 1_000, 2_000, 5_000, 10_000)
"""Events per second of ``broker-latency-rates``, each measured as ``broker-latency`` is."""

CATCH_ROUND_TRIPS: Final = 100
"""Catch and release requests per repeat (half of each)."""
CATCH_WARM: Final = 10
QUICK_CATCH_ROUND_TRIPS: Final = 20
QUICK_CATCH_WARM: Final = 4
CATCH_GAP_S: Final = 0.01
CATCH_GOAL_MS: Final = 50.0
"""p99 of catch-to-worker latency."""

STARTUP_TIMEOUT_S: Final = 30.0
BASE_DEADLINE_S: Final = 60.0
"""A client's deadline is this plus time proportional to its work (see :func:`_deadline`)."""


# Figures ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IngestMeasurement:
    comparisons: tuple[Comparison, ...]
    """One per codec."""
    warm: int
    repeats: int
    frame_bytes: dict[str, int]
    broker_warnings: int
    load_average: float | None
    """The machine's 1-minute load average when the measurement began."""


@dataclass(frozen=True, slots=True)
class FanoutMeasurement:
    comparisons: tuple[Comparison, ...]
    """One per number of watchers."""
    watchers: tuple[int, ...]
    warm: int
    repeats: int
    broker_warnings: int
    load_average: float | None
    """The machine's 1-minute load average when the measurement began."""


@dataclass(frozen=True, slots=True)
class LatencyMeasurement:
    broker: Latencies
    relay: Latencies
    repeats: int
    warm: int
    """Per repeat: events (or requests) sent before the measured ones, not counted."""
    count: int
    """Per repeat: events (or requests) measured."""
    broker_warnings: int
    load_average: float | None
    """The machine's 1-minute load average when the measurement began."""

    @property
    def receivers(self) -> int:
        """Clients that timed each event (or request): the watchers, or the one worker."""
        return len(self.broker.samples_ms) // max(1, self.count * self.repeats)


# Processes ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Servers:
    processes: dict[Target, Child]
    urls: dict[Target, str]
    store: Child | None = None
    """A server the broker keeps its store in (Redis), whose CPU each stream measures too."""

    @property
    def broker_warnings(self) -> int:
        return self.processes["broker"].log_warnings


@contextmanager
def _servers() -> Iterator[Servers]:
    """A broker on a temporary store and a relay, both stopped (and the store removed) on exit."""
    with (
        tempfile.TemporaryDirectory(prefix="pierhead-bench-") as data,
        Fleet() as fleet,
    ):
        broker, broker_port = fleet.broker(Path(data), timeout=STARTUP_TIMEOUT_S)
        relay, relay_port = fleet.relay(timeout=STARTUP_TIMEOUT_S)
        urls: dict[Target, str] = {
            "broker": f"ws://127.0.0.1:{broker_port}",
            "relay": f"ws://127.0.0.1:{relay_port}",
        }
        yield Servers({"broker": broker, "relay": relay}, urls)


_names = itertools.count(1)


def _workspace(label: str) -> str:
    """A fresh workspace for each run, so that no run sees another's events."""
    return f"bench-{label}-{next(_names)}"


def _deadline(work: int) -> float:
    """Seconds a client may take for ``work`` events (or deliveries); generous, but bounded."""
    return BASE_DEADLINE_S + work / 5_000


def watcher_processes(watchers: int) -> list[int]:
    """Connections per watcher process: a few processes, each holding many connections."""
    if watchers <= 0:
        return []
    processes = min(MAX_WATCHER_PROCESSES, max(2, math.ceil(watchers / CONNECTIONS_PER_PROCESS)))
    processes = min(processes, watchers)
    share, extra = divmod(watchers, processes)
    return [share + (1 if index < extra else 0) for index in range(processes)]


@dataclass(frozen=True, slots=True)
class Stream:
    """One worker publishing to a workspace that ``watchers`` connections follow."""

    target: Target
    codec: CodecName
    mode: Literal["flood", "paced"]
    watchers: int
    warm: int
    events: int
    rate: int = 0
    relay_frames: RelayFrames = "publish"
    """What the publisher sends the relay (the broker always gets ``publish`` frames)."""
    error_every: int = 0
    """A flood of ``LogRecord`` events sends an error ``WorkspaceEvent`` at every seq that is a
    multiple of this (0: none); see ``bench._peers``."""


@dataclass(frozen=True, slots=True)
class StreamOutcome:
    start_ns: int
    """When the publisher began the measured events."""
    acked_ns: int
    """When the last of them was acknowledged (broker) or handed to the socket (relay)."""
    last_ns: int
    """When the last of them reached the last watcher; 0 without watchers."""
    delivered: int
    latencies_us: tuple[int, ...]
    server_cpu_s: float | None
    server_wait_s: float | None
    client_cpu_s: float
    other_load: float | None
    window_s: float
    """Wall time from the publisher's start to the last result: the span of the CPU figures."""
    store_cpu_s: float | None = None
    """CPU time of :attr:`Servers.store` over the same span; None without one or unknown."""
    others_cpu_s: Mapping[str, float | None] = field(default_factory=dict)
    """CPU time of each of :attr:`Placement.others` over the same span, by name."""
    frames_by_url: Mapping[str, int] = field(default_factory=dict)
    """Frames that brought the measured events to the watchers, by the URL they followed."""

    @property
    def end_ns(self) -> int:
        """The last arrival at a watcher, or without watchers the last acknowledgement."""
        return self.last_ns or self.acked_ns

    @property
    def elapsed_s(self) -> float:
        return max(self.end_ns - self.start_ns, 1) / 1e9

    def sample(self, count: int) -> Sample:
        """``count`` events (or deliveries) over the measured span, and the loads meanwhile."""
        window = max(self.window_s, 1e-9)
        server = None if self.server_cpu_s is None else self.server_cpu_s / window
        wait = None if self.server_wait_s is None else self.server_wait_s / window
        client = self.client_cpu_s / window
        return Sample(count / self.elapsed_s, server, wait, client, self.other_load)


@dataclass(frozen=True, slots=True)
class Placement:
    """Where the clients of one stream connect, and whose CPU is measured over it."""

    server: Child
    """The server the publisher connects to; its CPU and CPU wait are the server columns."""
    publisher_url: str
    watchers: tuple[tuple[str, int], ...]
    """(URL, watcher connections there), per server the watchers connect to."""
    store: Child | None = None
    """A server the broker keeps its store in (Redis)."""
    others: Mapping[str, Child] = field(default_factory=dict)
    """Further servers whose CPU is measured, by name: the other nodes of a cluster."""

    @classmethod
    def single(cls, servers: Servers, target: Target, watchers: int) -> Placement:
        """Everyone on the one server of ``target``."""
        url = servers.urls[target]
        return cls(servers.processes[target], url, ((url, watchers),), servers.store)


def _cpu_spent(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


def _stream(servers: Servers, stream: Stream, label: str) -> StreamOutcome:
    """Run one publisher and its watchers, all on one server, to the end."""
    return run_stream(stream, Placement.single(servers, stream.target, stream.watchers), label)


def run_stream(stream: Stream, placement: Placement, label: str) -> StreamOutcome:
    """Run one publisher and its watchers to the end; every client process is gone on return."""
    if sum(count for _, count in placement.watchers) != stream.watchers:
        raise ValueError(f"{stream.watchers} watchers, placed: {placement.watchers}")
    workspace = _workspace(label)
    deadline = _deadline(stream.events * max(1, stream.watchers) + stream.warm)
    timeout = deadline + 5.0
    common = {
        "target": stream.target,
        "codec": stream.codec,
        "deadline_s": deadline,
        "warm": stream.warm,
        "events": stream.events,
    }
    watcher_urls = [
        (url, connections)
        for url, count in placement.watchers
        for connections in watcher_processes(count)
    ]
    with Fleet() as fleet:
        watchers = [
            fleet.peer(
                f"watchers-{index}",
                "watch",
                {
                    **common,
                    "url": url,
                    "pattern": workspace,
                    "connections": connections,
                    "payload_kind": "log" if stream.mode == "flood" else "scalar",
                    "latency": stream.mode == "paced",
                },
            )
            for index, (url, connections) in enumerate(watcher_urls)
        ]
        publisher = fleet.peer(
            "publisher",
            "publish",
            {
                **common,
                "url": placement.publisher_url,
                "workspace": workspace,
                "run_id": PUBLISHER_RUN_ID,
                "mode": stream.mode,
                "batch": BATCH,
                "window": WINDOW,
                "rate": stream.rate,
                "tick_s": TICK_S,
                "frames": stream.relay_frames,
                "error_every": stream.error_every,
            },
        )
        for child in (publisher, *watchers):
            child.expect("ready", STARTUP_TIMEOUT_S)
        publisher.send("warm")
        publisher.expect("warmed", timeout)
        for child in watchers:
            child.expect("warmed", timeout)
        server, store = placement.server, placement.store
        machine = MachineClock()
        server_cpu, server_waits = server.cpu_seconds(), server.run_queue_waits()
        store_cpu = None if store is None else store.cpu_seconds()
        others_cpu = {name: other.cpu_seconds() for name, other in placement.others.items()}
        publisher.send("go")
        published = publisher.expect("result", timeout)
        received = [child.expect("result", timeout) for child in watchers]
        server_cpu_after, server_waits_after = server.cpu_seconds(), server.run_queue_waits()
        store_cpu_after = None if store is None else store.cpu_seconds()
        others_cpu_after = {name: other.cpu_seconds() for name, other in placement.others.items()}
    server_cpu_s = _cpu_spent(server_cpu, server_cpu_after)
    store_cpu_s = _cpu_spent(store_cpu, store_cpu_after)
    others_cpu_s = {
        name: _cpu_spent(others_cpu[name], others_cpu_after[name]) for name in placement.others
    }
    client_cpu_s = sum(float(result["cpu_s"]) for result in (published, *received))
    # The store's server and the other nodes are the benchmark's own work, not other load.
    own_server_cpu_s = (
        None
        if server_cpu_s is None
        else server_cpu_s + (store_cpu_s or 0.0) + sum(v or 0.0 for v in others_cpu_s.values())
    )
    machine.stop(own_server_cpu_s, client_cpu_s)
    delivered = sum(int(result["events"]) for result in received)
    frames_by_url: dict[str, int] = {}
    for (url, _), result in zip(watcher_urls, received, strict=True):
        frames_by_url[url] = frames_by_url.get(url, 0) + int(result["frames"])
    if delivered != stream.events * stream.watchers:
        raise ChildError(
            f"{stream.target}: {delivered} deliveries, expected"
            f" {stream.events} events x {stream.watchers} watchers"
        )
    return StreamOutcome(
        start_ns=int(published["start_ns"]),
        acked_ns=int(published["end_ns"]),
        last_ns=max((int(result["last_ns"]) for result in received), default=0),
        delivered=delivered,
        latencies_us=tuple(
            int(value) for result in received for value in result.get("latencies_us", ())
        ),
        server_cpu_s=server_cpu_s,
        server_wait_s=run_queue_wait_s(server_waits, server_waits_after),
        client_cpu_s=client_cpu_s,
        other_load=machine.other_load,
        window_s=machine.wall_s,
        store_cpu_s=store_cpu_s,
        others_cpu_s=others_cpu_s,
        frames_by_url=frames_by_url,
    )


# Ingest -------------------------------------------------------------------------------------


def ingest_stream(
    servers: Servers,
    target: Target,
    codec: CodecName,
    warm: int,
    events: int,
    *,
    error_every: int = 0,
) -> StreamOutcome:
    """One repeat of durable ingest: ``events`` after ``warm`` from one flooding worker (with
    an error ``WorkspaceEvent`` at every ``error_every``-th seq, if not 0)."""
    # The broker is done when the cumulative ack covers the last event (durable ingest, no
    # watchers); the relay acknowledges nothing, so it is done when its one subscriber has them.
    watchers = 0 if target == "broker" else 1
    stream = Stream(target, codec, "flood", watchers, warm, events, error_every=error_every)
    return _stream(servers, stream, "ingest")


def _ingest(servers: Servers, target: Target, codec: CodecName, warm: int, events: int) -> Sample:
    return ingest_stream(servers, target, codec, warm, events).sample(events)


def measure_ingest(
    *,
    events: int = INGEST_EVENTS,
    warm: int = INGEST_WARM,
    repeats: int = REPEATS,
    codecs: Sequence[CodecName] = INGEST_CODECS,
) -> IngestMeasurement:
    """Durable ingest from one worker against the relay, per codec."""
    samples: dict[tuple[Target, CodecName], list[Sample]] = {
        (target, codec): [] for codec in codecs for target in ("broker", "relay")
    }
    load = load_average()
    with _servers() as servers:
        for _ in range(repeats):
            for codec in codecs:
                for target in ("relay", "broker"):
                    samples[target, codec].append(_ingest(servers, target, codec, warm, events))
        warnings = servers.broker_warnings
    comparisons = tuple(
        Comparison(
            label=CODEC_LABELS[codec],
            events=events,
            broker=Rates(f"{BROKER}, {CODEC_LABELS[codec]}", tuple(samples["broker", codec])),
            relay=Rates(f"{RELAY}, {CODEC_LABELS[codec]}", tuple(samples["relay", codec])),
        )
        for codec in codecs
    )
    frame = schema.Publish(seq=1, events=[LOG_EVENT] * BATCH)
    frame_bytes = {
        CODEC_LABELS[codec]: len(
            (schema.JSON_CODEC if codec == "json" else schema.MSGPACK_CODEC).encode(frame)
        )
        for codec in codecs
    }
    return IngestMeasurement(comparisons, warm, repeats, frame_bytes, warnings, load)


LOAD_NOTE: Final = (
    "Load columns, in cores over the run, median (min..max) over repeats: server CPU = CPU"
    " time of the broker (or relay) process; server CPU wait = time its threads were ready to"
    " run but had no CPU; client CPU = the publisher and watcher processes together; other CPU"
    " = everything else on the machine (other work competing for the same cores)"
)


def ingest_report(result: IngestMeasurement) -> Report:
    first = result.comparisons[0]
    sizes = ", ".join(f"{size:,} B {label}" for label, size in result.frame_bytes.items())
    notes = (
        f"One worker publishes `publish` frames of {BATCH} `LogRecord` events ({sizes} per frame)"
        f" with at most {WINDOW} frames unacknowledged; an event counts once the cumulative"
        " `ack` covering it arrives, i.e. once it is committed (SQLite WAL, synchronous=full)",
        f"Baseline: {RELAY} forwarding the same encoded frames from one publisher connection to"
        f" one subscriber, counted as {BATCH} events per frame received",
        f"Each participant is a separate process on 127.0.0.1; {result.repeats} interleaved"
        f" repeats of {first.events:,} events after {result.warm:,} warm-up events",
        LOAD_NOTE,
        machine_note(result.broker_warnings, result.load_average),
    )
    header = (
        "variant",
        "min events/s",
        "median events/s",
        "max events/s",
        "median vs relay",
        "server CPU",
        "server CPU wait",
        "client CPU",
        "other CPU",
    )
    rows: list[tuple[str, ...]] = []
    for comparison in result.comparisons:
        rows.append(rate_row(comparison.broker, comparison.ratio))
        rows.append(rate_row(comparison.relay, 1.0))
    goals = (
        Goal(
            description=f"{first.broker.name} >= {INGEST_GOAL:,} events/s",
            measured=f"{first.broker.median_rate:,.0f} events/s ({first.ratio:.2f}x relay)",
            passed=first.broker.median_rate >= INGEST_GOAL,
        ),
    )
    return Report(
        name="broker-ingest",
        title=f"durable ingest from one worker, batches of {BATCH} events",
        notes=notes,
        header=header,
        rows=tuple(rows),
        goals=goals,
    )


def run_ingest(*, quick: bool) -> Report:
    if quick:
        return ingest_report(
            measure_ingest(
                events=QUICK_INGEST_EVENTS, warm=QUICK_INGEST_WARM, repeats=QUICK_REPEATS
            )
        )
    return ingest_report(measure_ingest())


# Fan-out ------------------------------------------------------------------------------------


def fanout_events(watchers: int, deliveries: int) -> int:
    """Events per repeat for ``watchers``: about ``deliveries`` in all, whole batches."""
    return max(BATCH, deliveries // watchers // BATCH * BATCH)


def measure_fanout(
    *,
    watchers: Sequence[int] = FANOUT_WATCHERS,
    deliveries: int = FANOUT_DELIVERIES,
    warm: int = FANOUT_WARM,
    repeats: int = REPEATS,
    envelope_relay: bool = True,
) -> FanoutMeasurement:
    """Delivered events per second, summed over watchers, against the relay (and, with
    ``envelope_relay``, against the relay forwarding ``events`` frames)."""
    variants: list[tuple[Target, RelayFrames]] = [("relay", "publish")]
    if envelope_relay:
        variants.append(("relay", "events"))
    variants.append(("broker", "publish"))
    samples: dict[tuple[Target, RelayFrames, int], list[Sample]] = {
        (target, frames, count): [] for count in watchers for target, frames in variants
    }
    load = load_average()
    with _servers() as servers:
        for _ in range(repeats):
            for count in watchers:
                events = fanout_events(count, deliveries)
                for target, frames in variants:
                    stream = Stream(
                        target, "json", "flood", count, warm, events, relay_frames=frames
                    )
                    outcome = _stream(servers, stream, f"fanout{count}")
                    samples[target, frames, count].append(outcome.sample(outcome.delivered))
        warnings = servers.broker_warnings
    comparisons = tuple(
        Comparison(
            label=f"{count} watchers",
            events=fanout_events(count, deliveries),
            broker=Rates(f"{BROKER}, JSON", tuple(samples["broker", "publish", count])),
            relay=Rates(f"{RELAY}, JSON", tuple(samples["relay", "publish", count])),
            envelope_relay=Rates(
                f"{RELAY}, JSON, `events` frames", tuple(samples["relay", "events", count])
            )
            if envelope_relay
            else None,
        )
        for count in watchers
    )
    return FanoutMeasurement(comparisons, tuple(watchers), warm, repeats, warnings, load)


def _fanout_table(
    result: FanoutMeasurement,
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """Notes, header and rows: a broker row and a relay row (or two) per number of
    watchers."""
    layout = "; ".join(
        f"{count}: {len(watcher_processes(count))} processes" for count in result.watchers
    )
    events = ", ".join(f"{c.events:,} for {c.label}" for c in result.comparisons)
    notes = [
        f"One worker floods `publish` frames of {BATCH} `LogRecord` events (at most {WINDOW}"
        " unacknowledged) to one workspace; every watcher follows it (`subscribe` from"
        " `latest`) and decodes each `events` frame far enough to count its events",
        f"Baseline: {RELAY} forwarding the same encoded frames to as many subscribers, which"
        " decode them the same way; it waits for a subscriber whose socket buffer is full",
    ]
    envelope = [c for c in result.comparisons if c.envelope_ratio is not None]
    if envelope:
        against = ", ".join(f"{c.envelope_ratio:.0%} at {c.label}" for c in envelope)
        notes.append(
            f"`events` frames (no goal): the relay again, its publisher sending {BATCH}-event"
            " `events` frames, each event in the envelope a watcher gets from the broker"
            f" ({ENVELOPE_BYTES['publish']} bytes per event in a `publish` frame,"
            f" {ENVELOPE_BYTES['events']} in an `events` frame). The watchers pay for every"
            " byte they decode, so this is the relay moving what the broker's watchers"
            f" receive; the broker's deliveries against it: {against}"
        )
    notes += [
        "Deliveries per second = events received, summed over watchers, over the time from the"
        f" first publish to the last arrival; events per repeat: {events}",
        f"Watcher processes (many connections each): {layout}; {result.repeats} interleaved"
        f" repeats after {result.warm:,} warm-up events",
        LOAD_NOTE,
        machine_note(result.broker_warnings, result.load_average),
    ]
    header = (
        "variant",
        "watchers",
        *spread_header("deliveries/s"),
        "median vs relay",
        "server CPU",
        "server CPU wait",
        "client CPU",
        "other CPU",
    )
    rows: list[tuple[str, ...]] = []
    for comparison, count in zip(result.comparisons, result.watchers, strict=True):
        rows.append(rate_row(comparison.broker, comparison.ratio, str(count)))
        rows.append(rate_row(comparison.relay, 1.0, str(count)))
        if comparison.envelope_relay is not None:
            ratio = comparison.envelope_relay.median_rate / comparison.relay.median_rate
            rows.append(rate_row(comparison.envelope_relay, ratio, str(count)))
    return tuple(notes), header, tuple(rows)


def fanout_report(result: FanoutMeasurement) -> Report:
    notes, header, rows = _fanout_table(result)
    goals = tuple(
        Goal(
            description=f"{BROKER} to {comparison.label} >= {FANOUT_GOAL:.0%} of the relay",
            measured=f"{comparison.ratio:.0%} ({comparison.broker.median_rate:,.0f}"
            f" vs {comparison.relay.median_rate:,.0f} deliveries/s)",
            passed=comparison.ratio >= FANOUT_GOAL,
        )
        for comparison in result.comparisons
    )
    return Report(
        name="broker-fanout",
        title="events delivered to many watchers",
        notes=notes,
        header=header,
        rows=rows,
        goals=goals,
    )


def run_fanout(*, quick: bool) -> Report:
    if quick:
        return fanout_report(
            measure_fanout(
                deliveries=QUICK_FANOUT_DELIVERIES, warm=QUICK_FANOUT_WARM, repeats=QUICK_REPEATS
            )
        )
    return fanout_report(measure_fanout())


# Fan-out against the number of watchers -----------------------------------------------------


def fanout_plot(*series: Series) -> Plot:
    """Deliveries per second against watchers; any system's fan-out may add its series."""
    return Plot(
        file="fanout-vs-watchers",
        title="Fan-out from one publisher: deliveries per second by watcher count",
        x_label="watchers following the workspace",
        y_label="deliveries per second (events x watchers)",
        series=series,
        log_x=True,
    )


def fanout_sweep_report(result: FanoutMeasurement) -> Report:
    notes, header, rows = _fanout_table(result)
    by_count = list(zip(result.watchers, result.comparisons, strict=True))
    broker = Series(BROKER, tuple(Point.of(n, c.broker.rates) for n, c in by_count))
    relay = Series(RELAY, tuple(Point.of(n, c.relay.rates) for n, c in by_count))
    return Report(
        name="broker-fanout-watchers",
        title="deliveries per second by watcher count",
        notes=(*notes, "No goal: the goals are in `broker-fanout`; this shows the trend"),
        header=header,
        rows=rows,
        goals=(),
        plots=(fanout_plot(broker, relay),),
    )


def run_fanout_sweep(*, quick: bool) -> Report:
    if quick:
        return fanout_sweep_report(
            measure_fanout(
                watchers=SWEEP_WATCHERS,
                deliveries=QUICK_FANOUT_DELIVERIES,
                warm=QUICK_FANOUT_WARM,
                repeats=QUICK_REPEATS,
                envelope_relay=False,
            )
        )
    return fanout_sweep_report(measure_fanout(watchers=SWEEP_WATCHERS, envelope_relay=False))


# Publish-to-watcher latency -----------------------------------------------------------------


def measure_latency(
    *,
    rate: int = LATENCY_RATE,
    seconds: float = LATENCY_SECONDS,
    warm_seconds: float = LATENCY_WARM_SECONDS,
    watchers: int = LATENCY_WATCHERS,
    repeats: int = REPEATS,
) -> LatencyMeasurement:
    """Send time to arrival at each watcher, at a paced rate, against the relay."""
    warm, events = round(rate * warm_seconds), round(rate * seconds)
    samples: dict[Target, list[list[float]]] = {"broker": [], "relay": []}
    load = load_average()
    with _servers() as servers:
        for _ in range(repeats):
            for target in ("relay", "broker"):
                stream = Stream(target, "json", "paced", watchers, warm, events, rate)
                outcome = _stream(servers, stream, "latency")
                samples[target].append([value / 1000 for value in outcome.latencies_us])
        warnings = servers.broker_warnings
    return LatencyMeasurement(
        broker=Latencies.of(f"{BROKER}, JSON", samples["broker"]),
        relay=Latencies.of(f"{RELAY}, JSON", samples["relay"]),
        repeats=repeats,
        warm=warm,
        count=events,
        broker_warnings=warnings,
        load_average=load,
    )


def latency_row(latencies: Latencies, baseline_p99_ms: float, *cells: str) -> tuple[str, ...]:
    """A row of :func:`latency_header`'s table: ``latencies`` against a baseline's median p99."""
    return (
        latencies.name,
        *cells,
        f"{len(latencies.samples_ms):,}",
        *latencies.p50_spread.cells(".2f"),
        *latencies.p99_spread.cells(".2f"),
        f"{latencies.p99_spread.median / baseline_p99_ms:.2f}x" if baseline_p99_ms > 0 else "n/a",
        f"{latencies.p99_ms:.2f}",
        f"{latencies.max_ms:.2f}",
    )


def _latency_rows(result: LatencyMeasurement, *cells: str) -> tuple[tuple[str, ...], ...]:
    relay_p99 = result.relay.p99_spread.median
    return tuple(
        latency_row(latencies, relay_p99, *cells) for latencies in (result.broker, result.relay)
    )


def latency_header(baseline: str) -> tuple[str, ...]:
    """Columns of a latency table whose rows compare their median p99 with ``baseline``'s."""
    return (
        "variant",
        "samples",
        *spread_header("p50 ms"),
        *spread_header("p99 ms"),
        f"median p99 vs {baseline}",
        "p99 of all samples ms",
        "max of all samples ms",
    )


LATENCY_HEADER: Final = latency_header("relay")
LATENCY_NOTE: Final = (
    "p50 and p99 of each repeat (nearest rank), min/median/max over repeats; the last two"
    " columns pool the samples of every repeat, and the goal is judged on that pooled p99"
)


@dataclass(frozen=True, slots=True)
class LatencyKind:
    """What one latency report times: all that sets ``broker-latency`` and ``broker-catch``
    apart. Their figures, table and goal are alike (see :func:`latency_report`)."""

    name: str
    title: str
    setup: tuple[str, ...]
    """Notes on what is timed and on the baseline, ahead of the notes every latency report has."""
    sent: str
    """What each repeat sends and times, plural: ``events`` or ``requests``."""
    goal_ms: float
    """The broker's p99 over the samples of every repeat must be below this."""


def publish_latency(rate: int, watchers: int) -> LatencyKind:
    """``broker-latency``: ``rate`` events per second, each timed by ``watchers`` watchers."""
    return LatencyKind(
        name="broker-latency",
        title=f"publish-to-watcher latency at {rate:,} events/s",
        setup=(
            f"One worker publishes {rate:,} `Scalar` events per second in small batches (one every"
            f" {TICK_S * 1000:g} ms); each carries its send time (`time.time_ns`) in `step`, and"
            f" each of {watchers} watchers subtracts it from its own clock on arrival. Broker"
            " events are committed (synchronous=full) before they are sent",
            f"Baseline: {RELAY} forwarding the same frames to as many subscribers",
        ),
        sent="events",
        goal_ms=LATENCY_GOAL_MS,
    )


CATCH_LATENCY: Final = LatencyKind(
    name="broker-catch",
    title="catch-to-worker latency",
    setup=(
        "An operator (watcher session) sends `catch` and `release` for a workspace in turn,"
        f" waiting {CATCH_GAP_S * 1000:g}-{CATCH_GAP_S * 1500:g} ms after each (after its `ok`"
        " from the broker); the"
        " workspace's worker times the arrival of each `semaphores` push against the send"
        " time (`time.time_ns`, same machine). The broker stores the change durably first",
        f"Baseline: {RELAY} forwarding the same `catch`/`release` frames to the worker",
    ),
    sent="requests",
    goal_ms=CATCH_GOAL_MS,
)


def latency_report(result: LatencyMeasurement, kind: LatencyKind) -> Report:
    notes = (
        *kind.setup,
        f"{result.repeats} interleaved repeats of {result.count:,} {kind.sent} after"
        f" {result.warm:,} warm-up {kind.sent}",
        LATENCY_NOTE,
        machine_note(result.broker_warnings, result.load_average),
    )
    return Report(
        name=kind.name,
        title=kind.title,
        notes=notes,
        header=LATENCY_HEADER,
        rows=_latency_rows(result),
        goals=(
            Goal(
                description=f"{result.broker.name} p99 < {kind.goal_ms:g} ms",
                measured=f"{result.broker.p99_ms:.2f} ms (relay {result.relay.p99_ms:.2f} ms)",
                passed=result.broker.p99_ms < kind.goal_ms,
            ),
        ),
    )


def run_latency(*, quick: bool) -> Report:
    if quick:
        result = measure_latency(
            seconds=QUICK_LATENCY_SECONDS,
            warm_seconds=QUICK_LATENCY_WARM_SECONDS,
            repeats=QUICK_REPEATS,
        )
    else:
        result = measure_latency()
    return latency_report(result, publish_latency(LATENCY_RATE, result.receivers))


# Publish-to-watcher latency against the rate ------------------------------------------------


@dataclass(frozen=True, slots=True)
class LatencySweep:
    """``broker-latency``'s measurement at each of several rates."""

    rates: tuple[int, ...]
    measurements: tuple[LatencyMeasurement, ...]
    """One per rate, in the same order, each on a fresh broker and relay."""
    watchers: int

    @property
    def by_rate(self) -> tuple[tuple[int, LatencyMeasurement], ...]:
        return tuple(zip(self.rates, self.measurements, strict=True))


def measure_latency_sweep(
    *,
    rates: Sequence[int] = SWEEP_RATES,
    seconds: float = LATENCY_SECONDS,
    warm_seconds: float = LATENCY_WARM_SECONDS,
    watchers: int = LATENCY_WATCHERS,
    repeats: int = REPEATS,
) -> LatencySweep:
    """Publish-to-watcher latency at each rate, against the relay at the same rate."""
    measurements = tuple(
        measure_latency(
            rate=rate,
            seconds=seconds,
            warm_seconds=warm_seconds,
            watchers=watchers,
            repeats=repeats,
        )
        for rate in rates
    )
    return LatencySweep(tuple(rates), measurements, watchers)


def latency_plot(*series: Series, watchers: int) -> Plot:
    return Plot(
        file="latency-vs-rate",
        title=f"Publish-to-watcher latency by publish rate, {watchers} watchers",
        x_label="events published per second",
        y_label="latency, ms (p50 and p99 of each repeat)",
        series=series,
        log_x=True,
        log_y=True,
    )


def _percentile_series(
    label: str, quantile: Literal[50, 99], by_rate: Sequence[tuple[int, Latencies]]
) -> Series:
    return Series(
        f"{label} p{quantile}",
        tuple(
            Point.of(rate, latencies.repeat_p50_ms if quantile == 50 else latencies.repeat_p99_ms)
            for rate, latencies in by_rate
        ),
        system=label,
    )


def latency_sweep_report(result: LatencySweep) -> Report:
    first = result.measurements[0]
    counts = ", ".join(
        f"{m.count:,} after {m.warm:,} warm-up at {rate:,}/s" for rate, m in result.by_rate
    )
    loads = ", ".join(
        "unknown" if m.load_average is None else f"{m.load_average:.2f}"
        for m in result.measurements
    )
    warnings = sum(m.broker_warnings for m in result.measurements)
    notes = (
        "At each rate, as in `broker-latency`: one worker publishes `Scalar` events in small"
        f" batches (one every {TICK_S * 1000:g} ms), each carrying its send time, and each of"
        f" {result.watchers} watchers subtracts it from its own clock on arrival. Broker events"
        " are committed (synchronous=full) before they are sent",
        f"Baseline: {RELAY} forwarding the same frames to as many subscribers, at the same rate",
        f"Each rate on a fresh broker and relay, {first.repeats} interleaved repeats; events per"
        f" repeat: {counts}",
        LATENCY_NOTE,
        f"Broker log lines at warning level or above: {warnings}; 1-minute load average before"
        f" each rate: {loads}",
        "No goal: the goal is in `broker-latency`; this shows the trend",
    )
    broker = [(rate, m.broker) for rate, m in result.by_rate]
    relay = [(rate, m.relay) for rate, m in result.by_rate]
    series = (
        _percentile_series(BROKER, 50, broker),
        _percentile_series(BROKER, 99, broker),
        _percentile_series(RELAY, 50, relay),
        _percentile_series(RELAY, 99, relay),
    )
    return Report(
        name="broker-latency-rates",
        title=f"publish-to-watcher latency by publish rate, {result.watchers} watchers",
        notes=notes,
        header=(LATENCY_HEADER[0], "events/s", *LATENCY_HEADER[1:]),
        rows=tuple(row for rate, m in result.by_rate for row in _latency_rows(m, f"{rate:,}")),
        goals=(),
        plots=(latency_plot(*series, watchers=result.watchers),),
    )


def run_latency_sweep(*, quick: bool) -> Report:
    if quick:
        return latency_sweep_report(
            measure_latency_sweep(
                seconds=QUICK_LATENCY_SECONDS,
                warm_seconds=QUICK_LATENCY_WARM_SECONDS,
                repeats=QUICK_REPEATS,
            )
        )
    return latency_sweep_report(measure_latency_sweep())


# Catch-to-worker latency --------------------------------------------------------------------


def _catch_round(
    servers: Servers, target: Target, *, warm: int, count: int, gap_s: float
) -> list[float]:
    url = servers.urls[target]
    return catch_round(target, url, url, warm=warm, count=count, gap_s=gap_s)


def catch_round(
    target: Target, worker_url: str, operator_url: str, *, warm: int, count: int, gap_s: float
) -> list[float]:
    """Latencies (ms) of ``count`` catch/release pushes after ``warm`` unmeasured ones, from an
    operator connected at ``operator_url`` to a worker connected at ``worker_url``."""
    total = warm + count
    workspace = _workspace("catch")
    deadline = _deadline(0) + total * gap_s * 2
    common: dict[str, Any] = {
        "target": target,
        "codec": "json",
        "deadline_s": deadline,
        "workspace": workspace,
        "count": total,
    }
    with Fleet() as fleet:
        worker = fleet.peer(
            "catch-worker",
            "catch_worker",
            {**common, "url": worker_url, "run_id": "bench-worker"},
        )
        worker.expect("ready", STARTUP_TIMEOUT_S)  # the workspace exists from here on
        operator = fleet.peer(
            "operator", "operator", {**common, "url": operator_url, "gap_s": gap_s}
        )
        operator.expect("ready", STARTUP_TIMEOUT_S)
        operator.send("go")
        sent = operator.expect("result", deadline + 5.0)["sent_ns"]
        pushes = worker.expect("result", deadline + 5.0)["pushes"]
    if len(sent) != total or len(pushes) != total:
        raise ChildError(f"{target}: {len(sent)} requests sent, {len(pushes)} pushes received")
    latencies = []
    for index, (sent_ns, (arrived_ns, caught)) in enumerate(zip(sent, pushes, strict=True)):
        if caught != (index % 2 == 0):
            raise ChildError(f"{target}: push {index} says caught={caught}, out of step")
        if index >= warm:
            latencies.append((arrived_ns - sent_ns) / 1e6)
    return latencies


def measure_catch(
    *,
    round_trips: int = CATCH_ROUND_TRIPS,
    warm: int = CATCH_WARM,
    repeats: int = REPEATS,
    gap_s: float = CATCH_GAP_S,
) -> LatencyMeasurement:
    """An operator's catch or release to the worker's ``semaphores`` push, against the relay."""
    samples: dict[Target, list[list[float]]] = {"broker": [], "relay": []}
    load = load_average()
    with _servers() as servers:
        for _ in range(repeats):
            for target in ("relay", "broker"):
                samples[target].append(
                    _catch_round(servers, target, warm=warm, count=round_trips, gap_s=gap_s)
                )
        warnings = servers.broker_warnings
    return LatencyMeasurement(
        broker=Latencies.of(f"{BROKER}, JSON", samples["broker"]),
        relay=Latencies.of(f"{RELAY}, JSON", samples["relay"]),
        repeats=repeats,
        warm=warm,
        count=round_trips,
        broker_warnings=warnings,
        load_average=load,
    )


def run_catch(*, quick: bool) -> Report:
    if quick:
        result = measure_catch(
            round_trips=QUICK_CATCH_ROUND_TRIPS, warm=QUICK_CATCH_WARM, repeats=1
        )
    else:
        result = measure_catch()
    return latency_report(result, CATCH_LATENCY)
