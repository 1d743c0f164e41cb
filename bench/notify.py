"""Durable ingest with a notification sink that never answers, against ingest without one.

The workload and the harness are ``broker-ingest``'s (:func:`bench.broker.ingest_stream`): one
worker floods ``publish`` frames of ``LogRecord`` events, and an event counts once the
cumulative ``ack`` covering it arrives. Every :data:`ERROR_EVERY`-th event is an error
``WorkspaceEvent`` instead (:data:`bench._peers.ERROR_EVENT`), which a sink's ``event``
trigger posts. The same run measures, repeats interleaved (the order turning each repeat),
brokers that all get those same events:

- ``pierhead serve`` on its embedded SQLite store, without ``--notify``: the baseline;
- the same with ``--notify`` naming one ``webhook`` sink whose receiver accepts the connection
  and never answers (``python -m bench._receiver dead``). Each error is queued in the store
  (within ``queue_delay``, 0.25 s, of its event's commit, which marks its workspace until
  then); the sink's queue is bounded to :data:`MAX_QUEUED` (the
  default), and filled to it before the repeats, so the queue stays full and drops its oldest
  (an eighth of the bound at a time) throughout them: a sink that has been down for a while;
- the same with a receiver that answers ``200`` at once (``python -m bench._receiver live``),
  for comparison: the sender reads the queue, posts and removes what was delivered.

The goal (the acceptance of issue 15): the dead sink's ingest is at least :data:`GOAL` of the
baseline's, the median of per-repeat ratios (:func:`bench._stats.paired_ratio`).

After each repeat the benchmark waits, outside the measured span, until the broker's ``stats``
account for every error published to it (``notify.<sink>.queued`` and ``dropped``, read from
the store when asked; for the live sink ``sent`` as well, once its sender has delivered), so
one broker's queue work does not spill into another's repeat, and the figures reported are
exact.

One report: ``notify-ingest``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from websockets.sync.client import connect
from websockets.typing import Subprotocol

import schema

from . import broker
from ._procs import Child, ChildError, Fleet
from ._report import Goal, Report
from ._stats import Rates, Sample, load_average, machine_note, paired_ratio, rate_row
from .broker import BATCH, BROKER, WINDOW, Servers, StreamOutcome

Kind = Literal["baseline", "dead", "live"]
KINDS: Final[tuple[Kind, ...]] = ("baseline", "dead", "live")
NAMES: Final[dict[Kind, str]] = {
    "baseline": f"{BROKER}, no --notify",
    "dead": f"{BROKER}, --notify, a sink that never answers",
    "live": f"{BROKER}, --notify, a sink that answers 200",
}

SINK: Final = "bench"
"""The sink's name: its counters are ``notify.bench.*`` in ``stats``."""
ERROR_EVERY: Final = 100
"""Every this many events, one is an error ``WorkspaceEvent``: one notification each."""
MAX_QUEUED: Final = 10_000
"""The sink's queue bound: ``max_queued``'s default (:class:`broker._notify.SinkConfig`).
Each broker is given this many errors before the repeats, so the dead sink's queue is full
throughout them, dropping its oldest an eighth of the bound at a time."""
QUICK_MAX_QUEUED: Final = 20
GOAL: Final = 0.95
"""Durable ingest with a dead sink, as a fraction of the rate without ``--notify``."""

EVENTS: Final = 500_000
"""Per repeat: at some 300,000 events/s, 200,000 (``broker-ingest``'s) last well under a second,
too short for a 5% goal on a shared machine."""
WARM: Final = broker.INGEST_WARM
REPEATS: Final = 5
QUICK_EVENTS: Final = broker.QUICK_INGEST_EVENTS
QUICK_WARM: Final = broker.QUICK_INGEST_WARM
QUICK_REPEATS: Final = broker.QUICK_REPEATS

STATS_TIMEOUT_S: Final = 30.0
"""How long the broker's ``stats`` may take to account for the errors published to it: a live
sink's deliveries wait out its 2 s coalescing; a dead sink's first try, for the receiver's
count, comes after it too."""
STATS_POLL_S: Final = 0.1


def notify_file(url: str, *, max_queued: int) -> str:
    """The ``--notify`` file: one ``webhook`` sink at ``url``, posting every error event."""
    return "\n".join(
        (
            "[[sink]]",
            f"name = {json.dumps(SINK)}",
            'kind = "webhook"',
            f"url = {json.dumps(url)}",
            'triggers = ["event"]',
            'min_severity = "error"',
            f"max_queued = {max_queued}",
            "",
        )
    )


def errors_in(first_seq: int, count: int, every: int = ERROR_EVERY) -> int:
    """Error events among seqs ``first_seq`` .. ``first_seq + count - 1`` of a flood that
    sends one at every multiple of ``every`` (as ``bench._peers`` does)."""
    last = first_seq + count - 1
    return last // every - (first_seq - 1) // every


@dataclass(frozen=True, slots=True)
class SinkFigures:
    """The sink's counters in the broker's ``stats`` once a repeat's errors are accounted for."""

    queued: int
    dropped: int
    sent: int
    failed_attempts: int

    @classmethod
    def of(cls, counters: Mapping[str, int | float]) -> SinkFigures:
        def count(name: str) -> int:
            return int(counters.get(f"notify.{SINK}.{name}", 0))

        return cls(count("queued"), count("dropped"), count("sent"), count("failed_attempts"))

    @property
    def accounted(self) -> int:
        """Notifications the broker has queued, dropped or delivered, as far as it knows."""
        return self.queued + self.dropped + self.sent


@dataclass(frozen=True, slots=True)
class Variant:
    """One broker under measurement: per repeat, its sample, CPU per event and sink figures."""

    kind: Kind
    samples: tuple[Sample, ...]
    broker_cpu_us: tuple[float | None, ...]
    """The broker process's CPU per event (microseconds), per repeat."""
    sink: tuple[SinkFigures, ...]
    """After each repeat; all zero for the baseline, which has no sink."""

    @property
    def name(self) -> str:
        return NAMES[self.kind]

    @property
    def rates(self) -> Rates:
        return Rates(self.name, self.samples)


@dataclass(frozen=True, slots=True)
class NotifyIngestMeasurement:
    variants: tuple[Variant, ...]
    """In :data:`KINDS` order: the baseline first."""
    events: int
    warm: int
    repeats: int
    errors_per_repeat: int
    max_queued: int
    receivers: Mapping[Kind, tuple[int, int]]
    """Per receiver, at the end: (connections accepted, requests answered)."""
    broker_warnings: int
    load_average: float | None

    def variant(self, kind: Kind) -> Variant:
        for variant in self.variants:
            if variant.kind == kind:
                return variant
        raise ValueError(f"no {kind} variant was measured")


# The broker's stats -----------------------------------------------------------------------


def broker_counters(url: str, timeout: float) -> Generator[dict[str, int | float]]:
    """The broker's ``stats`` counters, a fresh report each time the iterator is advanced,
    over one watcher session."""
    codec = schema.JSON_CODEC
    with connect(url, subprotocols=[Subprotocol(codec.subprotocol)], open_timeout=timeout) as ws:
        hello = schema.Hello(protocol=1, role="watcher", client="pierhead-bench")
        ws.send(codec.encode(hello), text=codec.text)
        welcome = codec.decode_broker_frame(ws.recv(timeout, decode=False))
        if not isinstance(welcome, schema.Welcome):
            raise ChildError(f"broker: expected welcome, got {welcome!r}")
        for request_id in itertools.count(1):
            ws.send(codec.encode(schema.StatsRequest(id=request_id)), text=codec.text)
            while True:
                frame = codec.decode_broker_frame(ws.recv(timeout, decode=False))
                if isinstance(frame, schema.ErrorReply):
                    raise ChildError(f"broker: stats refused: {frame.code}: {frame.message}")
                if isinstance(frame, schema.StatsReport) and frame.id == request_id:
                    yield dict(frame.counters)
                    break


def wait_for_sink(
    url: str, done: Callable[[SinkFigures], bool], timeout: float = STATS_TIMEOUT_S
) -> SinkFigures:
    """The sink's figures in the broker's ``stats``, once ``done`` holds for them."""
    deadline = time.monotonic() + timeout
    figures = SinkFigures(0, 0, 0, 0)
    with contextlib.closing(broker_counters(url, timeout)) as reports:
        for counters in reports:
            figures = SinkFigures.of(counters)
            if done(figures):
                return figures
            if time.monotonic() > deadline:
                break
            time.sleep(STATS_POLL_S)
    raise ChildError(
        f"broker {url}: stats did not account for the errors in {timeout:g} s: {figures}"
    )


# The processes ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Broker:
    servers: Servers
    url: str
    receiver: Child | None


def _receiver(fleet: Fleet, mode: Literal["dead", "live"]) -> tuple[Child, int]:
    child = fleet.spawn(f"{mode}-receiver", [sys.executable, "-m", "bench._receiver", mode])
    port = child.expect("listening", broker.STARTUP_TIMEOUT_S)["port"]
    if not isinstance(port, int):
        raise ChildError(f"{mode} receiver: no port in its listening message: {port!r}")
    return child, port


def receiver_counts(child: Child) -> tuple[int, int]:
    """(connections accepted, requests answered) of a receiver, now."""
    child.send("report")
    report = child.expect("report", broker.STARTUP_TIMEOUT_S)
    return int(report["connections"]), int(report["requests"])


def wait_for_receiver(child: Child, timeout: float = STATS_TIMEOUT_S) -> tuple[int, int]:
    """A receiver's counts once it has accepted a connection: the sink was tried, which is
    what the measurement is about (its first try waits out the coalescing window)."""
    deadline = time.monotonic() + timeout
    while (counts := receiver_counts(child))[0] == 0:
        if time.monotonic() > deadline:
            raise ChildError(f"{child.name}: the broker never connected in {timeout:g} s")
        time.sleep(STATS_POLL_S)
    return counts


@contextmanager
def _brokers(kinds: Sequence[Kind], max_queued: int) -> Iterator[dict[Kind, _Broker]]:
    """A broker per kind on its own temporary store, and the receivers of its sink; all
    stopped, their files removed, on exit."""
    with ExitStack() as stack:
        # The directory goes after the processes that write in it have stopped.
        data = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pierhead-bench-")))
        fleet = stack.enter_context(Fleet())
        brokers: dict[Kind, _Broker] = {}
        for kind in kinds:
            directory = data / kind
            directory.mkdir()
            options: tuple[str, ...] = ()
            receiver: Child | None = None
            if kind != "baseline":
                receiver, port = _receiver(fleet, kind)
                config = data / f"notify-{kind}.toml"
                sink_url = f"http://127.0.0.1:{port}/hook"
                config.write_text(notify_file(sink_url, max_queued=max_queued))
                options = ("--notify", str(config))
            child, port = fleet.broker(directory, timeout=broker.STARTUP_TIMEOUT_S, options=options)
            url = f"ws://127.0.0.1:{port}"
            servers = Servers({"broker": child}, {"broker": url})
            brokers[kind] = _Broker(servers, url, receiver)
        yield brokers


def _per_event_us(cpu_s: float | None, events: int) -> float | None:
    return None if cpu_s is None else cpu_s / events * 1e6


def turn(kinds: Sequence[Kind], repeat: int) -> list[Kind]:
    """The order of the variants in repeat ``repeat``: turned by one each repeat, so no
    variant always runs first (or right after another's work)."""
    shift = repeat % len(kinds) if kinds else 0
    return [*kinds[shift:], *kinds[:shift]]


def settled(kind: Kind, published: int) -> Callable[[SinkFigures], bool]:
    """When the broker's figures account for ``published`` errors: all queued or dropped (a
    dead sink delivers none), or for a live sink, all delivered or dropped and none queued
    (``sent`` counts a message once the receiver answered, which may be before the sender has
    removed it from the queue: both are waited for)."""
    if kind == "live":
        return lambda f: f.queued == 0 and f.sent + f.dropped >= published
    return lambda f: f.queued + f.dropped >= published


def measure(
    *,
    events: int = EVENTS,
    warm: int = WARM,
    repeats: int = REPEATS,
    live: bool = True,
    max_queued: int = MAX_QUEUED,
) -> NotifyIngestMeasurement:
    """Durable ingest from one worker, JSON, with errors mixed in, per variant."""
    kinds: tuple[Kind, ...] = KINDS if live else ("baseline", "dead")
    errors = errors_in(1, warm + events)
    outcomes: dict[Kind, list[StreamOutcome]] = {kind: [] for kind in kinds}
    sinks: dict[Kind, list[SinkFigures]] = {kind: [] for kind in kinds}
    load = load_average()
    fill = max_queued * ERROR_EVERY
    with _brokers(kinds, max_queued) as brokers:
        for kind in kinds:
            # Untimed, to every broker alike: the dead sink's queue is full from here on.
            broker.ingest_stream(
                brokers[kind].servers, "broker", "json", 0, fill, error_every=ERROR_EVERY
            )
        for repeat in range(repeats):
            for kind in turn(kinds, repeat):
                servers = brokers[kind].servers
                outcome = broker.ingest_stream(
                    servers, "broker", "json", warm, events, error_every=ERROR_EVERY
                )
                outcomes[kind].append(outcome)
                figures = SinkFigures(0, 0, 0, 0)
                if kind != "baseline":
                    published = max_queued + errors * (repeat + 1)
                    figures = wait_for_sink(brokers[kind].url, settled(kind, published))
                sinks[kind].append(figures)
        receivers: dict[Kind, tuple[int, int]] = {}
        for kind, entry in brokers.items():
            if entry.receiver is not None:
                receivers[kind] = wait_for_receiver(entry.receiver)
        warnings = sum(entry.servers.broker_warnings for entry in brokers.values())
    variants = tuple(
        Variant(
            kind,
            tuple(outcome.sample(events) for outcome in outcomes[kind]),
            tuple(_per_event_us(outcome.server_cpu_s, events) for outcome in outcomes[kind]),
            tuple(sinks[kind]),
        )
        for kind in kinds
    )
    return NotifyIngestMeasurement(
        variants=variants,
        events=events,
        warm=warm,
        repeats=repeats,
        errors_per_repeat=errors,
        max_queued=max_queued,
        receivers=receivers,
        broker_warnings=warnings,
        load_average=load,
    )


# The report -------------------------------------------------------------------------------

HEADER: Final = (
    "variant",
    "broker CPU us/event",
    "queued",
    "dropped",
    "sent",
    "min events/s",
    "median events/s",
    "max events/s",
    "median vs no --notify",
    "server CPU",
    "server CPU wait",
    "client CPU",
    "other CPU",
)


def _cpu_cell(values: Sequence[float | None]) -> str:
    known = [value for value in values if value is not None]
    return f"{statistics.median(known):.2f}" if known else "n/a"


def _row(variant: Variant, ratio: float) -> tuple[str, ...]:
    if variant.kind == "baseline" or not variant.sink:
        sink = ("n/a", "n/a", "n/a")
    else:
        last = variant.sink[-1]
        sink = (f"{last.queued:,}", f"{last.dropped:,}", f"{last.sent:,}")
    return rate_row(variant.rates, ratio, _cpu_cell(variant.broker_cpu_us), *sink)


def _sink_note(variant: Variant) -> str:
    per_repeat = "; ".join(
        f"{f.queued:,} queued, {f.dropped:,} dropped, {f.sent:,} sent,"
        f" {f.failed_attempts:,} failed attempts"
        for f in variant.sink
    )
    return f"{variant.name}, the sink's `stats` after each repeat: {per_repeat}"


def _receiver_note(result: NotifyIngestMeasurement) -> str:
    parts = []
    for kind, (connections, requests) in result.receivers.items():
        parts.append(
            f"{kind} receiver: {connections:,} connections accepted, {requests:,} requests answered"
        )
    return "At the end: " + "; ".join(parts) if parts else "No receiver was started"


def report(result: NotifyIngestMeasurement) -> Report:
    baseline, dead = result.variant("baseline"), result.variant("dead")
    notes = (
        f"`broker-ingest`'s workload, JSON: one worker publishes `publish` frames of {BATCH}"
        f" events with at most {WINDOW} frames unacknowledged; an event counts once the"
        " cumulative `ack` covering it arrives, i.e. once it is committed (SQLite WAL,"
        f" synchronous=full). Every {ERROR_EVERY}th event is a `WorkspaceEvent` of severity"
        f" `error`, the others `LogRecord`s: {result.errors_per_repeat:,} errors per repeat,"
        " warm-up included, sent to every broker alike",
        "Baseline: `pierhead serve` without `--notify`. The others: `--notify` with one"
        f' `webhook` sink (`triggers = ["event"]`, `min_severity = "error"`, `max_queued ='
        f" {result.max_queued:,}`, the other keys at their defaults: `timeout` 10 s,"
        " `coalesce` 2 s, `queue_delay` 0.25 s), so each error is queued in the store within"
        " 0.25 s of its event's commit (which marks its workspace until then) and, once the"
        " queue is full, its oldest are dropped (an eighth of the bound at a time)."
        " Before the repeats, untimed, every"
        f" broker is sent {result.max_queued * ERROR_EVERY:,} events of the same flood, which"
        " fill the queue to its bound: the repeats measure a sink that has been down for a"
        " while. The dead receiver accepts each TCP"
        " connection, reads the request and never answers (the sender waits out its timeout,"
        " then retries with backoff); the live one answers `200` at once",
        f"{result.repeats} interleaved repeats of {result.events:,} events after"
        f" {result.warm:,} warm-up events, the order of the brokers turned by one each repeat;"
        " each broker has its own store; `vs no --notify` is the median of per-repeat ratios",
        "After each repeat, outside the measured span, the benchmark waits until the broker's"
        " `stats` account for every error published to it (queued + dropped, or for the live"
        " sink sent + dropped); queued, dropped and sent are those of the last repeat (dropped"
        " and sent add up over the run)",
        *(_sink_note(v) for v in result.variants if v.kind != "baseline"),
        _receiver_note(result),
        "CPU per event: the broker's CPU time over a repeat, divided by its events",
        broker.LOAD_NOTE,
        machine_note(result.broker_warnings, result.load_average),
    )
    baseline_rates = baseline.rates
    rows = [_row(baseline, 1.0)]
    rows += [
        _row(v, paired_ratio(v.rates, baseline_rates)) for v in result.variants if v is not baseline
    ]
    ratio = paired_ratio(dead.rates, baseline_rates)
    goal = Goal(
        f"{NAMES['dead']} >= {GOAL:.2f}x no --notify",
        f"{ratio:.2f}x ({dead.rates.median_rate:,.0f} vs {baseline_rates.median_rate:,.0f}"
        " events/s)",
        passed=ratio >= GOAL,
    )
    return Report(
        name="notify-ingest",
        title=f"durable ingest with a notification sink that never answers, batches of {BATCH}",
        notes=notes,
        header=HEADER,
        rows=tuple(rows),
        goals=(goal,),
    )


def run(*, quick: bool) -> Report:
    if quick:
        return report(
            measure(
                events=QUICK_EVENTS,
                warm=QUICK_WARM,
                repeats=QUICK_REPEATS,
                max_queued=QUICK_MAX_QUEUED,
            )
        )
    return report(measure())
