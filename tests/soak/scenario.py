"""The soak: a steady load on a broker process for a while, sampled, then judged.

``await run_soak(directory, SoakConfig(minutes=10, rate=2000))`` runs ``pierhead serve`` as a
child process on ``directory / "data"``, with a retention small enough that the store reaches
its steady size early in the run. SDK workers on several workspaces publish a mix of scalars,
logs, progress and status at a steady rate that sums to ``rate``; SDK watchers follow patterns
(some with a kinds filter) from ``earliest`` and drain everything. Every ``sample_every_s``
the broker's RSS, open file descriptors, store size and ``stats`` queue depths are sampled.

Once the time is up the load stops, the workers flush, the watchers catch up, and the report
judges: each series levelled off after the warm-up (``tests.soak.growth``); the rate was
reached; every event queued was acknowledged and received by every watcher it was meant for,
by count, with no gap and no ``Missed``; the queues emptied once the load stopped; the broker
logged no warning and drained cleanly on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import schema
import sdk
from bench._report import Goal, Report, render_text
from broker.testing import BrokerProcess, broker_process
from tests.soak.growth import Tolerance, Verdict, judge_growth
from tests.soak.load import WatcherTally, WorkerRun, drain, publish_paced
from tests.soak.probe import BrokerProbe, Sample
from tests.support import until

RETENTION_INTERVAL_S = 60.0
"""How often the broker applies retention (its default, which ``pierhead serve`` keeps)."""
WATCHERS: tuple[tuple[str, list[schema.PayloadKind] | None], ...] = (
    ("soak-*", None),
    ("soak-[0-3]", None),
    ("soak-1", ["log"]),
    ("soak-*", ["scalar", "progress"]),
)
"""Each watcher's pattern and kinds filter; those without a filter also fold the state."""
QUEUES = ("writer_backlog", "outbox_bytes", "watcher_lag_events")
"""The ``stats`` counters that must come back to zero once the load stops."""
TABLE_ROWS = 30
"""At most this many samples are printed, evenly spread; the verdicts use all of them."""
_EXPECTED_WARNINGS = frozenset({"auth_off"})
"""Warnings every broker started without --auth gives."""


class SoakError(AssertionError):
    """The soak could not run to its end (a client failed, a step timed out)."""


@dataclass(frozen=True, slots=True)
class SoakConfig:
    minutes: float = 10.0
    rate: float = 2000.0
    """Events per second, summed over all workers."""
    sample_every_s: float = 5.0
    warmup_s: float = 150.0
    """Samples before this are not judged: by then the tail is full and retention has trimmed
    twice, after which the store's files keep their size."""
    workspaces: int = 8
    workers_per_workspace: int = 2
    retention_events: int = 5000
    """The broker's ``--retention-events`` (per workspace)."""
    settle_s: float = 60.0
    """The longest the flush, the watchers' catching up or the queues' emptying may take."""

    @property
    def duration_s(self) -> float:
        return self.minutes * 60

    @property
    def names(self) -> list[str]:
        return [f"soak-{n}" for n in range(self.workspaces)]

    @property
    def workers(self) -> int:
        return self.workspaces * self.workers_per_workspace


@dataclass(frozen=True, slots=True)
class SeriesSpec:
    """One sampled series: its column, its unit and how it is judged (None: shown only)."""

    column: str
    unit: str
    value: Callable[[Sample], float]
    tolerance: Tolerance | None
    why: str = ""


def series_for(config: SoakConfig) -> list[SeriesSpec]:
    """The sampled series and their tolerances; queue tolerances scale with the rate."""
    second_of_load = Tolerance(absolute=config.rate)
    return [
        SeriesSpec("RSS MiB", " MiB", lambda s: s.rss_mib, Tolerance(absolute=2.0, relative=0.02)),
        SeriesSpec("fds", " fds", lambda s: s.fds, Tolerance(absolute=1.0)),
        SeriesSpec(
            "store MiB", " MiB", lambda s: s.store_mib, Tolerance(absolute=4.0, relative=0.05)
        ),
        SeriesSpec(
            "writer backlog",
            " events",
            lambda s: s.counter("writer_backlog"),
            second_of_load,
            "events submitted, not yet committed",
        ),
        SeriesSpec(
            "outbox KiB",
            " KiB",
            lambda s: s.counter("outbox_bytes") / 1024,
            Tolerance(absolute=1024.0),
            "bytes queued to send, over all sessions",
        ),
        SeriesSpec(
            "watcher lag",
            " events",
            lambda s: s.counter("watcher_lag_events"),
            second_of_load,
            "committed events not yet handed to a watcher, over all subscriptions",
        ),
        SeriesSpec("request tasks", " tasks", lambda s: s.counter("request_tasks"), Tolerance(2.0)),
        SeriesSpec(
            "tail events",
            " events",
            lambda s: s.counter("tail_events"),
            None,
            "recent events kept in memory for live subscribers, a bounded number across"
            " workspaces; shown, not judged",
        ),
    ]


@dataclass(slots=True)
class Check:
    description: str
    passed: bool
    measured: str


@dataclass(slots=True)
class SoakReport:
    config: SoakConfig
    samples: list[Sample]
    verdicts: list[tuple[SeriesSpec, Verdict]] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(v.passed for _, v in self.verdicts) and all(c.passed for c in self.checks)

    def render(self) -> str:
        specs = series_for(self.config)
        header = ("t", *(spec.column for spec in specs), "committed/s")
        rows = [self._row(index, specs) for index in _spread(len(self.samples), TABLE_ROWS)]
        goals = [
            Goal(f"{spec.column} levelled off", verdict.reason, verdict.passed)
            for spec, verdict in self.verdicts
        ]
        goals += [Goal(check.description, check.measured, check.passed) for check in self.checks]
        config = self.config
        report = Report(
            name="soak",
            title=f"{config.minutes:g} min at {config.rate:,.0f} events/s",
            notes=tuple(self.notes),
            header=header,
            rows=tuple(rows),
            goals=tuple(goals),
        )
        return render_text(report) + f"\nsoak {'PASSED' if self.passed else 'FAILED'}"

    def _row(self, index: int, specs: Sequence[SeriesSpec]) -> tuple[str, ...]:
        sample = self.samples[index]
        minutes, seconds = divmod(round(sample.t_s), 60)
        time_cell = f"{minutes}:{seconds:02d}" + (
            " warm-up" if sample.t_s < self.config.warmup_s else ""
        )
        cells = [_cell(spec.value(sample)) for spec in specs]
        rate = "-"
        if index > 0:
            before = self.samples[index - 1]
            committed = sample.counter("events_committed") - before.counter("events_committed")
            rate = f"{committed / (sample.t_s - before.t_s):,.0f}"
        return (time_cell, *cells, rate)


def _cell(value: float) -> str:
    return f"{value:,.1f}" if value != int(value) else f"{value:,.0f}"


def _spread(count: int, most: int) -> list[int]:
    """Up to ``most`` indices out of ``count``, evenly spread, first and last included."""
    if count <= most:
        return list(range(count))
    return sorted({round(i * (count - 1) / (most - 1)) for i in range(most)})


# The run ---------------------------------------------------------------------------------------


async def run_soak(
    directory: Path, config: SoakConfig, progress: Callable[[str], None] = lambda _: None
) -> SoakReport:
    """Run the soak with its store in ``directory / "data"``; ``progress`` gets a line a minute."""
    limit = config.duration_s + 4 * config.settle_s + 60
    stage = ["starting"]
    try:
        async with asyncio.timeout(limit):
            return await _run(directory, config, progress, stage)
    except TimeoutError as exc:
        raise SoakError(f"timed out after {limit:g} s while {stage[0]}") from exc


async def _run(
    directory: Path, config: SoakConfig, progress: Callable[[str], None], stage: list[str]
) -> SoakReport:
    data = directory / "data"
    runs = [
        WorkerRun(name, f"soak-run-{n}", config.rate / config.workers)
        for n, name in enumerate(
            name for name in config.names for _ in range(config.workers_per_workspace)
        )
    ]
    tallies = [WatcherTally(pattern, kinds) for pattern, kinds in WATCHERS]
    report = SoakReport(config, [])
    async with contextlib.AsyncExitStack() as stack:
        broker = await stack.enter_async_context(
            broker_process(data, "--retention-events", str(config.retention_events))
        )
        probe_client = await stack.enter_async_context(sdk.Watcher(broker.url, client="soak-probe"))
        probe = BrokerProbe(broker.process.pid, data, probe_client)
        tasks: list[asyncio.Task[None]] = []
        stack.push_async_callback(_cancel_all, tasks)

        stage[0] = "subscribing"
        watchers = [probe_client]
        for tally in tallies:
            watcher = await stack.enter_async_context(sdk.Watcher(broker.url, client="soak"))
            watchers.append(watcher)
            subscription = await watcher.subscribe(
                tally.pattern, since="earliest", kinds=tally.kinds
            )
            tally.subscription = subscription
            tasks.append(asyncio.create_task(drain(tally, subscription)))
        workers = [
            await stack.enter_async_context(
                sdk.Worker(broker.url, run.workspace, run_id=run.run_id, client="soak")
            )
            for run in runs
        ]
        for worker in workers:
            await worker.connected()

        stage[0] = "under load"
        stop = asyncio.Event()
        started = time.monotonic()
        publishers = [
            asyncio.create_task(publish_paced(run, worker, stop))
            for run, worker in zip(runs, workers, strict=True)
        ]
        tasks.extend(publishers)
        report.samples = await _sample_until(probe, started, config, tasks, progress)
        stop.set()
        await asyncio.gather(*publishers)
        elapsed = time.monotonic() - started

        stage[0] = "flushing the workers"
        for run, worker in zip(runs, workers, strict=True):
            try:
                await worker.flush(config.settle_s)
            except TimeoutError:
                raise SoakError(
                    f"{run.run_id} did not flush in {config.settle_s:g} s: {worker.counters}"
                ) from None

        stage[0] = "waiting for the watchers to catch up"
        caught_up_s = await _until(lambda: not any(t.shortfall(runs) for t in tallies), config)
        stage[0] = "waiting for the queues to empty"
        drained_s, last = await _until_drained(probe, started, config)

        stage[0] = "stopping"
        counters = [worker.counters for worker in workers]
        for worker in workers:
            await worker.close()
        await _cancel_all(tasks)
        for watcher in watchers:
            await watcher.close()
        code, exit_s = await broker.timed_exit()

    _judge(report, runs, tallies, counters, elapsed, caught_up_s, drained_s, last)
    _explain(report, broker, elapsed)
    _check_logs(report, broker)
    report.checks.append(
        Check("the broker drained on SIGTERM", code == 0, f"exit code {code} in {exit_s:.1f} s")
    )
    return report


async def _sample_until(
    probe: BrokerProbe,
    started: float,
    config: SoakConfig,
    running: Sequence[asyncio.Task[None]],
    progress: Callable[[str], None],
) -> list[Sample]:
    samples: list[Sample] = []
    count = int(config.duration_s // config.sample_every_s)
    reported = -1
    for index in range(count + 1):
        # The sampling schedule, kept against the clock so that slow samples do not stretch it.
        await asyncio.sleep(max(0.0, started + index * config.sample_every_s - time.monotonic()))
        for task in running:
            if task.done():
                failure = task.exception() if not task.cancelled() else None
                raise SoakError(f"a client stopped during the load: {failure!r}") from failure
        sample = await probe.sample(time.monotonic() - started)
        samples.append(sample)
        if int(sample.t_s // 60) > reported:
            reported = int(sample.t_s // 60)
            progress(_progress_line(sample))
    return samples


def _progress_line(sample: Sample) -> str:
    queues = ", ".join(f"{name} {sample.counter(name):,.0f}" for name in QUEUES)
    return (
        f"  {sample.t_s / 60:4.1f} min: RSS {sample.rss_mib:.1f} MiB, {sample.fds} fds, "
        f"store {sample.store_mib:.1f} MiB, {queues}, "
        f"committed {sample.counter('events_committed'):,.0f}"
    )


async def _until(condition: Callable[[], bool], config: SoakConfig) -> float | None:
    """Seconds until ``condition`` held, or None if it did not within ``settle_s`` (a failed
    check of the report)."""
    started = time.monotonic()
    try:
        await until(condition, "the watchers to catch up", timeout=config.settle_s)
    except AssertionError:
        return None
    return time.monotonic() - started


async def _until_drained(
    probe: BrokerProbe, started: float, config: SoakConfig
) -> tuple[float | None, Sample]:
    """Seconds until every queue of ``QUEUES`` read zero (None if not within ``settle_s``),
    and the last sample taken."""
    began = time.monotonic()
    while True:
        sample = await probe.sample(time.monotonic() - started)
        if all(sample.counter(name) == 0 for name in QUEUES):
            return time.monotonic() - began, sample
        if time.monotonic() - began > config.settle_s:
            return None, sample
        await asyncio.sleep(0.1)


async def _cancel_all(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# The verdicts ----------------------------------------------------------------------------------


def _judge(
    report: SoakReport,
    runs: Sequence[WorkerRun],
    tallies: Sequence[WatcherTally],
    counters: Sequence[dict[str, int]],
    elapsed: float,
    caught_up_s: float | None,
    drained_s: float | None,
    last: Sample,
) -> None:
    config = report.config
    times = [sample.t_s for sample in report.samples]
    for spec in series_for(config):
        if spec.tolerance is None:
            continue
        values = [spec.value(sample) for sample in report.samples]
        verdict = judge_growth(
            spec.column,
            times,
            values,
            warmup_s=config.warmup_s,
            tolerance=spec.tolerance,
            unit=spec.unit,
        )
        report.verdicts.append((spec, verdict))

    published = sum(run.total for run in runs)
    achieved = published / elapsed
    report.checks.append(
        Check(
            f"the load reached {config.rate:,.0f} events/s (at least 98%)",
            achieved >= 0.98 * config.rate,
            f"{published:,} events in {elapsed:.1f} s by {len(runs)} workers: "
            f"{achieved:,.0f} events/s",
        )
    )
    acked = sum(c["acked"] for c in counters)
    dropped = sum(c["dropped"] for c in counters)
    report.checks.append(
        Check(
            "every event queued was acknowledged, none dropped",
            acked == published and dropped == 0,
            f"{acked:,} acknowledged, {dropped} dropped of {published:,} queued",
        )
    )
    problems = [problem for tally in tallies for problem in tally.problems(runs)]
    received = ", ".join(f"{tally.label}: {tally.total:,}" for tally in tallies)
    report.checks.append(
        Check(
            "every watcher received every event queued for its pattern and kinds, once, in order",
            not problems and caught_up_s is not None,
            "; ".join(problems)
            if problems
            else f"{received} (caught up {caught_up_s or 0:.1f} s after the flush)",
        )
    )
    depths = ", ".join(f"{name} {last.counter(name):,.0f}" for name in QUEUES)
    report.checks.append(
        Check(
            "the queues emptied once the load stopped",
            drained_s is not None,
            f"{depths} (after {drained_s:.1f} s)"
            if drained_s is not None
            else f"still {depths} after {config.settle_s:g} s",
        )
    )


def _explain(report: SoakReport, broker: BrokerProcess, elapsed: float) -> None:
    config = report.config
    per_workspace = config.rate / config.workspaces
    peak = config.retention_events + per_workspace * RETENTION_INTERVAL_S
    tolerances = "; ".join(
        f"{spec.column} {spec.tolerance.describe(spec.unit)}"
        for spec in series_for(config)
        if spec.tolerance is not None
    )
    report.notes += [
        f"broker: pierhead serve process (pid {broker.process.pid}), "
        f"--retention-events {config.retention_events:,}; retention runs every "
        f"{RETENTION_INTERVAL_S:g} s, so each workspace holds between {config.retention_events:,} "
        f"and about {peak:,.0f} events; pages freed by a trim are reused, so the store's files "
        "level off after a few trims (the warm-up covers the first two); without retention, "
        "memory and disk would grow legitimately",
        f"load: {config.workers} SDK workers on {config.workspaces} workspaces, "
        f"{config.rate / config.workers:,.1f} events/s each ({per_workspace:,.0f} per workspace), "
        "4 scalars, 3 logs, 2 progress and 1 status in every 10 events; for "
        f"{elapsed:.0f} s",
        "watchers (SDK, from earliest, drained): "
        + ", ".join(
            f"{pattern}" + (f" kinds {','.join(kinds)}" if kinds else " (folds the state)")
            for pattern, kinds in WATCHERS
        ),
        f"sampled every {config.sample_every_s:g} s ({len(report.samples)} samples): "
        "RSS = VmRSS, fds = /proc/PID/fd, store = files in the data directory, the rest from "
        "the broker's stats; committed/s between a row and the sample before it",
        f"growth: the first {config.warmup_s:g} s are warm-up; the rest is cut into thirds and "
        "a series fails if the median of the last third exceeds the middle third's by more than "
        f"its tolerance: {tolerances}",
    ]
    report.notes += [f"{spec.column}: {spec.why}" for spec in series_for(config) if spec.why]


def _check_logs(report: SoakReport, broker: BrokerProcess) -> None:
    flagged = [
        record
        for record in broker.logs
        if record.get("level") in {"warning", "error", "critical"}
        and record.get("event") not in _EXPECTED_WARNINGS
    ]
    names = sorted({str(record.get("event")) for record in flagged})
    report.checks.append(
        Check(
            "the broker logged no warning or error",
            not flagged,
            f"{len(flagged)} lines: {', '.join(names)}" if flagged else f"{len(broker.logs)} lines",
        )
    )
