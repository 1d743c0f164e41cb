"""The broker benchmarks, run with tiny counts: their structure is checked, never their timings.

Each measurement starts a real broker, the bare relay and the client processes, so these tests
also show that every process is gone afterwards.
"""

from __future__ import annotations

import pytest

import bench.broker
import schema
from bench._peers import ENVELOPE_FIRST_OFFSET, LOG_EVENT, envelope_frame
from bench._report import Report, Spread
from bench._stats import Comparison, Latencies, Rates, Sample, percentile

REPEATS = 2
FANOUT_WATCHERS = (2, 3)
LATENCY_WATCHERS = 2
LATENCY_RATE = 500
SWEEP_RATES = (200, 400)


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


def _check_rates(rates: Rates, repeats: int) -> None:
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
        assert comparison.envelope_relay is not None
        _check_rates(comparison.envelope_relay, 1)
        assert comparison.events > 0
    report = bench.broker.fanout_report(fanout)
    _check_report(report, rows=3 * len(FANOUT_WATCHERS), goals=len(FANOUT_WATCHERS))
    (envelope_note,) = [note for note in report.notes if "against it: " in note]
    for index, comparison in enumerate(fanout.comparisons):
        broker, relay, envelope = report.rows[3 * index : 3 * index + 3]
        assert [broker[0], relay[0], envelope[0]] == [
            f"{bench.broker.BROKER}, JSON",
            f"{bench.broker.RELAY}, JSON",
            f"{bench.broker.RELAY}, JSON, `events` frames",
        ]
        assert comparison.envelope_relay is not None
        # The envelope relay's row is against the relay; the note, the broker against it.
        ratio_column = report.header.index("median vs relay")
        expected = comparison.envelope_relay.median_rate / comparison.relay.median_rate
        assert envelope[ratio_column] == f"{expected:.2f}x"
        against = comparison.broker.median_rate / comparison.envelope_relay.median_rate
        assert f"{against:.0%} at {comparison.label}" in envelope_note


def test_the_relays_events_frames_carry_each_event_in_the_brokers_envelope() -> None:
    codec = schema.JSON_CODEC
    events = [LOG_EVENT] * 3
    frame = codec.decode_broker_frame(envelope_frame(codec, events, workspace="w-1", run_id="r-1"))
    assert isinstance(frame, schema.Events)
    assert [e.payload for e in frame.events] == [e.payload for e in events]
    assert [e.create_time for e in frame.events] == [e.create_time for e in events]
    assert [(e.workspace, e.run_id) for e in frame.events] == [("w-1", "r-1")] * 3
    assert [e.offset for e in frame.events] == [e.seq for e in frame.events]
    assert [e.offset for e in frame.events] == [ENVELOPE_FIRST_OFFSET + index for index in range(3)]
    publish = codec.encode(schema.Publish(seq=1, events=events))
    assert bench.broker.ENVELOPE_BYTES["events"] > bench.broker.ENVELOPE_BYTES["publish"]
    assert (
        bench.broker.ENVELOPE_BYTES["publish"]
        == len(codec.encode(schema.Publish(seq=1, events=[LOG_EVENT] * bench.broker.BATCH)))
        // bench.broker.BATCH
    )
    assert len(publish) < len(codec.encode(frame))


def test_latency_has_one_sample_per_event_and_watcher(
    latency: bench.broker.LatencyMeasurement,
) -> None:
    expected = latency.count * LATENCY_WATCHERS * latency.repeats
    for latencies in (latency.broker, latency.relay):
        assert len(latencies.samples_ms) == expected
        assert 0 <= latencies.p50_ms <= latencies.p99_ms <= latencies.max_ms
        assert latencies.max_ms > 0
        assert len(latencies.repeat_p50_ms) == latency.repeats
        assert len(latencies.repeat_p99_ms) == latency.repeats
    report = bench.broker.latency_report(
        latency, bench.broker.publish_latency(LATENCY_RATE, latency.receivers)
    )
    assert (report.name, latency.receivers) == ("broker-latency", LATENCY_WATCHERS)
    _check_report(report, rows=2, goals=1)


def test_catch_has_one_sample_per_request(catch: bench.broker.LatencyMeasurement) -> None:
    for latencies in (catch.broker, catch.relay):
        assert len(latencies.samples_ms) == catch.count * catch.repeats
        assert 0 < latencies.p50_ms <= latencies.p99_ms <= latencies.max_ms
    report = bench.broker.latency_report(catch, bench.broker.CATCH_LATENCY)
    assert (report.name, catch.receivers) == ("broker-catch", 1)
    _check_report(report, rows=2, goals=1)


@pytest.fixture(scope="module")
def latency_sweep() -> bench.broker.LatencySweep:
    return bench.broker.measure_latency_sweep(
        rates=SWEEP_RATES, seconds=0.2, warm_seconds=0.1, watchers=LATENCY_WATCHERS, repeats=1
    )


def test_latency_sweep_measures_each_rate_against_the_relay(
    latency_sweep: bench.broker.LatencySweep,
) -> None:
    assert latency_sweep.rates == SWEEP_RATES
    for rate, measurement in latency_sweep.by_rate:
        assert measurement.count == round(rate * 0.2)
        for latencies in (measurement.broker, measurement.relay):
            assert len(latencies.samples_ms) == measurement.count * LATENCY_WATCHERS
    report = bench.broker.latency_sweep_report(latency_sweep)
    _check_report(report, rows=2 * len(SWEEP_RATES), goals=0)
    assert [row[1] for row in report.rows] == ["200", "200", "400", "400"]
    (plot,) = report.plots
    assert plot.file == "latency-vs-rate"
    assert [series.name for series in plot.series] == [
        f"{bench.broker.BROKER} p50",
        f"{bench.broker.BROKER} p99",
        f"{bench.broker.RELAY} p50",
        f"{bench.broker.RELAY} p99",
    ]
    broker_p99 = plot.series[1]
    assert [point.x for point in broker_p99.points] == list(SWEEP_RATES)
    for point, measurement in zip(broker_p99.points, latency_sweep.measurements, strict=True):
        assert point.median == measurement.broker.p99_spread.median


def test_fanout_sweep_plots_deliveries_by_watcher_count(
    fanout: bench.broker.FanoutMeasurement,
) -> None:
    report = bench.broker.fanout_sweep_report(fanout)
    _check_report(report, rows=3 * len(FANOUT_WATCHERS), goals=0)
    (plot,) = report.plots
    assert plot == bench.broker.fanout_plot(*plot.series)  # what other systems' series join
    broker, relay = plot.series
    assert (broker.name, relay.name) == (bench.broker.BROKER, bench.broker.RELAY)
    for series, pick in ((broker, "broker"), (relay, "relay")):
        assert [point.x for point in series.points] == list(FANOUT_WATCHERS)
        for point, comparison in zip(series.points, fanout.comparisons, strict=True):
            rates = comparison.broker if pick == "broker" else comparison.relay
            assert (point.min, point.median, point.max) == (
                rates.min_rate,
                rates.median_rate,
                rates.max_rate,
            )


def test_rate_rows_give_rates_and_loads_over_repeats() -> None:
    def rates(name: str, values: tuple[float, ...], loads: tuple[float | None, ...]) -> Rates:
        return Rates(
            name,
            tuple(
                Sample(rate, load, 0.5, 1.0, None) for rate, load in zip(values, loads, strict=True)
            ),
        )

    broker = rates("broker", (300.0, 100.0, 200.0), (0.1, None, 0.3))
    relay = rates("relay", (1_000.0, 1_000.0, 1_000.0), (None, None, None))
    comparison = Comparison("JSON", 10, broker, relay)
    result = bench.broker.IngestMeasurement((comparison,), 0, 3, {"JSON": 1}, 0, None)
    report = bench.broker.ingest_report(result)
    broker_row, relay_row = (dict(zip(report.header, row, strict=True)) for row in report.rows)
    assert (broker_row["min events/s"], broker_row["median events/s"]) == ("100", "200")
    assert broker_row["max events/s"] == "300"
    assert broker_row["median vs relay"] == "0.20x"
    # Loads over the repeats that measured them; a figure no repeat has is n/a.
    assert broker_row["server CPU"] == "0.20 (0.10..0.30)"
    assert broker_row["server CPU wait"] == "0.50 (0.50..0.50)"
    assert broker_row["other CPU"] == "n/a"
    assert relay_row["server CPU"] == "n/a"


def test_latency_rows_give_each_percentile_over_repeats() -> None:
    # Three repeats whose p50 and p99 differ; the pooled columns stay beside them.
    broker = Latencies.of(
        "broker", [[1.0] * 50 + [4.0] * 50, [2.0] * 50 + [6.0] * 50, [3.0] * 50 + [5.0] * 50]
    )
    relay = Latencies.of("relay", [[0.5] * 100, [1.0] * 100, [2.0] * 100])
    assert broker.p50_spread == Spread(1.0, 2.0, 3.0)
    assert broker.p99_spread == Spread(4.0, 5.0, 6.0)
    result = bench.broker.LatencyMeasurement(
        broker=broker,
        relay=relay,
        repeats=3,
        warm=0,
        count=100,
        broker_warnings=0,
        load_average=None,
    )
    report = bench.broker.latency_report(
        result, bench.broker.publish_latency(LATENCY_RATE, result.receivers)
    )
    header = report.header
    broker_row = dict(zip(header, report.rows[0], strict=True))
    assert broker_row["samples"] == "300"
    assert [broker_row[name] for name in ("min p50 ms", "median p50 ms", "max p50 ms")] == [
        "1.00",
        "2.00",
        "3.00",
    ]
    assert [broker_row[name] for name in ("min p99 ms", "median p99 ms", "max p99 ms")] == [
        "4.00",
        "5.00",
        "6.00",
    ]
    assert broker_row["median p99 vs relay"] == "5.00x"
    assert broker_row["p99 of all samples ms"] == "6.00"
    assert broker_row["max of all samples ms"] == "6.00"
    (goal,) = report.goals
    assert goal.measured.startswith("6.00 ms")  # judged on the pooled p99, as before


def test_percentile_is_nearest_rank() -> None:
    samples = [float(value) for value in range(1, 101)]
    assert percentile(samples, 50) == 50.0
    assert percentile(samples, 99) == 99.0
    assert percentile(samples, 100) == 100.0
    assert percentile([7.0], 99) == 7.0


@pytest.mark.parametrize(
    ("watchers", "expected"),
    # At least two processes once there are two watchers; one more per 25 connections, four
    # at most.
    [(1, 1), (2, 2), (10, 2), (25, 2), (51, 3), (100, 4), (1000, 4)],
)
def test_watchers_are_spread_over_a_few_processes(watchers: int, expected: int) -> None:
    processes = bench.broker.watcher_processes(watchers)
    assert sum(processes) == watchers
    assert len(processes) == expected
    assert max(processes) - min(processes) <= 1


def test_fanout_events_are_whole_batches() -> None:
    for watchers in (1, 10, 100, 10_000):
        events = bench.broker.fanout_events(watchers, 1_500_000)
        assert events >= bench.broker.BATCH
        assert events % bench.broker.BATCH == 0
