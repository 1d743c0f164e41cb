"""The broker benchmarks, run with tiny counts: their structure is checked, never their timings.

Each measurement starts a real broker, the bare relay and the client processes, so these tests
also show that every process is gone afterwards.
"""

from __future__ import annotations

import pytest

import bench.broker
from bench._report import Report

REPEATS = 2
FANOUT_WATCHERS = (2, 3)
LATENCY_WATCHERS = 2
LATENCY_RATE = 500


@pytest.fixture(scope="module")
def ingest() -> bench.broker.IngestMeasurement:
    return bench.broker.measure_ingest(events=300, warm=100, repeats=REPEATS)


@pytest.fixture(scope="module")
def fanout() -> bench.broker.FanoutMeasurement:
    return bench.broker.measure_fanout(
        watchers=FANOUT_WATCHERS, deliveries=600, warm=100, repeats=1
    )


@pytest.fixture(scope="module")
def latency() -> bench.broker.LatencyMeasurement:
    return bench.broker.measure_latency(
        rate=LATENCY_RATE, seconds=0.2, warm_seconds=0.1, watchers=LATENCY_WATCHERS, repeats=1
    )


@pytest.fixture(scope="module")
def catch() -> bench.broker.LatencyMeasurement:
    return bench.broker.measure_catch(round_trips=6, warm=2, repeats=1, gap_s=0.002)


def _check_rates(rates: bench.broker.Rates, repeats: int) -> None:
    assert len(rates.samples) == repeats
    assert all(sample.rate > 0 for sample in rates.samples)
    assert all(sample.client_load >= 0 for sample in rates.samples)
    assert rates.min_rate <= rates.median_rate <= rates.max_rate


def _check_report(report: Report, *, rows: int, goals: int) -> None:
    assert len(report.rows) == rows
    assert all(len(row) == len(report.header) for row in report.rows)
    assert len(report.goals) == goals
    assert bench.broker.BROKER in report.rows[0][0]


def test_ingest_measures_broker_and_relay_per_codec(
    ingest: bench.broker.IngestMeasurement,
) -> None:
    assert [c.label for c in ingest.comparisons] == ["JSON", "MessagePack"]
    for comparison in ingest.comparisons:
        _check_rates(comparison.broker, REPEATS)
        _check_rates(comparison.relay, REPEATS)
        assert comparison.ratio > 0
    assert ingest.frame_bytes["JSON"] > ingest.frame_bytes["MessagePack"] > 0
    _check_report(bench.broker.ingest_report(ingest), rows=4, goals=1)


def test_fanout_measures_every_number_of_watchers(
    fanout: bench.broker.FanoutMeasurement,
) -> None:
    assert fanout.watchers == FANOUT_WATCHERS
    for comparison in fanout.comparisons:
        _check_rates(comparison.broker, 1)
        _check_rates(comparison.relay, 1)
        assert comparison.events > 0
    _check_report(bench.broker.fanout_report(fanout), rows=4, goals=len(FANOUT_WATCHERS))


def test_latency_has_one_sample_per_event_and_watcher(
    latency: bench.broker.LatencyMeasurement,
) -> None:
    expected = latency.count * LATENCY_WATCHERS * latency.repeats
    for latencies in (latency.broker, latency.relay):
        assert len(latencies.samples_ms) == expected
        assert 0 <= latencies.p50_ms <= latencies.p99_ms <= latencies.max_ms
        assert latencies.max_ms > 0
        assert len(latencies.repeat_p99_ms) == latency.repeats
    report = bench.broker.latency_report(latency, rate=LATENCY_RATE)
    _check_report(report, rows=2, goals=1)


def test_catch_has_one_sample_per_request(catch: bench.broker.LatencyMeasurement) -> None:
    for latencies in (catch.broker, catch.relay):
        assert len(latencies.samples_ms) == catch.count * catch.repeats
        assert 0 < latencies.p50_ms <= latencies.p99_ms <= latencies.max_ms
    _check_report(bench.broker.catch_report(catch), rows=2, goals=1)


def test_percentile_is_nearest_rank() -> None:
    samples = [float(value) for value in range(1, 101)]
    assert bench.broker.percentile(samples, 50) == 50.0
    assert bench.broker.percentile(samples, 99) == 99.0
    assert bench.broker.percentile(samples, 100) == 100.0
    assert bench.broker.percentile([7.0], 99) == 7.0


@pytest.mark.parametrize("watchers", [1, 2, 10, 25, 51, 100, 1000])
def test_watchers_are_spread_over_a_few_processes(watchers: int) -> None:
    processes = bench.broker.watcher_processes(watchers)
    assert sum(processes) == watchers
    assert 1 <= len(processes) <= bench.broker.MAX_WATCHER_PROCESSES
    assert max(processes) - min(processes) <= 1


def test_fanout_events_are_whole_batches() -> None:
    for watchers in (1, 10, 100, 10_000):
        events = bench.broker.fanout_events(watchers, 1_500_000)
        assert events >= bench.broker.BATCH
        assert events % bench.broker.BATCH == 0
