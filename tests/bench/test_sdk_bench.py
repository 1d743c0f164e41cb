"""The SDK benchmarks, run with tiny counts: their structure is checked, never their timings.

The throughput measurement starts a real broker and the client processes, so these tests also
show that every process is gone afterwards.
"""

from __future__ import annotations

import pytest

import bench.sdk
from bench._report import Report
from bench.codec import VariantResult

ENQUEUE_REPEATS = 2
THROUGHPUT_REPEATS = 2


@pytest.fixture(scope="module")
def enqueue() -> bench.sdk.EnqueueMeasurement:
    return bench.sdk.measure_enqueue(iterations=50, repeats=ENQUEUE_REPEATS)


@pytest.fixture(scope="module")
def throughput() -> bench.sdk.ThroughputMeasurement:
    return bench.sdk.measure_throughput(events=300, warm=100, repeats=THROUGHPUT_REPEATS)


def _check_report(report: Report, *, name: str, rows: int, goals: int) -> None:
    assert report.name == name
    assert len(report.rows) == rows
    assert all(len(row) == len(report.header) for row in report.rows)
    assert len(report.goals) == goals


def test_enqueue_measures_every_variant(enqueue: bench.sdk.EnqueueMeasurement) -> None:
    assert [variant.name for variant in enqueue.variants] == list(bench.sdk.ENQUEUE_VARIANTS)
    for variant in enqueue.variants:
        assert len(variant.rates) == ENQUEUE_REPEATS
        assert all(rate > 0 for rate in variant.rates)
        assert variant.min_rate <= variant.median_rate <= variant.max_rate
    assert enqueue.event_bytes > 0
    assert enqueue.gc_enabled


def test_every_sdk_variant_has_a_raw_baseline(enqueue: bench.sdk.EnqueueMeasurement) -> None:
    for name in bench.sdk.SDK_VARIANTS:
        baseline = bench.sdk.ENQUEUE_BASELINES[name]
        assert baseline in bench.sdk.ENQUEUE_VARIANTS
        assert baseline not in bench.sdk.SDK_VARIANTS
        assert enqueue.ratio(name) > 0
        assert enqueue.ratio(baseline) == 1.0


def test_enqueue_report_has_one_goal_per_sdk_variant(
    enqueue: bench.sdk.EnqueueMeasurement,
) -> None:
    report = bench.sdk.enqueue_report(enqueue)
    _check_report(
        report,
        name="sdk-enqueue",
        rows=len(bench.sdk.ENQUEUE_VARIANTS),
        goals=len(bench.sdk.SDK_VARIANTS),
    )


def test_throughput_measures_the_sdk_and_the_raw_client(
    throughput: bench.sdk.ThroughputMeasurement,
) -> None:
    assert throughput.events == 300
    for rates in (throughput.sdk, throughput.raw):
        assert len(rates.samples) == THROUGHPUT_REPEATS
        assert all(sample.rate > 0 for sample in rates.samples)
        assert all(sample.client_load >= 0 for sample in rates.samples)
        assert rates.min_rate <= rates.median_rate <= rates.max_rate
    assert throughput.ratio > 0
    assert throughput.broker_warnings == 0


def test_throughput_report_has_one_goal(throughput: bench.sdk.ThroughputMeasurement) -> None:
    report = bench.sdk.throughput_report(throughput)
    _check_report(report, name="sdk-throughput", rows=2, goals=1)
    assert report.rows[0][0] == bench.sdk.SDK_WORKER
    assert report.rows[1][0] == bench.sdk.RAW_CLIENT


def test_enqueue_report_gives_ns_per_event_over_repeats() -> None:
    result = bench.sdk.EnqueueMeasurement(
        iterations=1,
        repeats=3,
        event_bytes=100,
        gc_enabled=True,
        variants=tuple(VariantResult(name, (1e6, 2e6, 4e6)) for name in bench.sdk.ENQUEUE_VARIANTS),
    )
    report = bench.sdk.enqueue_report(result)
    row = dict(zip(report.header, report.rows[0], strict=True))
    assert (row["min events/s"], row["median events/s"], row["max events/s"]) == (
        "1,000,000",
        "2,000,000",
        "4,000,000",
    )
    # The fastest repeat takes the fewest nanoseconds per event.
    assert row["ns/event"] == "500 (250..1,000)"
