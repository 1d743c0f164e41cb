"""The soak's growth verdict on synthetic series: what levels off passes, what keeps growing
fails, whatever the noise."""

from __future__ import annotations

import math
import random

import pytest

from tests.soak.growth import Tolerance, judge_growth

STEP_S = 5.0
WARMUP_S = 150.0
TIMES = [STEP_S * i for i in range(121)]
"""Ten minutes, a sample every five seconds, as in a 10-minute soak."""
RSS = Tolerance(absolute=2.0, relative=0.02)
"""As a soak judges RSS in MiB."""


def judge(values: list[float], tolerance: Tolerance = RSS, warmup_s: float = WARMUP_S) -> bool:
    return judge_growth("series", TIMES, values, warmup_s=warmup_s, tolerance=tolerance).passed


def noise(seed: int, spread: float) -> list[float]:
    rng = random.Random(seed)
    return [rng.uniform(-spread, spread) for _ in TIMES]


def test_a_flat_series_passes() -> None:
    verdict = judge_growth("rss", TIMES, [80.0] * len(TIMES), warmup_s=WARMUP_S, tolerance=RSS)
    assert verdict.passed
    assert verdict.medians == (80.0, 80.0, 80.0)
    assert verdict.rise == 0.0
    assert verdict.judged == sum(t >= WARMUP_S for t in TIMES)
    assert verdict.line().startswith("PASS  rss: ")


@pytest.mark.parametrize("mib_per_minute", [1.0, 3.0, 20.0])
def test_steady_linear_growth_fails(mib_per_minute: float) -> None:
    values = [80.0 + mib_per_minute * t / 60 for t in TIMES]
    verdict = judge_growth("rss", TIMES, values, warmup_s=WARMUP_S, tolerance=RSS)
    assert not verdict.passed
    # A third of the growth over the judged window, give or take a sample.
    third = (TIMES[-1] - WARMUP_S) / 3
    assert verdict.rise == pytest.approx(mib_per_minute * third / 60, rel=0.1)
    assert "still growing" in verdict.line()


def test_growth_under_the_tolerance_passes() -> None:
    # 0.1 MiB a minute: a quarter of a MiB per third of the window, under the 2 MiB allowed.
    assert judge([80.0 + 0.1 * t / 60 for t in TIMES])


@pytest.mark.parametrize("settled_at_s", [60.0, 200.0, 300.0])
def test_a_rise_that_levels_off_passes(settled_at_s: float) -> None:
    # Climbs 60 MiB, then stays: during the warm-up, or within the first third after it.
    values = [80.0 + 60.0 * min(t, settled_at_s) / settled_at_s for t in TIMES]
    assert judge(values)


def test_a_rise_that_levels_off_smoothly_passes() -> None:
    # Approaches 140 MiB exponentially with a one-minute time constant.
    values = [140.0 - 60.0 * math.exp(-t / 60) for t in TIMES]
    assert judge(values)


def test_a_rise_still_going_at_the_end_fails() -> None:
    # Flat for most of the run, then growing through the last third.
    values = [80.0 + max(0.0, t - 400.0) / 10 for t in TIMES]
    assert not judge(values)


@pytest.mark.parametrize("seed", range(20))
def test_noise_around_a_flat_level_passes(seed: int) -> None:
    # Uniform noise of +-3 MiB (and a few spikes of 30 MiB) around 80 MiB: wider than the
    # tolerance, yet the medians stay put.
    values = [80.0 + n for n in noise(seed, 3.0)]
    for index in random.Random(seed).sample(range(len(values)), 6):
        values[index] += 30.0
    assert judge(values)


@pytest.mark.parametrize("seed", range(20))
def test_noise_does_not_hide_steady_growth(seed: int) -> None:
    values = [80.0 + 3.0 * t / 60 + n for t, n in zip(TIMES, noise(seed, 3.0), strict=True)]
    assert not judge(values)


def test_the_warm_up_is_left_out() -> None:
    # Growth during the first 150 s only: it fails when judged, passes when left out.
    values = [80.0 + 40.0 * min(t, WARMUP_S) / WARMUP_S for t in TIMES]
    short = TIMES[: TIMES.index(WARMUP_S) + 8]
    assert not judge_growth("rss", short, values[: len(short)], warmup_s=0.0, tolerance=RSS).passed
    assert judge_growth("rss", TIMES, values, warmup_s=WARMUP_S, tolerance=RSS).passed


def test_the_relative_tolerance_scales_with_the_level() -> None:
    # A rise of 3 MiB per third: over the 2 MiB floor, under 2% of 500 MiB.
    low = [100.0 + 3.0 * t / 150 for t in TIMES]
    high = [500.0 + 3.0 * t / 150 for t in TIMES]
    assert not judge(low)
    assert judge(high)


def test_queue_depths_that_come_and_go_pass_and_a_backlog_that_builds_fails() -> None:
    backlog = Tolerance(absolute=2000.0)
    rng = random.Random(7)
    bursts = [float(rng.choice([0, 0, 0, 40, 900, 4800])) for _ in TIMES]
    assert judge(bursts, backlog)
    # Falling behind by 20 events a second: 12,000 events per judged third.
    assert not judge([b + 20.0 * t for b, t in zip(bursts, TIMES, strict=True)], backlog)


def test_fds_growing_by_one_a_minute_fail() -> None:
    fds = Tolerance(absolute=1.0)
    assert judge([40.0] * len(TIMES), fds)
    assert not judge([40.0 + t // 60 for t in TIMES], fds)


@pytest.mark.parametrize("warmup_s", [TIMES[-1] - 20.0, TIMES[-1] + 5.0])
def test_too_few_samples_after_the_warm_up_fail(warmup_s: float) -> None:
    verdict = judge_growth("rss", TIMES, [80.0] * len(TIMES), warmup_s=warmup_s, tolerance=RSS)
    assert not verdict.passed
    assert "needed to judge" in verdict.reason


def test_times_and_values_must_pair_up() -> None:
    with pytest.raises(ValueError, match="times for"):
        judge_growth("rss", TIMES, [1.0], warmup_s=0.0, tolerance=RSS)


def test_the_verdict_shows_the_medians_and_the_rise() -> None:
    values = [120.0 + (0.5 if t >= 450 else 0.0) for t in TIMES]
    verdict = judge_growth("rss", TIMES, values, warmup_s=WARMUP_S, tolerance=RSS, unit=" MiB")
    assert verdict.reason == (
        "medians of the judged thirds 120 MiB -> 120 MiB -> 120.50 MiB; last rise +0.50 MiB, "
        "allowed 2.40 MiB (levelled off)"
    )


def test_the_tolerance_says_what_it_allows() -> None:
    assert RSS.describe(" MiB") == "max(2 MiB, 2% of the level)"
    assert Tolerance(absolute=1.0).describe(" fds") == "1 fds"
    assert RSS.allowed(80.0) == 2.0
    assert RSS.allowed(500.0) == pytest.approx(10.0)
