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
    FanoutLayout,
    FanoutMeasurement,
    FanoutRepeat,
    FanoutRound,
    LatencyMeasurement,
    fanout_layout,
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
    events = fanout.events
    on_b = {
        "one node": 0,
        "one watcher on B": 1,
        "two nodes": FANOUT_WATCHERS // 2,
        "one watcher on A": FANOUT_WATCHERS - 1,
        "every watcher on B": FANOUT_WATCHERS,
    }
    for round_ in fanout.rounds:
        assert set(round_.repeats) == set(FANOUT_LAYOUTS) == set(on_b)
        for layout, repeat in round_.repeats.items():
            watchers = {"A": FANOUT_WATCHERS - on_b[layout], "B": on_b[layout]}
            assert repeat.delivered == {node: count * events for node, count in watchers.items()}
            assert repeat.deliveries_per_s > 0
            assert set(repeat.cpu_s) == {"A", "B", "redis"}
            assert all(cpu is not None and cpu >= 0 for cpu in repeat.cpu_s.values())
            for node, count in watchers.items():
                # Each watcher was brought its measured events by one frame at least, by one
                # frame per event at most.
                assert count <= repeat.frames[node] <= count * events
                assert (repeat.events_per_frame(node) is None) == (count == 0)
        assert round_.repeats["one node"].node_us_per_delivery("B") is None
    report = bench.broker_cluster.fanout_report(fanout)
    assert report.name == "cluster-fanout"
    _check_table(report, rows=5)
    placed = report.header.index("watchers per node")
    assert [row[placed] for row in report.rows] == [
        "4 on A",
        "3 on A, 1 on B",
        "2 on A, 2 on B",
        "1 on A, 3 on B",
        "4 on B",
    ]
    assert report.rows[0][report.header.index("median vs one node")] == "1.00x"
    for row, layout in zip(report.rows, FANOUT_LAYOUTS, strict=True):
        for node in ("A", "B"):
            served = fanout_layout(layout, FANOUT_WATCHERS)[node] > 0
            for column in (f"node {node} us/delivery", f"node {node} events/frame"):
                assert (row[report.header.index(column)] != "n/a") == served, (layout, column)
    for column in ("node A CPU", "node B CPU", "Redis CPU"):
        assert all(row[report.header.index(column)] != "n/a" for row in report.rows)
    assert any("once 50 events published to the watchers of both nodes" in n for n in report.notes)
    delivery_goal, serving_goal = report.goals
    assert "CPU per delivered event" in delivery_goal.description
    assert "following the workspace against writing it" in serving_goal.description
    for goal, ratio in (
        (delivery_goal, FanoutRound.delivery_cost_ratio),
        (serving_goal, FanoutRound.serving_cost_ratio),
    ):
        median = fanout.median(ratio)
        if median is None:  # tiny repeats: a difference of CPU readings may come out <= 0
            assert (goal.measured, goal.passed) == ("n/a", False)
        else:
            assert goal.measured.startswith(f"{median:.2f}x (median of per-round ratios, ")
            assert goal.passed == (median <= 1.0)


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


def _round(
    writer_event_us: float,
    writer_delivery_us: float,
    follower_event_us: float,
    follower_delivery_us: float,
) -> FanoutRound:
    """A round of a cluster whose node A spends ``writer_event_us`` per event published and
    ``writer_delivery_us`` per delivery while it serves a watcher, and whose node B spends
    ``follower_event_us`` and ``follower_delivery_us`` while it serves one; node A serving none
    spends 3 us per event published."""

    def seconds(per_event_us: float) -> float:
        return per_event_us * EVENTS / 1e6

    def node_a(watchers: int) -> float:
        return seconds(writer_event_us + watchers * writer_delivery_us if watchers else 3.0)

    def node_b(watchers: int) -> float:
        if not watchers:
            return IDLE_S
        return seconds(follower_event_us + watchers * follower_delivery_us)

    def repeat(layout: FanoutLayout) -> FanoutRepeat:
        placed = fanout_layout(layout, WATCHERS)
        on_a, on_b = placed["A"], placed["B"]
        return _repeat(node_a(on_a), node_b(on_b), on_a * EVENTS, on_b * EVENTS)

    return FanoutRound({layout: repeat(layout) for layout in FANOUT_LAYOUTS}, WATCHERS, EVENTS)


def test_each_node_is_measured_alike_serving_every_watcher_and_serving_one() -> None:
    round_ = _round(4.0, 1.0, 3.0, 0.9)
    assert round_.writer_us_per_delivery() == pytest.approx(1.0)
    assert round_.follower_us_per_delivery() == pytest.approx(0.9)
    assert round_.delivery_cost_ratio() == pytest.approx(0.9)
    assert round_.writer_us_per_event() == pytest.approx(4.0)
    assert round_.follower_us_per_event() == pytest.approx(3.0)
    assert round_.serving_cost_ratio() == pytest.approx(0.75)
    assert round_.ingest_us_per_event() == pytest.approx(3.0)
    assert round_.idle_follow_us_per_event() == pytest.approx(5.0)
    # One node: 4 + 100 x 1.0 us per event; two nodes: 4 + 50 x 1.0 on A and 3 + 50 x 0.9 on B.
    one, two = 104.0, 4.0 + 50.0 + 3.0 + 45.0
    assert round_.serving_growth() == pytest.approx(two / one)
    assert round_.added_us_per_event() == pytest.approx(two - one)


def test_a_difference_at_or_below_zero_is_not_a_figure_to_judge() -> None:
    # Node B serving every watcher read less CPU than serving one: noise, not a cheap delivery.
    round_ = _round(4.0, 1.0, 3.0, -0.01)
    assert round_.follower_us_per_delivery() == pytest.approx(-0.01)
    assert round_.delivery_cost_ratio() is None
    result = FanoutMeasurement((round_,), WATCHERS, EVENTS, 100, 0, "Valkey", 0, None)
    delivery, _ = bench.broker_cluster.fanout_report(result).goals
    assert (delivery.measured, delivery.passed) == ("n/a", False)


def test_the_fanout_goals_are_judged_on_medians_of_per_round_ratios() -> None:
    rounds = (
        _round(4.0, 1.0, 3.0, 0.95),  # 0.95x per delivery, 0.75x per event
        _round(4.0, 1.0, 4.4, 1.3),  # 1.30x, 1.10x
        _round(4.0, 2.0, 2.0, 1.9),  # 0.95x, 0.50x
    )
    result = FanoutMeasurement(rounds, WATCHERS, EVENTS, 100, 0, "Valkey", 0, None)
    assert result.median(FanoutRound.delivery_cost_ratio) == pytest.approx(0.95)
    assert result.median(FanoutRound.serving_cost_ratio) == pytest.approx(0.75)
    delivery, serving = bench.broker_cluster.fanout_report(result).goals
    assert delivery.passed
    # The ratio and the medians of its two figures are each a median over the rounds.
    assert delivery.measured == (
        "0.95x (median of per-round ratios, 0.95 to 1.30; medians 1.30 vs 1.00 us/delivery)"
    )
    assert serving.passed
    dearer = FanoutMeasurement(rounds[1:2] * 2 + rounds[:1], WATCHERS, EVENTS, 100, 0, "", 0, None)
    delivery, serving = bench.broker_cluster.fanout_report(dearer).goals
    assert not delivery.passed  # 1.30x
    assert not serving.passed  # 1.10x


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
