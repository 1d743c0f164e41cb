"""The auth-cost benchmark, run with tiny counts: its structure is checked, never its timings.

The measurement starts two real brokers and the client processes, so this also shows that
every process is gone afterwards.
"""

from __future__ import annotations

import statistics

import pytest

import bench.auth
from bench.__main__ import BENCHMARKS
from bench._stats import Rates, Sample, paired_ratio

REPEATS = 2


@pytest.fixture(scope="module")
def measurement() -> bench.auth.AuthMeasurement:
    return bench.auth.measure_auth(
        events=300, warm=100, sessions=12, sessions_warm=3, concurrency=2, repeats=REPEATS
    )


def test_both_brokers_are_measured_for_ingest_and_sessions(
    measurement: bench.auth.AuthMeasurement,
) -> None:
    for kind in (measurement.ingest, measurement.sessions):
        assert list(kind) == list(bench.auth.MODES)
        for rates in kind.values():
            assert len(rates.samples) == REPEATS
            assert all(sample.rate > 0 for sample in rates.samples)
            assert all(sample.client_load >= 0 for sample in rates.samples)
            assert rates.min_rate <= rates.median_rate <= rates.max_rate
    assert measurement.ingest_ratio > 0
    assert measurement.sessions_ratio > 0
    assert measurement.broker_warnings == 0


def test_the_report_has_a_row_per_variant_and_one_goal(
    measurement: bench.auth.AuthMeasurement,
) -> None:
    report = bench.auth.auth_report(measurement)
    assert report.name == "auth-cost"
    assert len(report.rows) == 4
    assert all(len(row) == len(report.header) for row in report.rows)
    assert [row[0] for row in report.rows] == [
        rates.name for kind in (measurement.ingest, measurement.sessions) for rates in kind.values()
    ]
    (goal,) = report.goals
    assert goal.passed is (measurement.ingest_ratio >= bench.auth.INGEST_GOAL)
    # Both ratios are reported.
    assert f"{measurement.ingest_ratio:.2f}x" in goal.measured
    assert f"sessions {measurement.sessions_ratio:.2f}x" in goal.measured


def test_the_runner_knows_it() -> None:
    assert BENCHMARKS["auth-cost"] is bench.auth.run


def _rates(*values: float) -> Rates:
    return Rates("r", tuple(Sample(value, None, None, 0.0, None) for value in values))


def test_ratios_pair_each_repeat_with_its_twin() -> None:
    # Both brokers slow down over the repeats, which run in alternating order.
    plain = _rates(500, 300, 450, 400)
    token = _rates(490, 280, 445, 330)
    ratio = paired_ratio(token, plain)
    assert ratio == pytest.approx(statistics.median([490 / 500, 280 / 300, 445 / 450, 330 / 400]))
    # A ratio of medians would mix repeats from different points of the drift.
    assert ratio != pytest.approx(token.median_rate / plain.median_rate)
    with pytest.raises(ValueError, match="zip"):
        paired_ratio(_rates(1, 2), plain)
