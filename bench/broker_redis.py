"""Durable ingest through one broker node on a Redis store, beside the embedded SQLite store.

The workload and the harness are ``broker-ingest``'s (:func:`bench.broker.ingest_stream`): one
worker floods ``publish`` frames of ``LogRecord`` events, and an event counts once the
cumulative ``ack`` covering it arrives. The same run measures, repeats interleaved:

- ``pierhead serve`` on its embedded SQLite store (WAL, synchronous=full): the baseline;
- ``pierhead serve --store redis://... --redis-durability aof`` on a server with
  ``appendfsync always``: the server fsyncs its AOF before it replies, and the broker's
  ``WAITAOF 1 0`` after each commit finds it done;
- the same with ``appendfsync everysec``: then ``WAITAOF 1 0`` waits for the server's next
  background fsync. The same promise (an ack survives a SIGKILL of the server), for comparison.

The goal is judged on ``appendfsync always``: with ``everysec`` every ack waits for the
server's next background fsync, so the worker's rate is its window over that wait (docs/
storage.md found it many times slower), a figure of the server's fsync timer, not of the broker.

Each Redis server is started by the benchmark (:func:`bench._peer_servers.start_store_redis`),
with its own directory; the broker's and the server's CPU are measured over each repeat.

One report: ``redis-ingest``.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from . import broker
from ._peer_servers import (
    AppendFsync,
    PeerMissingError,
    RedisServer,
    redis_client_version,
    start_store_redis,
)
from ._procs import ChildError, Fleet
from ._report import Goal, Report
from ._stats import Rates, Sample, load_average, machine_note, paired_ratio, rate_row
from .broker import BATCH, BROKER, WINDOW, Servers, StreamOutcome

SQLITE: Final = f"{BROKER}, SQLite"
GOAL_EVENTS_PER_S: Final = 150_000
"""Durable events per second through one node on Redis, ``--redis-durability aof``."""
GOAL_FSYNC: Final[AppendFsync] = "always"
FSYNCS: Final[tuple[AppendFsync, ...]] = ("always", "everysec")

EVENTS: Final = broker.INGEST_EVENTS
WARM: Final = broker.INGEST_WARM
REPEATS: Final = broker.REPEATS
QUICK_EVENTS: Final = broker.QUICK_INGEST_EVENTS
QUICK_WARM: Final = broker.QUICK_INGEST_WARM
QUICK_REPEATS: Final = broker.QUICK_REPEATS


def redis_variant(fsync: AppendFsync) -> str:
    return f"{BROKER}, Redis aof, appendfsync {fsync}"


@dataclass(frozen=True, slots=True)
class Variant:
    """One broker under measurement: its name, and its samples and CPU per event per repeat."""

    name: str
    samples: tuple[Sample, ...]
    broker_cpu_us: tuple[float | None, ...]
    """The broker process's CPU per event (microseconds), per repeat."""
    store_cpu_us: tuple[float | None, ...]
    """The Redis server's CPU per event (microseconds), per repeat; None for SQLite."""

    @property
    def rates(self) -> Rates:
        return Rates(self.name, self.samples)


@dataclass(frozen=True, slots=True)
class RedisIngestMeasurement:
    sqlite: Variant
    redis: tuple[Variant, ...]
    """One per ``appendfsync`` measured, in :data:`FSYNCS` order; empty without a server."""
    fsyncs: tuple[AppendFsync, ...]
    server: str
    """Such as ``Valkey 9.1.2``; empty without a server."""
    client: str
    missing: str | None
    """Why Redis was not measured; None when it was."""
    refused: tuple[tuple[AppendFsync, str], ...]
    """``appendfsync`` settings the broker would not run on, with its reason."""
    events: int
    warm: int
    repeats: int
    broker_warnings: int
    load_average: float | None

    def by_fsync(self, fsync: AppendFsync) -> Variant | None:
        return dict(zip(self.fsyncs, self.redis, strict=True)).get(fsync)


@dataclass(frozen=True, slots=True)
class Brokers:
    """The brokers of one measurement, and the Redis variants that have none, with why."""

    sqlite: Servers
    on_redis: dict[AppendFsync, Servers]
    server: RedisServer | None
    """The last Redis server started; None when there is none to start."""
    refused: dict[AppendFsync, str]
    """Variants the broker would not run on this server, with the broker's reason."""
    missing: str | None
    """Why there is no Redis server at all; None when there is one."""


@contextmanager
def _brokers(fsyncs: Sequence[AppendFsync]) -> Iterator[Brokers]:
    """A SQLite broker, and per ``appendfsync`` a Redis server and a broker on it; all stopped,
    their files removed, on exit."""
    with ExitStack() as stack:
        # The directory goes after the processes that write in it have stopped.
        data = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pierhead-bench-")))
        fleet = stack.enter_context(Fleet())
        sqlite = _servers(fleet, data / "sqlite", ())
        on_redis: dict[AppendFsync, Servers] = {}
        refused: dict[AppendFsync, str] = {}
        server: RedisServer | None = None
        try:
            redis_client_version()
            for fsync in fsyncs:
                directory = data / f"redis-{fsync}"
                directory.mkdir()
                server = start_store_redis(
                    fleet, directory, appendfsync=fsync, timeout=broker.STARTUP_TIMEOUT_S
                )
                options = ("--store", server.url, "--redis-durability", "aof")
                try:
                    on_redis[fsync] = _servers(fleet, data / f"node-{fsync}", options, server)
                except ChildError as exc:
                    if fsync == GOAL_FSYNC:
                        raise
                    # A server without WAITAOF keeps `aof` only with `appendfsync always`; the
                    # broker refuses to start otherwise, and its last line says why.
                    refused[fsync] = str(exc).splitlines()[-1]
        except PeerMissingError as exc:
            yield Brokers(sqlite, {}, None, {}, str(exc))
        else:
            yield Brokers(sqlite, on_redis, server, refused, None)


def _servers(
    fleet: Fleet, data: Path, options: Sequence[str], store: RedisServer | None = None
) -> Servers:
    data.mkdir()
    child, port = fleet.broker(data, timeout=broker.STARTUP_TIMEOUT_S, options=options)
    return Servers(
        {"broker": child},
        {"broker": f"ws://127.0.0.1:{port}"},
        store=None if store is None else store.process,
    )


def _per_event_us(cpu_s: float | None, events: int) -> float | None:
    return None if cpu_s is None else cpu_s / events * 1e6


def measure(
    *,
    events: int = EVENTS,
    warm: int = WARM,
    repeats: int = REPEATS,
    fsyncs: Sequence[AppendFsync] = FSYNCS,
) -> RedisIngestMeasurement:
    """Durable ingest from one worker, JSON, per store, repeats interleaved."""
    outcomes: dict[str, list[StreamOutcome]] = {}
    load = load_average()
    with _brokers(fsyncs) as brokers:
        everyone = {SQLITE: brokers.sqlite}
        everyone |= {redis_variant(fsync): s for fsync, s in brokers.on_redis.items()}
        for _ in range(repeats):
            for name, servers in everyone.items():
                outcome = broker.ingest_stream(servers, "broker", "json", warm, events)
                outcomes.setdefault(name, []).append(outcome)
        warnings = sum(servers.broker_warnings for servers in everyone.values())
        server = brokers.server
        label = "" if server is None else f"{server.name} {server.version}"
        client = "" if brokers.missing is not None else redis_client_version()

    def variant(name: str) -> Variant:
        runs = outcomes[name]
        return Variant(
            name,
            tuple(outcome.sample(events) for outcome in runs),
            tuple(_per_event_us(outcome.server_cpu_s, events) for outcome in runs),
            tuple(_per_event_us(outcome.store_cpu_s, events) for outcome in runs),
        )

    measured = tuple(fsync for fsync in fsyncs if fsync in brokers.on_redis)
    return RedisIngestMeasurement(
        sqlite=variant(SQLITE),
        redis=tuple(variant(redis_variant(fsync)) for fsync in measured),
        fsyncs=measured,
        server=label,
        client=client,
        missing=brokers.missing,
        refused=tuple(brokers.refused.items()),
        events=events,
        warm=warm,
        repeats=repeats,
        broker_warnings=warnings,
        load_average=load,
    )


HEADER: Final = (
    "variant",
    "broker CPU us/event",
    "Redis CPU us/event",
    "min events/s",
    "median events/s",
    "max events/s",
    "median vs SQLite",
    "server CPU",
    "server CPU wait",
    "client CPU",
    "other CPU",
)


def _cpu_cell(values: Sequence[float | None]) -> str:
    known = [value for value in values if value is not None]
    return f"{statistics.median(known):.2f}" if known else "n/a"


def _row(variant: Variant, ratio: float) -> tuple[str, ...]:
    cpu = (_cpu_cell(variant.broker_cpu_us), _cpu_cell(variant.store_cpu_us))
    return rate_row(variant.rates, ratio, *cpu)


def report(result: RedisIngestMeasurement) -> Report:
    if result.missing is not None:
        where = f"Redis was not measured: {result.missing}"
    else:
        where = (
            f"Redis: {result.server}, started by the benchmark on a free loopback port, one"
            " server per `appendfsync` (`--appendonly yes --save ''`), its own node on each;"
            f" the node's client: {result.client}"
        )
    notes = (
        f"`broker-ingest`'s workload, JSON: one worker publishes `publish` frames of {BATCH}"
        f" `LogRecord` events with at most {WINDOW} frames unacknowledged; an event counts once"
        " the cumulative `ack` covering it arrives, i.e. once it is committed as the store"
        " promises",
        "Baseline: the same broker on its embedded SQLite store (WAL, synchronous=full). Redis"
        " rows: `pierhead serve --store redis://... --redis-durability aof`, which sends"
        " `WAITAOF 1 0` with each commit (one pipeline: the commit script, then the wait). With"
        " `appendfsync always` the server has fsynced before it replies; with `everysec` the"
        " wait is for its next background fsync, so a worker's rate is its window over that"
        " wait, whatever the broker's speed. Both keep the same promise; the goal is judged on"
        " `always`, the one that measures the broker",
        where,
        *(
            f"Not measured with `appendfsync {fsync}`: the broker refused to start: {reason}"
            for fsync, reason in result.refused
        ),
        f"{result.repeats} interleaved repeats of {result.events:,} events after"
        f" {result.warm:,} warm-up events; `vs SQLite` is the median of per-repeat ratios",
        "CPU per event: the broker's (or the Redis server's) CPU time over a repeat, divided by"
        " its events. The Redis server's CPU is not in `other CPU`",
        broker.LOAD_NOTE,
        machine_note(result.broker_warnings, result.load_average),
    )
    sqlite_rates = result.sqlite.rates
    rows = [_row(result.sqlite, 1.0)]
    rows += [_row(v, paired_ratio(v.rates, sqlite_rates)) for v in result.redis]
    judged = result.by_fsync(GOAL_FSYNC)
    description = f"{redis_variant(GOAL_FSYNC)} >= {GOAL_EVENTS_PER_S:,} events/s"
    if judged is None:
        goal = Goal(description, "not measured", passed=False)
    else:
        median = judged.rates.median_rate
        ratio = paired_ratio(judged.rates, sqlite_rates)
        goal = Goal(
            description,
            f"{median:,.0f} events/s ({ratio:.2f}x SQLite, {sqlite_rates.median_rate:,.0f})",
            passed=median >= GOAL_EVENTS_PER_S,
        )
    return Report(
        name="redis-ingest",
        title=f"durable ingest through one node on Redis beside SQLite, batches of {BATCH}",
        notes=notes,
        header=HEADER,
        rows=tuple(rows),
        goals=(goal,),
    )


def run(*, quick: bool) -> Report:
    if quick:
        return report(measure(events=QUICK_EVENTS, warm=QUICK_WARM, repeats=QUICK_REPEATS))
    return report(measure())
