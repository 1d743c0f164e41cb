"""``cluster-idle-node`` with tiny spans: its structure and arithmetic are checked, never its
timings. The measurement runs a real Redis server, two ``pierhead serve`` nodes on it and the
client processes."""

from __future__ import annotations

import os
import statistics
from pathlib import Path

import pytest

from bench import _peer_servers, cluster_idle_node
from bench.__main__ import BENCHMARKS
from bench.cluster_idle_node import (
    IDLE,
    IDLE_VS_WRITER_GOAL,
    RATES,
    IdleNodeMeasurement,
    IdleNodeRepeat,
    report,
    variant,
)


@pytest.fixture(scope="module")
def measured() -> IdleNodeMeasurement:
    return cluster_idle_node.measure(seconds=0.3, repeats=2)


def test_every_variant_is_measured_in_every_repeat(measured: IdleNodeMeasurement) -> None:
    assert list(measured.repeats) == [IDLE, *(variant(rate) for rate in RATES)]
    for name, repeats in measured.repeats.items():
        assert len(repeats) == 2
        for repeat in repeats:
            assert repeat.seconds > 0
            assert set(repeat.cpu_s) == {"A", "B"}
            if name != IDLE:
                # Node A's own counter: up to date once the publisher had its acks.
                assert repeat.commits > 0
    # Node B hears of a commit a moment after it is acknowledged, counted in the span during
    # which the hint arrived: over every span, it heard of them.
    assert sum(r.hints for repeats in measured.repeats.values() for r in repeats) > 0
    assert measured.server.startswith(("Valkey", "Redis"))


def test_the_report_has_a_row_per_variant_and_judges_the_highest_rate(
    measured: IdleNodeMeasurement,
) -> None:
    result = report(measured)
    assert result.name == "cluster-idle-node"
    assert [row[0] for row in result.rows] == list(measured.repeats)
    assert all(len(row) == len(result.header) for row in result.rows)
    idle_row = result.rows[0]
    assert idle_row[result.header.index("node B us/commit")] == "-"
    (goal,) = result.goals
    assert f"at {RATES[-1]} events/s" in goal.description
    judged = [measured.idle_vs_writer(r) for r in measured.repeats[variant(RATES[-1])]]
    known = [ratio for ratio in judged if ratio is not None]
    if not known:
        assert (goal.passed, goal.measured) == (False, "not measured")
    else:
        median = statistics.median(known)
        assert goal.measured.startswith(f"{median:.2f}x (median over the repeats, ")
        assert goal.passed == (median <= IDLE_VS_WRITER_GOAL)


def _repeat(seconds: float, commits: int, a_cpu_s: float, b_cpu_s: float | None) -> IdleNodeRepeat:
    return IdleNodeRepeat(seconds, commits, commits, {"A": a_cpu_s, "B": b_cpu_s})


def test_cpu_per_commit_is_what_a_node_spends_beyond_its_idle_rate() -> None:
    # Idle: node A 2 ms/s, node B 5 ms/s. Busy for 2 s and 100 commits: node A 0.204 s
    # (102 ms/s: 100 beyond idle, 2,000 us a commit), node B 0.11 s (55 ms/s: 1,000 us).
    result = IdleNodeMeasurement(
        {
            IDLE: [_repeat(1.0, 0, 0.002, 0.005)],
            variant(RATES[-1]): [_repeat(2.0, 100, 0.204, 0.11)],
        },
        seconds=1.0,
        server="Valkey test",
        broker_warnings=0,
        load_average=None,
    )
    (busy,) = result.repeats[variant(RATES[-1])]
    assert result.us_per_commit(busy, "A") == pytest.approx(2000)
    assert result.us_per_commit(busy, "B") == pytest.approx(1000)
    assert result.idle_vs_writer(busy) == pytest.approx(0.5)
    (goal,) = report(result).goals
    assert not goal.passed  # 0.50x against 0.33x at most
    assert goal.measured == "0.50x (median over the repeats, 0.50 to 0.50)"
    # A node whose CPU cannot be read is not measured, never judged as passing.
    unread = IdleNodeMeasurement(
        {IDLE: result.repeats[IDLE], variant(RATES[-1]): [_repeat(2.0, 100, 0.204, None)]},
        seconds=1.0,
        server="Valkey test",
        broker_warnings=0,
        load_average=None,
    )
    (goal,) = report(unread).goals
    assert (goal.passed, goal.measured) == (False, "not measured")


def test_without_a_redis_server_the_goal_is_reported_missed(tmp_path: Path) -> None:
    assert BENCHMARKS["cluster-idle-node"] is cluster_idle_node.run
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(_peer_servers.REDIS_SERVER_VARIABLE, os.fspath(tmp_path / "nowhere"))
        result = cluster_idle_node.run(quick=True)
    (goal,) = result.goals
    assert (goal.passed, goal.measured) == (False, "not measured")
    assert _peer_servers.REDIS_SERVER_VARIABLE in result.notes[0]
