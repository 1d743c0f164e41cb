"""The benchmarks across broker nodes, run with tiny counts: their structure is checked, never
their timings.

Each measurement starts a real Redis server (the one the Redis tests run), real ``pierhead
serve`` nodes on it and the client processes; the module's fixture checks that every process is
gone afterwards.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import bench.broker_cluster
from bench import _peer_servers
from bench.__main__ import BENCHMARKS
from bench._report import Report
from bench.broker_cluster import (
    CatchMeasurement,
    FanoutMeasurement,
    FanoutRepeat,
    LatencyMeasurement,
)

REPEATS = 2
LATENCY_WATCHERS = 2
FANOUT_WATCHERS = 4


@pytest.fixture(scope="module")
def latency() -> LatencyMeasurement:
    return bench.broker_cluster.measure_latency(
        rate=500, seconds=0.2, warm_seconds=0.1, watchers=LATENCY_WATCHERS, repeats=REPEATS
    )


@pytest.fixture(scope="module")
def catch() -> CatchMeasurement:
    return bench.broker_cluster.measure_catch(round_trips=6, warm=2, repeats=1, gap_s=0.002)


@pytest.fixture(scope="module")
def fanout() -> FanoutMeasurement:
    return bench.broker_cluster.measure_fanout(
        watchers=FANOUT_WATCHERS, deliveries=800, warm=100, repeats=REPEATS, fill=50
    )


def _check_table(report: Report, rows: int) -> None:
    assert len(report.rows) == rows
    assert all(len(row) == len(report.header) for row in report.rows)


def test_latency_times_every_event_at_every_watcher_on_both_nodes(
    latency: LatencyMeasurement,
) -> None:
    expected = latency.count * LATENCY_WATCHERS * REPEATS
    for latencies in (latency.same_node, latency.cross_node):
        assert len(latencies.samples_ms) == expected
        assert len(latencies.repeat_p99_ms) == REPEATS
        assert 0 <= latencies.p50_ms <= latencies.p99_ms <= latencies.max_ms
    assert "node A (same node)" in latency.same_node.name
    assert "node B (across nodes)" in latency.cross_node.name
    assert latency.server.startswith(("Valkey", "Redis"))
    report = bench.broker_cluster.latency_report(latency)
    assert report.name == "cluster-latency"
    _check_table(report, rows=2)
    assert "median p99 vs same node" in report.header
    assert report.rows[0][report.header.index("median p99 vs same node")] == "1.00x"
    (goal,) = report.goals
    assert "<= 2 ms" in goal.description
    assert goal.measured.startswith(f"{latency.added_p99_ms:+.2f} ms")
    assert goal.passed == (latency.added_p99_ms <= 2.0)


def test_catch_times_every_request_from_both_nodes(catch: CatchMeasurement) -> None:
    for latencies in (catch.same_node, catch.cross_node):
        assert len(latencies.samples_ms) == catch.count
        assert 0 < latencies.p50_ms <= latencies.p99_ms <= latencies.max_ms
    assert "node C (across nodes)" in catch.cross_node.name
    report = bench.broker_cluster.catch_report(catch)
    assert report.name == "cluster-catch"
    _check_table(report, rows=2)
    (goal,) = report.goals
    assert "p99 <= 10 ms" in goal.description
    assert goal.passed == (catch.cross_node.p99_ms <= 10.0)


def test_fanout_counts_each_nodes_deliveries_and_cpu(fanout: FanoutMeasurement) -> None:
    one, two = (fanout.repeats_by_layout[layout] for layout in ("one node", "two nodes"))
    assert len(one) == len(two) == REPEATS
    everyone = fanout.events * FANOUT_WATCHERS
    for repeat in one:
        assert repeat.delivered == {"A": everyone, "B": 0}
        assert repeat.node_us_per_delivery("B") is None  # it delivered nothing
    for repeat in two:
        assert repeat.delivered == {"A": everyone // 2, "B": everyone // 2}
        assert repeat.node_us_per_delivery("B") is not None
    for repeat in (*one, *two):
        assert repeat.deliveries_per_s > 0
        assert set(repeat.cpu_s) == {"A", "B", "redis"}
        assert all(cpu is not None and cpu >= 0 for cpu in repeat.cpu_s.values())
    report = bench.broker_cluster.fanout_report(fanout)
    assert report.name == "cluster-fanout"
    _check_table(report, rows=2)
    placed = report.header.index("watchers per node")
    assert [row[placed] for row in report.rows] == ["4 on A", "2 on A, 2 on B"]
    assert report.rows[0][report.header.index("median vs one node")] == "1.00x"
    assert report.rows[0][report.header.index("node B us/delivery")] == "n/a"
    for column in ("node A CPU", "node B CPU", "Redis CPU", "serving nodes us/delivery"):
        assert all(row[report.header.index(column)] != "n/a" for row in report.rows)
    assert any("once 50 events published to the watchers of both nodes" in n for n in report.notes)
    (goal,) = report.goals
    assert "CPU per delivered event" in goal.description
    # Where CPU time comes in clock ticks (no process CPU clock), a tiny repeat may read none,
    # and then there is no ratio.
    growth = fanout.paired("us/delivery")
    assert (growth is None) == any(not repeat.serving_us_per_delivery() for repeat in one)
    if growth is None:
        assert (goal.measured, goal.passed) == ("n/a", False)
    else:
        assert goal.measured.startswith(f"{growth:.2f}x (median of per-repeat ratios")


def _repeat(cpu_a: float, cpu_b: float, on_a: int, on_b: int) -> FanoutRepeat:
    return FanoutRepeat(
        deliveries_per_s=1000.0,
        window_s=1.0,
        cpu_s={"A": cpu_a, "B": cpu_b, "redis": 0.1},
        delivered={"A": on_a, "B": on_b},
        client_cpu_s=0.5,
        other_load=0.0,
    )


def test_the_cpu_goal_counts_the_nodes_that_served_and_pairs_the_repeats() -> None:
    # One node: B idles (its 0.05 s is not serving); two nodes: both serve.
    one = (_repeat(1.0, 0.05, 1_000_000, 0), _repeat(2.0, 0.05, 1_000_000, 0))
    two = (_repeat(0.6, 0.6, 500_000, 500_000), _repeat(1.2, 1.0, 500_000, 500_000))
    assert one[0].serving_us_per_delivery() == pytest.approx(1.0)
    assert two[0].serving_us_per_delivery() == pytest.approx(1.2)
    assert two[0].node_us_per_delivery("B") == pytest.approx(1.2)
    result = FanoutMeasurement(
        {"one node": one, "two nodes": two}, 100, 10_000, 100, 2, 0, "Valkey", 0, None
    )
    # Paired: 1.2/1.0 and 2.2/2.0, not a ratio of medians.
    assert result.paired("us/delivery") == pytest.approx((1.2 + 1.1) / 2)
    # B idles 0.05 s over 10,000 events; the second serving node adds 0.2 us x 100 watchers.
    assert result.idle_follow_us_per_event() == pytest.approx(5.0)
    assert result.added_us_per_event() == pytest.approx(20.0)
    (goal,) = bench.broker_cluster.fanout_report(result).goals
    assert not goal.passed  # 1.15x > 1.10x


def test_without_a_redis_server_every_cluster_benchmark_reports_its_goal_missed(
    tmp_path: Path,
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(_peer_servers.REDIS_SERVER_VARIABLE, os.fspath(tmp_path / "nowhere"))
        for name in ("cluster-latency", "cluster-catch", "cluster-fanout"):
            report = BENCHMARKS[name](quick=True)
            assert report.name == name
            (goal,) = report.goals
            assert (goal.passed, goal.measured) == (False, "not measured")
            assert _peer_servers.REDIS_SERVER_VARIABLE in report.notes[0]
