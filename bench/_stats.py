"""The benchmarks' figures over repeats: rates and latencies, how they compare with a baseline,
how busy the machine was meanwhile, and the cells every report shows them in.

Every benchmark measures several repeats and reports each figure as min, median and max over
them (:class:`bench._report.Spread`); comparisons with a baseline are medians over medians
(:class:`Comparison`) or, where the repeats drift alike for both, the median of per-repeat ratios
(:func:`paired_ratio`).
"""

from __future__ import annotations

import itertools
import math
import os
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ._procs import system_cpu_seconds
from ._report import Spread, spread_cell

# Rates ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    """One repeat: a rate, and how busy the server and the clients were meanwhile."""

    rate: float
    """Events per second (ingest), or deliveries per second summed over watchers (fan-out)."""
    server_load: float | None
    """CPU time of the broker or relay process over the measured span, in cores."""
    server_wait: float | None
    """Time the server's threads were ready to run but had no CPU, in cores (contention)."""
    client_load: float
    """CPU time of the publisher and watcher processes over the measured span, in cores."""
    other_load: float | None
    """CPU time of everything else on the machine meanwhile, in cores."""


@dataclass(frozen=True, slots=True)
class Rates:
    """One variant's samples, one per repeat."""

    name: str
    samples: tuple[Sample, ...]

    @property
    def rates(self) -> tuple[float, ...]:
        return tuple(sample.rate for sample in self.samples)

    @property
    def min_rate(self) -> float:
        return min(self.rates)

    @property
    def median_rate(self) -> float:
        return statistics.median(self.rates)

    @property
    def max_rate(self) -> float:
        return max(self.rates)

    @property
    def server_load(self) -> float | None:
        """Median over repeats; None where the platform does not tell."""
        loads = [sample.server_load for sample in self.samples if sample.server_load is not None]
        return statistics.median(loads) if loads else None

    @property
    def server_wait(self) -> float | None:
        waits = [sample.server_wait for sample in self.samples if sample.server_wait is not None]
        return statistics.median(waits) if waits else None

    @property
    def client_load(self) -> float:
        return statistics.median(sample.client_load for sample in self.samples)

    @property
    def other_load(self) -> float | None:
        loads = [sample.other_load for sample in self.samples if sample.other_load is not None]
        return statistics.median(loads) if loads else None


@dataclass(frozen=True, slots=True)
class Comparison:
    """The broker and the relay on the same workload."""

    label: str
    events: int
    """Events published per repeat, after the warm-up."""
    broker: Rates
    relay: Rates
    envelope_relay: Rates | None = None
    """The relay forwarding ``events`` frames instead (fan-out only; no goal)."""

    @property
    def ratio(self) -> float:
        """Median over median."""
        return self.broker.median_rate / self.relay.median_rate

    @property
    def envelope_ratio(self) -> float | None:
        """The broker's median over the envelope relay's."""
        if self.envelope_relay is None:
            return None
        return self.broker.median_rate / self.envelope_relay.median_rate


def paired_ratio(rates: Rates, baseline: Rates) -> float:
    """The median over repeats of ``rates`` over ``baseline`` in the same repeat.

    Ingest can drift over the repeats, alike for both brokers (it slowed by a fifth from the
    first repeat to the sixth in one run). Pairing each repeat with its twin keeps such drift
    out of the ratio; a ratio of medians would not.
    """
    return statistics.median(
        sample.rate / base.rate
        for sample, base in zip(rates.samples, baseline.samples, strict=True)
    )


def load_cell(cores: Iterable[float | None]) -> str:
    """A load column's cell: ``median (min..max)`` over the repeats that know it."""
    return spread_cell(cores, ".2f")


def rate_row(rates: Rates, ratio: float, *cells: str) -> tuple[str, ...]:
    """A variant's row: its name, ``cells``, min, median and max rate, ``ratio`` to the
    baseline, then the server CPU, server CPU wait, client CPU and other CPU load cells."""
    samples = rates.samples
    return (
        rates.name,
        *cells,
        *Spread.of(rates.rates).cells(",.0f"),
        f"{ratio:.2f}x",
        load_cell(sample.server_load for sample in samples),
        load_cell(sample.server_wait for sample in samples),
        load_cell(sample.client_load for sample in samples),
        load_cell(sample.other_load for sample in samples),
    )


# Latencies ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Latencies:
    """Latencies in milliseconds, pooled over repeats, with each repeat's p50 and p99."""

    name: str
    samples_ms: tuple[float, ...]
    """Sorted."""
    repeat_p50_ms: tuple[float, ...]
    repeat_p99_ms: tuple[float, ...]

    @classmethod
    def of(cls, name: str, repeats: Sequence[Sequence[float]]) -> Latencies:
        pooled = tuple(sorted(itertools.chain.from_iterable(repeats)))
        if not pooled:
            raise ValueError(f"{name}: no latency samples")
        ordered = [sorted(repeat) for repeat in repeats]
        return cls(
            name,
            pooled,
            tuple(percentile(repeat, 50) for repeat in ordered),
            tuple(percentile(repeat, 99) for repeat in ordered),
        )

    @property
    def p50_spread(self) -> Spread:
        """The p50 of each repeat, over repeats."""
        return Spread.of(self.repeat_p50_ms)

    @property
    def p99_spread(self) -> Spread:
        """The p99 of each repeat, over repeats."""
        return Spread.of(self.repeat_p99_ms)

    @property
    def p50_ms(self) -> float:
        return percentile(self.samples_ms, 50)

    @property
    def p99_ms(self) -> float:
        return percentile(self.samples_ms, 99)

    @property
    def max_ms(self) -> float:
        return self.samples_ms[-1]


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted samples."""
    if not ordered:
        raise ValueError("no samples")
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


# The machine ----------------------------------------------------------------------------------


def load_average() -> float | None:
    """The 1-minute load average: other work on the machine shows in the figures."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def machine_note(broker_warnings: int, load_average: float | None) -> str:
    """A report's note on what else might have weighed on its figures."""
    load = "unknown" if load_average is None else f"{load_average:.2f}"
    return (
        f"Broker log lines at warning level or above: {broker_warnings};"
        f" 1-minute load average before the measurement: {load}"
    )


class MachineClock:
    """CPU used on the whole machine over a span, to tell how much other work took."""

    def __init__(self) -> None:
        self._system = system_cpu_seconds()
        self._own = time.process_time()
        self._wall = time.monotonic()
        self.wall_s = 0.0
        self._other_s: float | None = None

    def stop(self, server_cpu_s: float | None, client_cpu_s: float) -> None:
        """End the span; ``server_cpu_s`` and ``client_cpu_s`` are the benchmark's own use."""
        self.wall_s = time.monotonic() - self._wall
        system = system_cpu_seconds()
        if self._system is not None and system is not None and server_cpu_s is not None:
            own = time.process_time() - self._own
            spent = system - self._system
            self._other_s = max(0.0, spent - own - server_cpu_s - client_cpu_s)

    @property
    def other_load(self) -> float | None:
        """Cores used by processes other than the benchmark's, over the span; None if unknown."""
        return None if self._other_s is None else self._other_s / max(self.wall_s, 1e-9)
