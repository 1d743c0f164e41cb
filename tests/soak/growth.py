"""Whether a sampled series kept growing or levelled off: pure, no I/O, no clock.

Samples taken during the warm-up are left out: caches fill, retention has not run yet and the
store has not reached its size. The rest, the judged window, is cut into three equal spans of
time, and each span is summed up by its median, which a few outliers (a commit burst, a
garbage collection) do not move. A series that levels off has the same level in the last two
spans; one that keeps growing rises from the middle span to the last by a third of its growth
over the window. The verdict fails when that last rise exceeds the series' tolerance.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

SPANS = 3
"""Equal spans of time the judged window is cut into."""
MIN_PER_SPAN = 2
"""Samples each span needs for a verdict."""


@dataclass(frozen=True, slots=True)
class Tolerance:
    """How far the last span's median may rise above the middle one's: the larger of
    ``absolute`` and ``relative`` times the middle span's level."""

    absolute: float
    relative: float = 0.0

    def allowed(self, level: float) -> float:
        return max(self.absolute, self.relative * abs(level))

    def describe(self, unit: str) -> str:
        absolute = f"{_figure(self.absolute)}{unit}"
        if not self.relative:
            return absolute
        return f"max({absolute}, {self.relative:.0%} of the level)"


@dataclass(frozen=True, slots=True)
class Verdict:
    name: str
    passed: bool
    medians: tuple[float, ...]
    """The median of each span of the judged window, oldest first (empty if too few samples)."""
    rise: float
    """Last span's median minus the middle span's."""
    allowed: float
    judged: int
    """Samples after the warm-up."""
    reason: str

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'}  {self.name}: {self.reason}"


def judge_growth(
    name: str,
    times: Sequence[float],
    values: Sequence[float],
    *,
    warmup_s: float,
    tolerance: Tolerance,
    unit: str = "",
) -> Verdict:
    """Judge the samples ``values`` taken at ``times`` (seconds since the start, ascending)."""
    if len(times) != len(values):
        raise ValueError(f"{len(times)} times for {len(values)} values")
    judged = [(t, v) for t, v in zip(times, values, strict=True) if t >= warmup_s]
    if len(judged) < SPANS * MIN_PER_SPAN:
        return _unjudged(
            name,
            len(judged),
            f"{len(judged)} samples after the {warmup_s:g} s warm-up; "
            f"at least {SPANS * MIN_PER_SPAN} are needed to judge",
        )
    start, end = judged[0][0], judged[-1][0]
    width = (end - start) / SPANS
    spans: list[list[float]] = [[] for _ in range(SPANS)]
    for t, v in judged:
        # The last sample sits on the window's end and belongs to the last span.
        index = min(SPANS - 1, int((t - start) / width)) if width > 0 else 0
        spans[index].append(v)
    if any(len(span) < MIN_PER_SPAN for span in spans):
        counts = "/".join(str(len(span)) for span in spans)
        return _unjudged(
            name,
            len(judged),
            f"samples per span {counts}: at least {MIN_PER_SPAN} each are needed to judge",
        )
    medians = tuple(statistics.median(span) for span in spans)
    rise = medians[-1] - medians[-2]
    allowed = tolerance.allowed(medians[-2])
    passed = rise <= allowed
    levels = " -> ".join(f"{_figure(m)}{unit}" for m in medians)
    reason = (
        f"medians of the judged thirds {levels}; last rise {_signed(rise)}{unit}, "
        f"allowed {_figure(allowed)}{unit} ({'levelled off' if passed else 'still growing'})"
    )
    return Verdict(name, passed, medians, rise, allowed, len(judged), reason)


def _unjudged(name: str, judged: int, reason: str) -> Verdict:
    """Too few samples to tell: a failure, since a soak that cannot judge proved nothing."""
    return Verdict(name, False, (), 0.0, 0.0, judged, reason)


def _figure(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.2f}"


def _signed(value: float) -> str:
    return ("+" if value >= 0 else "-") + _figure(abs(value))
