"""The SDK: the cost of one enqueue call, and durable throughput from one SDK worker.

Two reports:

``sdk-enqueue``
    Events per second into a worker's outbox from a tight loop of ``await worker.scalar(...)``
    and of ``worker.publish_nowait(payload)``, with the worker pointed at a port where nothing
    listens, so nothing is sent and the loop never waits. The baseline, timed in the same
    process and interleaved with it, is the least a raw websockets client does per event:
    build the ``schema.Event`` (stamped with the time), append it to a list and encode it with
    msgspec JSON. Like the codec benchmark it runs in one process: there is no peer to wait on.
``sdk-throughput``
    Events per second from the first enqueue to the end of ``flush()``, from one SDK worker
    process (default batching) to a broker process (``pierhead serve`` on a temporary store).
    The baseline is the broker benchmarks' raw publisher (:mod:`bench._peers`) sending the same
    ``Scalar`` events in pipelined batches of :data:`bench.broker.BATCH` with at most
    :data:`bench.broker.WINDOW` unacknowledged, to the same broker, in repeats interleaved with
    the SDK's.

The goals are absolute, as the SDK's requirements state them; the ratios to the baselines say
how much of what the machine allows the SDK gets.
"""

from __future__ import annotations

import asyncio
import datetime
import gc
import logging
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import msgspec

import schema
import sdk

from ._peers import SCALAR_NAME
from ._procs import Child, ChildError, Fleet, run_queue_wait_s
from ._report import Goal, Report, Spread
from ._stats import MachineClock, Rates, Sample, load_average, machine_note, rate_row
from .broker import BASE_DEADLINE_S, BATCH, BROKER, STARTUP_TIMEOUT_S, WINDOW, _workspace
from .codec import VariantResult

# Enqueue ------------------------------------------------------------------------------------

SDK_SCALAR: Final = "SDK await worker.scalar(...)"
SDK_NOWAIT: Final = "SDK worker.publish_nowait(payload)"
RAW_SCALAR: Final = "raw: Scalar + Event, append, encode"
RAW_EVENT: Final = "raw: Event(payload), append, encode"
ENQUEUE_VARIANTS: Final = (SDK_SCALAR, SDK_NOWAIT, RAW_SCALAR, RAW_EVENT)
SDK_VARIANTS: Final = (SDK_SCALAR, SDK_NOWAIT)
ENQUEUE_BASELINES: Final = {SDK_SCALAR: RAW_SCALAR, SDK_NOWAIT: RAW_EVENT}
"""Each SDK variant's raw counterpart: the same event, built the same way."""

ENQUEUE_GOAL: Final = 200_000
"""Events per second into the outbox, for each SDK variant."""

ENQUEUE_ITERATIONS: Final = 100_000
ENQUEUE_REPEATS: Final = 5
QUICK_ENQUEUE_ITERATIONS: Final = 2_000
QUICK_ENQUEUE_REPEATS: Final = 3

CLOSE_TIMEOUT_S: Final = 0.01
"""How long a benchmark worker waits at close for acks that cannot come."""
OUTBOX_MAX_BYTES: Final = 1 << 40
"""Far more than any batch takes: the outbox must never fill while it is timed."""

SCALAR_VALUE: Final = 0.5


# Throughput ---------------------------------------------------------------------------------

Client = Literal["sdk", "raw"]

SDK_WORKER: Final = "SDK worker (await worker.scalar, default batching)"
RAW_CLIENT: Final = f"raw websockets client (batches of {BATCH}, window {WINDOW})"

THROUGHPUT_EVENTS: Final = 200_000
THROUGHPUT_WARM: Final = 5_000
THROUGHPUT_REPEATS: Final = 3
QUICK_THROUGHPUT_EVENTS: Final = 10_000
QUICK_THROUGHPUT_WARM: Final = 500
QUICK_THROUGHPUT_REPEATS: Final = 1
THROUGHPUT_GOAL: Final = 25_000
"""Durable events per second from one SDK worker."""


# Enqueue: measurement -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EnqueueMeasurement:
    """Every enqueue variant measured in one run, in events per second, one rate per repeat."""

    iterations: int
    repeats: int
    event_bytes: int
    """The size of one event as the SDK measures it (msgspec JSON)."""
    gc_enabled: bool
    variants: tuple[VariantResult, ...]

    def variant(self, name: str) -> VariantResult:
        return next(variant for variant in self.variants if variant.name == name)

    def ratio(self, name: str) -> float:
        """An SDK variant's median over its raw counterpart's median (1.0 for a raw variant)."""
        baseline = ENQUEUE_BASELINES.get(name, name)
        return self.variant(name).median_rate / self.variant(baseline).median_rate


@contextmanager
def _closed_port() -> Iterator[str]:
    """A loopback address where nothing listens: the port is bound, never listened on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        yield f"ws://127.0.0.1:{holder.getsockname()[1]}"


@contextmanager
def _quiet_sdk() -> Iterator[None]:
    """Hush the SDK's warning that a closing worker still holds events: here they always are."""
    logger = logging.getLogger("pierhead.sdk")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextmanager
def _gc_paused(pause: bool) -> Iterator[None]:
    was_enabled = gc.isenabled()
    if pause:
        gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _raw_loop(variant: str) -> Callable[[int], int]:
    """A raw client's per-event work, ``iterations`` times; returns the events kept."""
    encode = msgspec.json.Encoder().encode
    now, utc = datetime.datetime.now, datetime.UTC
    payload = schema.Scalar(name=SCALAR_NAME, value=SCALAR_VALUE, step=1)

    def scalars(iterations: int) -> int:
        events: list[schema.Event] = []
        for step in range(iterations):
            event = schema.Event(
                payload=schema.Scalar(name=SCALAR_NAME, value=SCALAR_VALUE, step=step),
                create_time=now(utc),
            )
            events.append(event)
            encode(event)
        return len(events)

    def prebuilt(iterations: int) -> int:
        events: list[schema.Event] = []
        for _ in range(iterations):
            event = schema.Event(payload=payload, create_time=now(utc))
            events.append(event)
            encode(event)
        return len(events)

    return scalars if variant == RAW_SCALAR else prebuilt


async def _sdk_batch(variant: str, iterations: int, url: str, *, pause_gc: bool) -> float:
    """One timed batch of SDK enqueues into a fresh worker, in events per second."""
    payload = schema.Scalar(name=SCALAR_NAME, value=SCALAR_VALUE, step=1)
    worker = sdk.Worker(
        url,
        "bench-enqueue",
        run_id="bench-enqueue",
        outbox_max_events=iterations + 1,
        outbox_max_bytes=OUTBOX_MAX_BYTES,
        close_timeout_s=CLOSE_TIMEOUT_S,
    )
    async with worker:
        # Neither call waits while the outbox has room, so the worker's own tasks (connecting,
        # sending) do not run inside the timed loop: only the enqueue itself is measured.
        with _gc_paused(pause_gc):
            if variant == SDK_SCALAR:
                scalar = worker.scalar
                start = time.perf_counter_ns()
                for step in range(iterations):
                    await scalar(SCALAR_NAME, SCALAR_VALUE, step=step)
                elapsed = time.perf_counter_ns() - start
            else:
                publish_nowait = worker.publish_nowait
                start = time.perf_counter_ns()
                for _ in range(iterations):
                    publish_nowait(payload)
                elapsed = time.perf_counter_ns() - start
        counters = worker.counters
    if counters["queued"] != iterations:
        raise RuntimeError(f"{variant}: {iterations} enqueued, the outbox says {counters}")
    return iterations * 1e9 / max(elapsed, 1)


def _raw_batch(variant: str, iterations: int, *, pause_gc: bool) -> float:
    loop = _raw_loop(variant)
    with _gc_paused(pause_gc):
        start = time.perf_counter_ns()
        kept = loop(iterations)
        elapsed = time.perf_counter_ns() - start
    if kept != iterations:
        raise RuntimeError(f"{variant}: kept {kept} of {iterations} events")
    return iterations * 1e9 / max(elapsed, 1)


async def _enqueue_rates(iterations: int, repeats: int, pause_gc: bool) -> dict[str, list[float]]:
    async def batch(variant: str, count: int) -> float:
        if variant in SDK_VARIANTS:
            return await _sdk_batch(variant, count, url, pause_gc=pause_gc)
        return _raw_batch(variant, count, pause_gc=pause_gc)

    rates: dict[str, list[float]] = {name: [] for name in ENQUEUE_VARIANTS}
    with _closed_port() as url, _quiet_sdk():
        for variant in ENQUEUE_VARIANTS:
            await batch(variant, max(1, iterations // 10))  # warm caches and pools, untimed
        # Interleaved, so drift in clock speed or background load hits every variant alike.
        for _ in range(repeats):
            for variant in ENQUEUE_VARIANTS:
                rates[variant].append(await batch(variant, iterations))
    return rates


def measure_enqueue(
    *,
    iterations: int = ENQUEUE_ITERATIONS,
    repeats: int = ENQUEUE_REPEATS,
    pause_gc: bool = False,
) -> EnqueueMeasurement:
    """Time every enqueue variant, ``repeats`` batches of ``iterations`` each.

    The garbage collector stays on unless ``pause_gc``: unlike the raw client's events, the
    outbox's entries are tracked by it, and the collections they cause are part of the SDK's
    cost of holding events.
    """
    rates = asyncio.run(_enqueue_rates(iterations, repeats, pause_gc))
    sample = schema.Event(
        payload=schema.Scalar(name=SCALAR_NAME, value=SCALAR_VALUE, step=iterations),
        create_time=datetime.datetime.now(datetime.UTC),
    )
    return EnqueueMeasurement(
        iterations=iterations,
        repeats=repeats,
        event_bytes=len(msgspec.json.encode(sample)),
        gc_enabled=not pause_gc,
        variants=tuple(VariantResult(name, tuple(rates[name])) for name in ENQUEUE_VARIANTS),
    )


def enqueue_report(result: EnqueueMeasurement) -> Report:
    collector = (
        "on, as in a real program (the outbox's entries are tracked by it)"
        if result.gc_enabled
        else "off while timed"
    )
    notes = (
        f"Event: `Scalar` named `{SCALAR_NAME}` with a step, stamped with the time"
        f" ({result.event_bytes} B of JSON); the SDK variants enqueue into a worker whose"
        " outbox never fills and whose broker address has nothing listening, so nothing is sent",
        "Baseline, per SDK variant: the least a raw websockets client does per event, building"
        " the same `schema.Event`, appending it to a list and encoding it with msgspec JSON",
        f"{result.repeats} interleaved repeats of {result.iterations:,} events per variant, each"
        f" SDK batch into a fresh worker; garbage collector {collector}",
        "ns/event: the time one enqueue takes at the rate of each repeat, median (min..max)",
    )
    header = (
        "variant",
        "min events/s",
        "median events/s",
        "max events/s",
        "ns/event",
        "median vs raw",
    )
    rows = tuple(
        (
            variant.name,
            f"{variant.min_rate:,.0f}",
            f"{variant.median_rate:,.0f}",
            f"{variant.max_rate:,.0f}",
            Spread.of(1e9 / rate for rate in variant.rates).cell(",.0f"),
            f"{result.ratio(variant.name):.2f}x",
        )
        for variant in result.variants
    )
    goals = tuple(
        Goal(
            description=f"{name} >= {ENQUEUE_GOAL:,} events/s",
            measured=f"{result.variant(name).median_rate:,.0f} events/s"
            f" ({result.ratio(name):.2f}x raw)",
            passed=result.variant(name).median_rate >= ENQUEUE_GOAL,
        )
        for name in SDK_VARIANTS
    )
    return Report(
        name="sdk-enqueue",
        title="the cost of one enqueue call",
        notes=notes,
        header=header,
        rows=rows,
        goals=goals,
    )


def run_enqueue(*, quick: bool) -> Report:
    if quick:
        return enqueue_report(
            measure_enqueue(iterations=QUICK_ENQUEUE_ITERATIONS, repeats=QUICK_ENQUEUE_REPEATS)
        )
    return enqueue_report(measure_enqueue())


# Throughput: measurement --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ThroughputMeasurement:
    sdk: Rates
    raw: Rates
    events: int
    """Events per repeat, after the warm-up."""
    warm: int
    repeats: int
    broker_warnings: int
    load_average: float | None
    """The machine's 1-minute load average when the measurement began."""

    @property
    def ratio(self) -> float:
        """The SDK's median over the raw client's."""
        return self.sdk.median_rate / self.raw.median_rate


@contextmanager
def _broker() -> Iterator[tuple[Child, str]]:
    """A broker on a temporary store; stopped, and the store removed, on exit."""
    with (
        tempfile.TemporaryDirectory(prefix="pierhead-bench-") as data,
        Fleet() as fleet,
    ):
        broker, port = fleet.broker(Path(data), timeout=STARTUP_TIMEOUT_S)
        yield broker, f"ws://127.0.0.1:{port}"


def _deadline(events: int) -> float:
    """Seconds a client may take for ``events``; generous, but bounded."""
    return BASE_DEADLINE_S + events / 2_000


def _run_client(broker: Child, url: str, client: Client, *, warm: int, events: int) -> Sample:
    """One client process publishes ``warm``, then ``events`` timed events; it is gone on return."""
    deadline = _deadline(warm + events)
    timeout = deadline + 5.0
    params = {
        "target": "broker",
        "url": url,
        "codec": "json",
        "deadline_s": deadline,
        "warm": warm,
        "events": events,
        "workspace": _workspace(f"sdk-{client}"),
        "run_id": f"bench-{client}",
    }
    if client == "raw":
        params |= {"mode": "flood", "batch": BATCH, "window": WINDOW, "payload": "scalar"}
    with Fleet() as fleet:
        child = fleet.peer(
            f"{client}-client", "publish" if client == "raw" else "sdk_publish", params
        )
        child.expect("ready", STARTUP_TIMEOUT_S)
        child.send("warm")
        child.expect("warmed", timeout)
        machine = MachineClock()
        server_cpu, server_waits = broker.cpu_seconds(), broker.run_queue_waits()
        child.send("go")
        result = child.expect("result", timeout)
        server_cpu_after, server_waits_after = broker.cpu_seconds(), broker.run_queue_waits()
    server_cpu_s = (
        None if server_cpu is None or server_cpu_after is None else server_cpu_after - server_cpu
    )
    client_cpu_s = float(result["cpu_s"])
    machine.stop(server_cpu_s, client_cpu_s)
    if int(result["events"]) != events:
        raise ChildError(f"{client}: {result['events']} events published, {events} expected")
    elapsed_s = max(int(result["end_ns"]) - int(result["start_ns"]), 1) / 1e9
    window = max(machine.wall_s, 1e-9)
    server_wait = run_queue_wait_s(server_waits, server_waits_after)
    return Sample(
        rate=events / elapsed_s,
        server_load=None if server_cpu_s is None else server_cpu_s / window,
        server_wait=None if server_wait is None else server_wait / window,
        client_load=client_cpu_s / window,
        other_load=machine.other_load,
    )


def measure_throughput(
    *,
    events: int = THROUGHPUT_EVENTS,
    warm: int = THROUGHPUT_WARM,
    repeats: int = THROUGHPUT_REPEATS,
) -> ThroughputMeasurement:
    """Durable events per second from one SDK worker against a raw client, same broker."""
    samples: dict[Client, list[Sample]] = {"sdk": [], "raw": []}
    load = load_average()
    with _broker() as (broker, url):
        for _ in range(repeats):
            for client in ("raw", "sdk"):
                samples[client].append(_run_client(broker, url, client, warm=warm, events=events))
        warnings = broker.log_warnings
    return ThroughputMeasurement(
        sdk=Rates(SDK_WORKER, tuple(samples["sdk"])),
        raw=Rates(RAW_CLIENT, tuple(samples["raw"])),
        events=events,
        warm=warm,
        repeats=repeats,
        broker_warnings=warnings,
        load_average=load,
    )


THROUGHPUT_LOAD_NOTE: Final = (
    "Load columns, in cores over the run, median (min..max) over repeats: server CPU = CPU"
    " time of the broker process; server CPU wait = time its threads were ready to run but had"
    " no CPU; client CPU = the client process; other CPU = everything else on the machine"
)


def throughput_report(result: ThroughputMeasurement) -> Report:
    notes = (
        f"One client process enqueues `Scalar` events and waits until the {BROKER} has"
        " acknowledged all of them, i.e. committed them (SQLite WAL, synchronous=full);"
        " events per second from the first enqueue to the last acknowledgement",
        "SDK: `await worker.scalar(...)` in a loop, then `await worker.flush()`, with the"
        " worker's defaults (outbox, batching, frames in flight)",
        f"Baseline: a raw websockets client building the same events and publishing them in"
        f" batches of {BATCH} with at most {WINDOW} batches unacknowledged",
        f"Each participant is a separate process on 127.0.0.1; {result.repeats} interleaved"
        f" repeats of {result.events:,} events after {result.warm:,} warm-up events",
        THROUGHPUT_LOAD_NOTE,
        machine_note(result.broker_warnings, result.load_average),
    )
    header = (
        "variant",
        "min events/s",
        "median events/s",
        "max events/s",
        "median vs raw",
        "server CPU",
        "server CPU wait",
        "client CPU",
        "other CPU",
    )
    rows = (rate_row(result.sdk, result.ratio), rate_row(result.raw, 1.0))
    goals = (
        Goal(
            description=f"{result.sdk.name} >= {THROUGHPUT_GOAL:,} events/s",
            measured=f"{result.sdk.median_rate:,.0f} events/s ({result.ratio:.2f}x raw)",
            passed=result.sdk.median_rate >= THROUGHPUT_GOAL,
        ),
    )
    return Report(
        name="sdk-throughput",
        title="durable throughput from one SDK worker",
        notes=notes,
        header=header,
        rows=rows,
        goals=goals,
    )


def run_throughput(*, quick: bool) -> Report:
    if quick:
        return throughput_report(
            measure_throughput(
                events=QUICK_THROUGHPUT_EVENTS,
                warm=QUICK_THROUGHPUT_WARM,
                repeats=QUICK_THROUGHPUT_REPEATS,
            )
        )
    return throughput_report(measure_throughput())
