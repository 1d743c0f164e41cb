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
    FANOUT_LAYOUTS,
    CatchMeasurement,
    FanoutMeasurement,
    FanoutRepeat,
    FanoutRound,
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


def test_fanout_counts_each_nodes_deliveries_frames_and_cpu(fanout: FanoutMeasurement) -> None:
    assert len(fanout.rounds) == REPEATS
    everyone = fanout.events * FANOUT_WATCHERS
    delivered = {
        "one node": {"A": everyone, "B": 0},
        "one watcher on B": {"A": everyone - fanout.events, "B": fanout.events},
        "two nodes": {"A": everyone // 2, "B": everyone // 2},
        "every watcher on B": {"A": 0, "B": everyone},
    }
    for round_ in fanout.rounds:
        assert set(round_.repeats) == set(FANOUT_LAYOUTS)
        for layout, repeat in round_.repeats.items():
            assert repeat.delivered == delivered[layout]
            assert repeat.deliveries_per_s > 0
            assert set(repeat.cpu_s) == {"A", "B", "redis"}
            assert all(cpu is not None and cpu >= 0 for cpu in repeat.cpu_s.values())
            for node, count in repeat.delivered.items():
                # Every watcher counted at least one frame; none carried more than all events.
                watchers = count // fanout.events
                assert watchers <= repeat.frames[node] <= count
        assert round_.repeats["one node"].node_us_per_delivery("B") is None
    report = bench.broker_cluster.fanout_report(fanout)
    assert report.name == "cluster-fanout"
    _check_table(report, rows=4)
    placed = report.header.index("watchers per node")
    assert [row[placed] for row in report.rows] == [
        "4 on A",
        "3 on A, 1 on B",
        "2 on A, 2 on B",
        "4 on B",
    ]
    assert report.rows[0][report.header.index("median vs one node")] == "1.00x"
    assert report.rows[0][report.header.index("node B us/delivery")] == "n/a"
    assert report.rows[3][report.header.index("node A us/delivery")] == "n/a"
    for column in ("node A CPU", "node B CPU", "Redis CPU", "events per frame"):
        assert all(row[report.header.index(column)] != "n/a" for row in report.rows)
    assert any("once 50 events published to the watchers of both nodes" in n for n in report.notes)
    growth_goal, follow_goal = report.goals
    assert "CPU per delivered event" in growth_goal.description
    assert "against the writer's ingest" in follow_goal.description
    growth = fanout.median(FanoutRound.delivery_growth)
    if growth is None:
        assert (growth_goal.measured, growth_goal.passed) == ("n/a", False)
    else:
        assert growth_goal.measured.startswith(f"{growth:.2f}x (median of per-round ratios")


def _repeat(cpu_a: float, cpu_b: float, on_a: int, on_b: int) -> FanoutRepeat:
    return FanoutRepeat(
        deliveries_per_s=1000.0,
        window_s=1.0,
        cpu_s={"A": cpu_a, "B": cpu_b, "redis": 0.1},
        delivered={"A": on_a, "B": on_b},
        frames={"A": on_a // 100, "B": on_b // 100},
        client_cpu_s=0.5,
        other_load=0.0,
    )


EVENTS = 10_000
WATCHERS = 100
IDLE_S = 0.05
"""Node B's CPU while it serves no watcher: 5 us per event published."""


def _round(ingest_us: float, writer_us: float, follow_us: float, follower_us: float) -> FanoutRound:
    """A round of a cluster whose node A spends ``ingest_us`` per event published and
    ``writer_us`` per delivery, and whose node B spends ``follow_us`` per event published once
    it follows the workspace and ``follower_us`` per delivery."""

    def seconds(per_event_us: float) -> float:
        return per_event_us * EVENTS / 1e6

    def a(watchers: int) -> float:
        return seconds(ingest_us + watchers * writer_us)

    def b(watchers: int) -> float:
        return seconds(follow_us + watchers * follower_us) if watchers else IDLE_S

    def repeat(on_b: int) -> FanoutRepeat:
        on_a = WATCHERS - on_b
        return _repeat(a(on_a), b(on_b), on_a * EVENTS, on_b * EVENTS)

    return FanoutRound(
        {
            "one node": repeat(0),
            "one watcher on B": repeat(1),
            "two nodes": repeat(WATCHERS // 2),
            "every watcher on B": repeat(WATCHERS),
        },
        WATCHERS,
        EVENTS,
    )


def test_each_nodes_cost_per_delivery_leaves_out_what_it_spends_whatever_its_watchers() -> None:
    round_ = _round(ingest_us=3.0, writer_us=1.0, follow_us=2.0, follower_us=1.1)
    assert round_.writer_us_per_delivery() == pytest.approx(1.0)
    assert round_.follower_us_per_delivery() == pytest.approx(1.1)
    assert round_.delivery_growth() == pytest.approx(1.1)
    assert round_.ingest_us_per_event() == pytest.approx(3.0)
    assert round_.follow_us_per_event() == pytest.approx(2.0)
    assert round_.follow_vs_ingest() == pytest.approx(2.0 / 3.0)
    assert round_.idle_follow_us_per_event() == pytest.approx(5.0)
    # One node: 3 + 100 x 1.0 us per event over 100 deliveries; two nodes: 3 + 50 x 1.0 on A
    # and 2 + 50 x 1.1 on B. The second node adds its following and its dearer deliveries.
    one, two = 103.0, 3.0 + 50.0 + 2.0 + 55.0
    assert round_.serving_growth() == pytest.approx(two / one)
    assert round_.added_us_per_event() == pytest.approx(two - one)


def test_the_fanout_goals_are_judged_on_medians_of_per_round_figures() -> None:
    rounds = (
        _round(ingest_us=3.0, writer_us=1.0, follow_us=2.0, follower_us=1.08),
        _round(ingest_us=3.0, writer_us=1.0, follow_us=3.5, follower_us=1.3),
        _round(ingest_us=3.0, writer_us=2.0, follow_us=1.0, follower_us=2.1),
    )
    result = FanoutMeasurement(rounds, WATCHERS, EVENTS, 100, 0, "Valkey", 0, None)
    assert result.median(FanoutRound.delivery_growth) == pytest.approx(1.08)
    assert result.median(FanoutRound.follow_vs_ingest) == pytest.approx(2.0 / 3.0)
    growth, follow = bench.broker_cluster.fanout_report(result).goals
    assert growth.passed
    assert growth.measured.startswith("1.08x (median of per-round ratios; 1.30 vs 1.00")
    assert follow.passed
    dearer = FanoutMeasurement(rounds[1:2] * 2 + rounds[:1], WATCHERS, EVENTS, 100, 0, "", 0, None)
    growth, follow = bench.broker_cluster.fanout_report(dearer).goals
    assert not growth.passed  # 1.30x
    assert not follow.passed  # 3.5 us against 3.0


def test_without_a_redis_server_every_cluster_benchmark_reports_its_goal_missed(
    tmp_path: Path,
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(_peer_servers.REDIS_SERVER_VARIABLE, os.fspath(tmp_path / "nowhere"))
        for name in ("cluster-latency", "cluster-catch", "cluster-fanout"):
            report = BENCHMARKS[name](quick=True)
            assert report.name == name
            assert report.goals
            for goal in report.goals:
                assert (goal.passed, goal.measured) == (False, "not measured")
            assert _peer_servers.REDIS_SERVER_VARIABLE in report.notes[0]
