"""pierhead against Redis pub/sub driven from Python, side by side: fan-out to 10 watchers and
publish-to-watcher latency, with the bare websockets relay as the ceiling of the stack.

Redis pub/sub through redis-py is what a user would build this with by hand. It keeps nothing,
orders nothing across reconnects and cannot resume a subscriber, where pierhead commits every
event before it sends it; the report says so beside the figures. All three run in the same run,
on the same machine, their repeats interleaved, with the same events encoded the same way (the
JSON of pierhead's events): pierhead and the relay as in ``broker-fanout`` and
``broker-latency`` (:mod:`bench.broker`), Redis with :mod:`bench._redis_clients`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from . import broker
from ._peer_servers import (
    PIERHEAD_OPTIONS_NOTE,
    PeerMissingError,
    RedisServer,
    redis_client_version,
    start_pierhead_and_relay,
    start_redis,
)
from ._peer_stream import PeerStream, PeerTarget, run_peer_stream
from ._procs import Fleet
from ._report import Goal, Report
from ._side_by_side import LOAD_NOTE, MISSING, SideBySide, header, rows
from ._stats import Latencies, Rates, Sample, load_average, machine_note
from .broker import BATCH, BROKER, RELAY, WINDOW, Servers, Stream, Target

SIDES: Final[tuple[Target, ...]] = ("relay", "broker")
"""pierhead's side and the relay's, in the order each repeat runs them."""
PEER: Final = "Redis"
FRAMES: Final = "Redis, frames"
PER_EVENT: Final = "PUBLISH per event"
PER_FRAME: Final = f"PUBLISH per {BATCH}-event frame"
WATCHERS: Final = 10
FANOUT_GOAL: Final = 1.0
"""pierhead's deliveries per second, as a multiple of Redis pub/sub's."""

REDIS_EVENTS: Final = 20_000
"""Events per fan-out repeat for Redis: a few seconds' worth, and few enough that a subscriber
that falls behind stays within Redis's default pub/sub output buffer limit (8 MB for 60 s)."""
REDIS_WARM: Final = 1_000
QUICK_REDIS_EVENTS: Final = 1_000
QUICK_REDIS_WARM: Final = 200

DURABILITY_NOTE: Final = (
    "Not alike: pierhead commits every event (SQLite WAL, synchronous=full) before it sends it,"
    " numbers it, keeps it for a watcher that comes back and applies backpressure; Redis"
    " pub/sub stores nothing, drops a subscriber that falls too far behind and cannot resume one"
)


@dataclass(frozen=True, slots=True)
class Peer:
    """The Redis side of a measurement, or why there is none."""

    name: str
    """Such as ``Redis 7.0.15 pub/sub``."""
    client: str
    """redis-py's version and reply parser; empty where Redis was not measured."""
    server: RedisServer | None
    missing: str | None

    def target(self) -> PeerTarget | None:
        if self.server is None:
            return None
        return PeerTarget(
            self.name, self.server.process, "bench._redis_clients", {"port": self.server.port}
        )


@contextmanager
def _running() -> Iterator[tuple[Servers, Peer]]:
    """pierhead's broker, the relay and a redis-server, all stopped on exit."""
    with (
        tempfile.TemporaryDirectory(prefix="pierhead-bench-") as data,
        tempfile.TemporaryDirectory(prefix="pierhead-bench-redis-") as directory,
        Fleet() as fleet,
    ):
        servers = start_pierhead_and_relay(fleet, Path(data), timeout=broker.STARTUP_TIMEOUT_S)
        try:
            server = start_redis(fleet, Path(directory), timeout=broker.STARTUP_TIMEOUT_S)
            client = redis_client_version()
        except PeerMissingError as exc:
            yield servers, Peer(f"{PEER} pub/sub", "", None, str(exc))
        else:
            yield servers, Peer(f"{PEER} {server.version} pub/sub", client, server, None)


def _peer_note(peer: str, client: str, missing: str | None) -> str:
    if missing is not None:
        return f"Redis was not measured: {missing}"
    return (
        f"{peer}, driven by {client}; redis-server started by the benchmark on a free loopback"
        " port with `--save '' --appendonly no`"
    )


# Fan-out ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FanoutMeasurement:
    comparison: SideBySide
    events: int
    """Per repeat, for pierhead and the relay."""
    warm: int
    redis_events: int
    redis_warm: int
    repeats: int
    peer: str
    client: str
    missing: str | None
    broker_warnings: int
    load_average: float | None


def measure_fanout(
    *,
    events: int = broker.fanout_events(WATCHERS, broker.FANOUT_DELIVERIES),
    warm: int = broker.FANOUT_WARM,
    redis_events: int = REDIS_EVENTS,
    redis_warm: int = REDIS_WARM,
    watchers: int = WATCHERS,
    repeats: int = broker.REPEATS,
) -> FanoutMeasurement:
    """Deliveries per second to ``watchers`` on pierhead, Redis and the relay."""
    samples: dict[str, list[Sample]] = {"broker": [], "relay": [], PEER: [], FRAMES: []}
    load = load_average()
    with _running() as (servers, peer):
        target = peer.target()
        for _ in range(repeats):
            for side in SIDES:
                stream = Stream(side, "json", "flood", watchers, warm, events)
                outcome = broker._stream(servers, stream, "redis-fanout")
                samples[side].append(outcome.sample(outcome.delivered))
            if target is not None:
                redis_stream = PeerStream("flood", watchers, redis_warm, redis_events)
                outcome = run_peer_stream(target, redis_stream, "redis-fanout")
                samples[PEER].append(outcome.sample(outcome.delivered))
                framed = PeerStream("flood", watchers, warm, events, frames=True)
                outcome = run_peer_stream(target, framed, "redis-fanout-frames")
                samples[FRAMES].append(outcome.sample(outcome.delivered))
        warnings = servers.broker_warnings
    comparison = SideBySide(
        workload=f"{watchers} watchers",
        pierhead=Rates(f"{BROKER}, JSON", tuple(samples["broker"])),
        peer=Rates(f"{peer.name}, {PER_EVENT}", tuple(samples[PEER])) if samples[PEER] else None,
        relay=Rates(f"{RELAY}, JSON", tuple(samples["relay"])),
        others=(Rates(f"{peer.name}, {PER_FRAME}", tuple(samples[FRAMES])),)
        if samples[FRAMES]
        else (),
    )
    return FanoutMeasurement(
        comparison=comparison,
        events=events,
        warm=warm,
        redis_events=redis_events,
        redis_warm=redis_warm,
        repeats=repeats,
        peer=peer.name,
        client=peer.client,
        missing=peer.missing,
        broker_warnings=warnings,
        load_average=load,
    )


def fanout_report(result: FanoutMeasurement) -> Report:
    comparison = result.comparison
    notes = [
        "The same event on every side: the ~200-byte `LogRecord` of the codec benchmark, as"
        f" JSON. pierhead gets it in `publish` frames of {BATCH} events, at most {WINDOW}"
        f" unacknowledged, as in broker-fanout. Redis, {PER_EVENT} (the goal's peer: what a"
        " user would write by hand): one `PUBLISH` per event, its body the event's JSON as"
        f" inside pierhead's frame, pipelined {BATCH} at a time, each pipeline's replies awaited"
        f" before the next (Redis acknowledges commands, not deliveries). Redis, {PER_FRAME}:"
        " one `PUBLISH` per pierhead `publish` frame, its exact bytes, so that Redis too moves"
        f" {BATCH} events per message, as the relay does (no goal). {RELAY} forwards pierhead's"
        " frames unparsed",
        f"Every watcher follows the one stream: pierhead watchers `subscribe` from `latest`,"
        f" Redis subscribers `SUBSCRIBE` to the channel, {WATCHERS} connections over"
        f" {len(broker.watcher_processes(WATCHERS))} processes on every side, each with its own"
        " client; each decodes every event far enough to count it",
        "Deliveries per second = events received, summed over watchers, over the time from the"
        f" first publish to the last arrival; events per repeat: {result.events:,} for pierhead"
        f" and the relay and for Redis with frames after {result.warm:,} warm-up,"
        f" {result.redis_events:,} for Redis {PER_EVENT} after {result.redis_warm:,} (fewer, so"
        " that a lagging subscriber stays within Redis's default pub/sub output buffer limit);"
        f" {result.repeats} interleaved repeats",
        _peer_note(result.peer, result.client, result.missing),
        DURABILITY_NOTE,
        PIERHEAD_OPTIONS_NOTE,
        LOAD_NOTE,
        machine_note(result.broker_warnings, result.load_average),
    ]
    vs_peer, peer = comparison.vs_peer, comparison.peer
    pierhead = comparison.pierhead.median_rate
    goals = (
        Goal(
            description=f"{BROKER} to {comparison.workload} >= {FANOUT_GOAL:.1f}x {PEER} pub/sub"
            f" ({PER_EVENT})",
            measured=(
                f"not measured: {result.missing}"
                if vs_peer is None or peer is None
                else f"{vs_peer:.2f}x ({pierhead:,.0f} vs {peer.median_rate:,.0f} deliveries/s)"
            ),
            passed=vs_peer is not None and vs_peer >= FANOUT_GOAL,
        ),
        Goal(
            description=f"{BROKER} to {comparison.workload} >= {broker.FANOUT_GOAL:.0%} of the"
            " relay",
            measured=f"{comparison.vs_relay:.0%} ({pierhead:,.0f} vs"
            f" {comparison.relay.median_rate:,.0f} deliveries/s)",
            passed=comparison.vs_relay >= broker.FANOUT_GOAL,
        ),
    )
    return Report(
        name="peer-redis-fanout",
        title=f"pierhead vs {PEER} pub/sub: events delivered to {WATCHERS} watchers",
        notes=tuple(notes),
        header=header(PEER),
        rows=tuple(rows(comparison, result.peer)),
        goals=goals,
    )


def run_fanout(*, quick: bool) -> Report:
    if quick:
        return fanout_report(
            measure_fanout(
                events=broker.fanout_events(WATCHERS, broker.QUICK_FANOUT_DELIVERIES),
                warm=broker.QUICK_FANOUT_WARM,
                redis_events=QUICK_REDIS_EVENTS,
                redis_warm=QUICK_REDIS_WARM,
                repeats=broker.QUICK_REPEATS,
            )
        )
    return fanout_report(measure_fanout())


# Latency ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LatencyMeasurement:
    pierhead: Latencies
    peer: Latencies | None
    relay: Latencies
    rate: int
    watchers: int
    warm: int
    events: int
    """Per repeat, on every side."""
    repeats: int
    peer_name: str
    client: str
    missing: str | None
    broker_warnings: int
    load_average: float | None


def measure_latency(
    *,
    rate: int = broker.LATENCY_RATE,
    seconds: float = broker.LATENCY_SECONDS,
    warm_seconds: float = broker.LATENCY_WARM_SECONDS,
    watchers: int = WATCHERS,
    repeats: int = broker.REPEATS,
) -> LatencyMeasurement:
    """Send time to arrival at each watcher, at a paced rate, on pierhead, Redis and the relay."""
    warm, events = round(rate * warm_seconds), round(rate * seconds)
    samples: dict[str, list[list[float]]] = {"broker": [], "relay": [], PEER: []}
    load = load_average()
    with _running() as (servers, peer):
        target = peer.target()
        for _ in range(repeats):
            for side in SIDES:
                stream = Stream(side, "json", "paced", watchers, warm, events, rate)
                outcome = broker._stream(servers, stream, "redis-latency")
                samples[side].append([value / 1000 for value in outcome.latencies_us])
            if target is not None:
                redis_stream = PeerStream("paced", watchers, warm, events, rate)
                outcome = run_peer_stream(target, redis_stream, "redis-latency")
                samples[PEER].append([value / 1000 for value in outcome.latencies_us])
        warnings = servers.broker_warnings
    return LatencyMeasurement(
        pierhead=Latencies.of(f"{BROKER}, JSON", samples["broker"]),
        peer=Latencies.of(f"{peer.name}, {PER_EVENT}", samples[PEER]) if samples[PEER] else None,
        relay=Latencies.of(f"{RELAY}, JSON", samples["relay"]),
        rate=rate,
        watchers=watchers,
        warm=warm,
        events=events,
        repeats=repeats,
        peer_name=peer.name,
        client=peer.client,
        missing=peer.missing,
        broker_warnings=warnings,
        load_average=load,
    )


LATENCY_HEADER: Final = (
    "variant",
    "samples",
    "p50 ms",
    "p99 ms",
    "p99 per repeat ms",
    "max ms",
    f"p50 vs {PEER}",
    f"p99 vs {PEER}",
)


def _latency_row(latencies: Latencies, peer: Latencies | None) -> tuple[str, ...]:
    ratios = (
        (MISSING, MISSING)
        if peer is None
        else (f"{latencies.p50_ms / peer.p50_ms:.2f}x", f"{latencies.p99_ms / peer.p99_ms:.2f}x")
    )
    return (
        latencies.name,
        f"{len(latencies.samples_ms):,}",
        f"{latencies.p50_ms:.2f}",
        f"{latencies.p99_ms:.2f}",
        f"{min(latencies.repeat_p99_ms):.2f} .. {max(latencies.repeat_p99_ms):.2f}",
        f"{latencies.max_ms:.2f}",
        *ratios,
    )


def latency_report(result: LatencyMeasurement) -> Report:
    notes = [
        f"One publisher sends {result.rate:,} `Scalar` events per second in small batches (one"
        f" every {broker.TICK_S * 1000:g} ms); each carries its send time (`time.time_ns`) in"
        f" `step`, and each of {result.watchers} watchers subtracts it from its own clock on"
        " arrival. pierhead gets each batch as one `publish` frame and commits it before it"
        " sends it on; Redis gets it as a pipeline of one `PUBLISH` per event (the event's"
        f" JSON); {RELAY} forwards pierhead's frames",
        f"{result.repeats} interleaved repeats of {result.events:,} events after"
        f" {result.warm:,} warm-up events on every side; percentiles over all samples (nearest"
        " rank); ratios are pierhead's (or the relay's) figure over Redis's: below 1 is faster",
        _peer_note(result.peer_name, result.client, result.missing),
        DURABILITY_NOTE,
        "No goal: shown for comparison; pierhead's own latency goal is in broker-latency",
        machine_note(result.broker_warnings, result.load_average),
    ]
    table = [_latency_row(result.pierhead, result.peer)]
    if result.peer is None:
        table.append((result.peer_name, *[MISSING] * (len(LATENCY_HEADER) - 1)))
    else:
        table.append(_latency_row(result.peer, result.peer))
    table.append(_latency_row(result.relay, result.peer))
    return Report(
        name="peer-redis-latency",
        title=f"pierhead vs {PEER} pub/sub: publish-to-watcher latency at {result.rate:,}"
        f" events/s to {result.watchers} watchers",
        notes=tuple(notes),
        header=LATENCY_HEADER,
        rows=tuple(table),
        goals=(),
    )


def run_latency(*, quick: bool) -> Report:
    if quick:
        return latency_report(
            measure_latency(
                seconds=broker.QUICK_LATENCY_SECONDS,
                warm_seconds=broker.QUICK_LATENCY_WARM_SECONDS,
                repeats=broker.QUICK_REPEATS,
            )
        )
    return latency_report(measure_latency())
