"""pierhead against neetbox's server, side by side: durable ingest, and delivery to 1 and 10
watchers, with the bare websockets relay as the ceiling of the stack.

All three run in the same run, on the same machine, their repeats interleaved, with the same
event (the ~200-byte ``LogRecord`` of the codec benchmark). pierhead and the relay are driven
exactly as in ``broker-ingest`` and ``broker-fanout`` (:mod:`bench.broker`); neetbox by raw
clients speaking its own protocol (:mod:`bench._neetbox_clients`). Where the protocols differ,
the report says how: neetbox has no batches and no acknowledgements, so its publisher sends one
frame per event as fast as the socket takes them, and one of its events counts as ingested once
its row is committed to neetbox's SQLite file.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from . import broker
from ._peer_servers import (
    NEETBOX_REQUIREMENT,
    PIERHEAD_OPTIONS_NOTE,
    POLL_S,
    NeetboxServer,
    PeerMissingError,
    start_neetbox,
    start_pierhead_and_relay,
)
from ._peer_stream import PeerStream, PeerTarget, run_peer_stream
from ._procs import Fleet
from ._report import Goal, Report
from ._side_by_side import LOAD_NOTE, SideBySide, header, rows
from ._stats import Rates, Sample, load_average, machine_note
from .broker import BATCH, BROKER, RELAY, WINDOW, Stream, Target

NAME: Final = "peer-neetbox"
SIDES: Final[tuple[Target, ...]] = ("relay", "broker")
"""pierhead's side and the relay's, in the order each repeat runs them."""
PEER: Final = "neetbox"
WATCHERS: Final = (1, 10)
INGEST_GOAL: Final = 10.0
"""pierhead's durable ingest, as a multiple of neetbox's."""


@dataclass(frozen=True, slots=True)
class Sizes:
    """Events per repeat, and warm-up events before them, for each side and workload.

    pierhead and the relay get the counts of ``broker-ingest`` and ``broker-fanout``; neetbox,
    which is far slower, fewer, so that each of its runs also lasts a few seconds.
    """

    ingest: int
    ingest_warm: int
    delivery: dict[int, int]
    """By number of watchers."""
    delivery_warm: int
    neetbox_ingest: int
    neetbox_delivery: dict[int, int]
    neetbox_warm: int


def _delivery_events(deliveries: int, ingest: int) -> dict[int, int]:
    # One watcher would otherwise get all the deliveries as events: no more than an ingest.
    return {count: min(broker.fanout_events(count, deliveries), ingest) for count in WATCHERS}


SIZES: Final = Sizes(
    ingest=broker.INGEST_EVENTS,
    ingest_warm=broker.INGEST_WARM,
    delivery=_delivery_events(broker.FANOUT_DELIVERIES, broker.INGEST_EVENTS),
    delivery_warm=broker.FANOUT_WARM,
    neetbox_ingest=20_000,
    neetbox_delivery={1: 15_000, 10: 6_000},
    neetbox_warm=500,
)
QUICK_SIZES: Final = Sizes(
    ingest=broker.QUICK_INGEST_EVENTS,
    ingest_warm=broker.QUICK_INGEST_WARM,
    delivery=_delivery_events(broker.QUICK_FANOUT_DELIVERIES, broker.QUICK_INGEST_EVENTS),
    delivery_warm=broker.QUICK_FANOUT_WARM,
    neetbox_ingest=1_000,
    neetbox_delivery={1: 1_000, 10: 300},
    neetbox_warm=100,
)


@dataclass(frozen=True, slots=True)
class NeetboxMeasurement:
    ingest: SideBySide
    delivery: tuple[SideBySide, ...]
    """One per number of watchers, in the order of :data:`WATCHERS`."""
    sizes: Sizes
    repeats: int
    neetbox: str
    """The peer's name and version, as its rows are labelled."""
    missing: str | None
    """Why neetbox was not measured, if it was not: how to install it."""
    broker_warnings: int
    load_average: float | None


def _watchers(count: int) -> str:
    return f"{count} watcher" if count == 1 else f"{count} watchers"


def _rates(name: str, samples: Sequence[Sample]) -> Rates:
    return Rates(name, tuple(samples))


def _peer_rates(name: str, samples: Sequence[Sample]) -> Rates | None:
    return Rates(name, tuple(samples)) if samples else None


def measure(*, sizes: Sizes = SIZES, repeats: int = broker.REPEATS) -> NeetboxMeasurement:
    """Ingest and delivery on pierhead, neetbox and the relay, repeats interleaved."""
    workloads = ("ingest", *(_watchers(count) for count in WATCHERS))
    samples: dict[tuple[str, str], list[Sample]] = {
        (side, workload): [] for side in ("broker", "relay", PEER) for workload in workloads
    }
    load = load_average()
    with (
        tempfile.TemporaryDirectory(prefix="pierhead-bench-") as data,
        tempfile.TemporaryDirectory(prefix="pierhead-bench-neetbox-") as home,
        Fleet() as fleet,
    ):
        servers = start_pierhead_and_relay(fleet, Path(data), timeout=broker.STARTUP_TIMEOUT_S)
        server: NeetboxServer | None = None
        missing: str | None = None
        try:
            server = start_neetbox(fleet, Path(home), timeout=broker.STARTUP_TIMEOUT_S)
        except PeerMissingError as exc:
            missing = str(exc)
        peer_name = f"{PEER} {server.version}" if server is not None else PEER
        for _ in range(repeats):
            for side in SIDES:
                samples[side, "ingest"].append(
                    broker._ingest(servers, side, "json", sizes.ingest_warm, sizes.ingest)
                )
            if server is not None:
                samples[PEER, "ingest"].append(_neetbox_ingest(server, peer_name, sizes))
            for count, workload in zip(WATCHERS, workloads[1:], strict=True):
                events = sizes.delivery[count]
                for side in SIDES:
                    stream = Stream(side, "json", "flood", count, sizes.delivery_warm, events)
                    outcome = broker._stream(servers, stream, f"delivery{count}")
                    samples[side, workload].append(outcome.sample(outcome.delivered))
                if server is not None:
                    samples[PEER, workload].append(
                        _neetbox_delivery(server, peer_name, sizes, count)
                    )
        warnings = servers.broker_warnings
    comparisons = [
        SideBySide(
            workload=workload,
            pierhead=_rates(f"{BROKER}, JSON", samples["broker", workload]),
            peer=_peer_rates(peer_name, samples[PEER, workload]),
            relay=_rates(f"{RELAY}, JSON", samples["relay", workload]),
        )
        for workload in workloads
    ]
    return NeetboxMeasurement(
        ingest=comparisons[0],
        delivery=tuple(comparisons[1:]),
        sizes=sizes,
        repeats=repeats,
        neetbox=peer_name,
        missing=missing,
        broker_warnings=warnings,
        load_average=load,
    )


def _target(server: NeetboxServer, name: str) -> PeerTarget:
    return PeerTarget(name, server.process, "bench._neetbox_clients", {"url": server.url})


def _neetbox_ingest(server: NeetboxServer, name: str, sizes: Sizes) -> Sample:
    stream = PeerStream("flood", 0, sizes.neetbox_warm, sizes.neetbox_ingest)
    outcome = run_peer_stream(
        _target(server, name), stream, "neetbox-ingest", stored=server.wait_stored
    )
    return outcome.sample(sizes.neetbox_ingest)


def _neetbox_delivery(server: NeetboxServer, name: str, sizes: Sizes, watchers: int) -> Sample:
    stream = PeerStream("flood", watchers, sizes.neetbox_warm, sizes.neetbox_delivery[watchers])
    outcome = run_peer_stream(_target(server, name), stream, f"neetbox-delivery{watchers}")
    return outcome.sample(outcome.delivered)


def _counts(events: dict[int, int]) -> str:
    return ", ".join(f"{events[count]:,} to {count}" for count in WATCHERS)


def report(result: NeetboxMeasurement) -> Report:
    sizes, ingest = result.sizes, result.ingest
    notes = [
        "The same event on every side: the ~200-byte `LogRecord` of the codec benchmark."
        f" pierhead gets it in JSON `publish` frames of {BATCH} events, at most {WINDOW}"
        f" unacknowledged, as in broker-ingest; {result.neetbox} (its FastAPI app under uvicorn"
        " on 127.0.0.1, as `neet serve` runs it, in an environment of its own since it pins"
        f" websockets<16; `{NEETBOX_REQUIREMENT}`) gets each event as a `log` event in its own"
        " frame (series = level, payload = {whom, message}): its protocol has no batches and no"
        " acknowledgements, so its publisher writes as fast as the socket takes them;"
        f" {RELAY} forwards pierhead's frames unparsed",
        "Ingest: a pierhead event counts once the cumulative `ack` covering it arrives (committed,"
        " SQLite WAL, synchronous=full); a neetbox event once its row can be read from neetbox's"
        " SQLite file by another connection (neetbox autocommits one INSERT per event, WAL, its"
        f" default synchronous=full; the benchmark looks every {POLL_S * 1000:g} ms); a relay"
        " event once its one subscriber has it",
        "Delivery: events received, summed over watchers, over the time from the first publish to"
        " the last arrival; pierhead watchers `subscribe` from `latest`, neetbox watchers shake"
        " hands as `web` and are sent every event of the project, one `send` after another",
        f"Events per repeat: pierhead and the relay {sizes.ingest:,} ingested after"
        f" {sizes.ingest_warm:,} warm-up, {_counts(sizes.delivery)} watchers after"
        f" {sizes.delivery_warm:,}; neetbox {sizes.neetbox_ingest:,} ingested,"
        f" {_counts(sizes.neetbox_delivery)} watchers, each after {sizes.neetbox_warm:,} warm-up"
        f" (fewer, so that its runs too last seconds); {result.repeats} interleaved repeats",
        "Each participant is a separate process on 127.0.0.1; watchers are spread over at most"
        f" {broker.MAX_WATCHER_PROCESSES} processes as in broker-fanout",
        PIERHEAD_OPTIONS_NOTE,
        LOAD_NOTE,
        machine_note(result.broker_warnings, result.load_average),
    ]
    if result.missing is not None:
        notes.append(f"neetbox was not measured: {result.missing}")
    table: list[tuple[str, ...]] = []
    for comparison in (ingest, *result.delivery):
        table += rows(comparison, result.neetbox)
    vs_peer, peer = ingest.vs_peer, ingest.peer
    goal = Goal(
        description=f"{BROKER} durable ingest >= {INGEST_GOAL:g}x {PEER}'s",
        measured=(
            f"not measured: {result.missing}"
            if vs_peer is None or peer is None
            else f"{vs_peer:.1f}x ({ingest.pierhead.median_rate:,.0f} vs"
            f" {peer.median_rate:,.0f} events/s)"
        ),
        passed=vs_peer is not None and vs_peer >= INGEST_GOAL,
    )
    return Report(
        name=NAME,
        title=f"pierhead vs {PEER}: durable ingest and delivery to 1 and 10 watchers",
        notes=tuple(notes),
        header=header(PEER),
        rows=tuple(table),
        goals=(goal,),
    )


def run(*, quick: bool) -> Report:
    if quick:
        return report(measure(sizes=QUICK_SIZES, repeats=broker.QUICK_REPEATS))
    return report(measure())
