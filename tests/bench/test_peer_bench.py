"""The peer benchmarks (neetbox, Redis pub/sub), run with tiny counts: structure, never timings.

The peers themselves are installed by ``nox -s bench`` only, so here both are made absent on
purpose (through the variables that name them): the measurements still start a real broker, the
relay and their clients, and must then say plainly that the peer was not measured and count its
goal as missed. The pure parts (the neetbox message, its stored-row count on a real SQLite file,
the side-by-side ratios) are checked on their own.
"""

from __future__ import annotations

import datetime
import json
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

import bench.peer_neetbox
import bench.peer_redis
import schema
from bench import _peer_servers
from bench.__main__ import BENCHMARKS
from bench._neetbox_clients import TIMESTAMP_FORMAT, log_message
from bench._peers import LOG_EVENT
from bench._procs import ChildError
from bench._side_by_side import MISSING, SideBySide, header, rows
from bench._stats import Rates, Sample

TINY = bench.peer_neetbox.Sizes(
    ingest=300,
    ingest_warm=100,
    delivery={1: 200, 10: 200},
    delivery_warm=100,
    neetbox_ingest=50,
    neetbox_delivery={1: 50, 10: 20},
    neetbox_warm=10,
)


@pytest.fixture(scope="module")
def peers_absent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Both peers named by their variables, at a path where neither is."""
    nowhere = tmp_path_factory.mktemp("no-peers")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(_peer_servers.NEETBOX_PYTHON_VARIABLE, str(nowhere / "bin" / "python"))
        patch.setenv(_peer_servers.REDIS_SERVER_VARIABLE, str(nowhere / "redis-server"))
        yield nowhere


@pytest.fixture(scope="module")
def neetbox(peers_absent: Path) -> bench.peer_neetbox.NeetboxMeasurement:
    return bench.peer_neetbox.measure(sizes=TINY, repeats=1)


@pytest.fixture(scope="module")
def redis_fanout(peers_absent: Path) -> bench.peer_redis.FanoutMeasurement:
    return bench.peer_redis.measure_fanout(
        events=200, warm=100, redis_events=50, redis_warm=10, watchers=3, repeats=1
    )


@pytest.fixture(scope="module")
def redis_latency(peers_absent: Path) -> bench.peer_redis.LatencyMeasurement:
    return bench.peer_redis.measure_latency(
        rate=500, seconds=0.2, warm_seconds=0.1, watchers=2, repeats=1
    )


def _check_measured(rates: Rates) -> None:
    assert len(rates.samples) == 1
    assert all(sample.rate > 0 for sample in rates.samples)
    assert rates.min_rate <= rates.median_rate <= rates.max_rate


def test_without_neetbox_pierhead_and_the_relay_are_still_measured(
    neetbox: bench.peer_neetbox.NeetboxMeasurement,
) -> None:
    assert [c.workload for c in (neetbox.ingest, *neetbox.delivery)] == [
        "ingest",
        "1 watcher",
        "10 watchers",
    ]
    for comparison in (neetbox.ingest, *neetbox.delivery):
        _check_measured(comparison.pierhead)
        _check_measured(comparison.relay)
        assert comparison.peer is None
        assert comparison.vs_peer is None
        assert comparison.vs_relay > 0
    assert neetbox.missing is not None
    assert _peer_servers.NEETBOX_REQUIREMENT in neetbox.missing
    assert neetbox.broker_warnings == 0


def test_a_missing_neetbox_is_a_missed_goal_that_says_how_to_install_it(
    neetbox: bench.peer_neetbox.NeetboxMeasurement,
) -> None:
    report = bench.peer_neetbox.report(neetbox)
    assert report.name == "peer-neetbox"
    assert len(report.rows) == 9  # pierhead, neetbox, relay for each of three workloads
    assert all(len(row) == len(report.header) for row in report.rows)
    peer_rows = report.rows[1::3]
    assert all(row[0] == "neetbox" and set(row[2:]) == {MISSING} for row in peer_rows)
    (goal,) = report.goals
    assert not goal.passed
    assert "not measured" in goal.measured
    assert any(_peer_servers.NEETBOX_REQUIREMENT in note for note in report.notes)


def test_a_missing_redis_server_is_a_missed_goal_that_says_how_to_install_it(
    redis_fanout: bench.peer_redis.FanoutMeasurement,
) -> None:
    comparison = redis_fanout.comparison
    _check_measured(comparison.pierhead)
    _check_measured(comparison.relay)
    assert comparison.peer is None
    assert redis_fanout.missing is not None
    assert _peer_servers.REDIS_SERVER_INSTALL in redis_fanout.missing
    report = bench.peer_redis.fanout_report(redis_fanout)
    assert len(report.rows) == 3
    assert all(len(row) == len(report.header) for row in report.rows)
    redis_goal, relay_goal = report.goals
    assert not redis_goal.passed
    assert _peer_servers.REDIS_SERVER_INSTALL in redis_goal.measured
    assert relay_goal.passed is (comparison.vs_relay >= bench.broker.FANOUT_GOAL)


def test_latency_without_redis_has_one_sample_per_event_and_watcher_on_both_other_sides(
    redis_latency: bench.peer_redis.LatencyMeasurement,
) -> None:
    expected = redis_latency.events * redis_latency.watchers * redis_latency.repeats
    for latencies in (redis_latency.pierhead, redis_latency.relay):
        assert len(latencies.samples_ms) == expected
        assert 0 <= latencies.p50_ms <= latencies.p99_ms <= latencies.max_ms
    assert redis_latency.peer is None
    report = bench.peer_redis.latency_report(redis_latency)
    assert len(report.rows) == 3
    assert all(len(row) == len(report.header) for row in report.rows)
    assert report.rows[1][1:] == (MISSING,) * (len(report.header) - 1)
    assert report.goals == ()


def test_the_runner_knows_them() -> None:
    assert BENCHMARKS["peer-neetbox"] is bench.peer_neetbox.run
    assert BENCHMARKS["peer-redis-fanout"] is bench.peer_redis.run_fanout
    assert BENCHMARKS["peer-redis-latency"] is bench.peer_redis.run_latency


# Pure parts ---------------------------------------------------------------------------------


def test_a_log_record_becomes_the_log_event_neetbox_s_own_logger_sends() -> None:
    message = json.loads(msgspec.json.encode(log_message("project-1", "run-1", LOG_EVENT)))
    record = LOG_EVENT.payload
    assert isinstance(record, schema.LogRecord)
    assert message == {
        "projectId": "project-1",
        "runId": "run-1",
        "eventType": "log",
        "identityType": "cli",
        "series": record.level,
        "payload": {"whom": record.logger, "message": record.message},
        "eventId": -1,
        "timestamp": message["timestamp"],
        "historyLen": -1,
    }
    stamp = datetime.datetime.strptime(message["timestamp"], TIMESTAMP_FORMAT)
    assert stamp == LOG_EVENT.create_time.replace(tzinfo=None)


def _neetbox_log_table(path: Path, rows: int) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=wal")
        connection.execute(
            "CREATE TABLE log (id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp TEXT NOT NULL,"
            " series TEXT, runId INTEGER, json TEXT NOT NULL)"
        )
        connection.executemany(
            "INSERT INTO log (timestamp, series, runId, json) VALUES ('t', 'info', 1, '{}')",
            [()] * rows,
        )
    connection.close()


def test_stored_rows_are_counted_in_neetbox_s_sqlite_file(tmp_path: Path) -> None:
    database = tmp_path / "project.projectdb"
    _neetbox_log_table(database, 5)
    before = time.time_ns()
    assert before <= _peer_servers.wait_stored(database, 5, timeout=5.0) <= time.time_ns()
    with pytest.raises(ChildError, match="5 of 6 events stored"):
        _peer_servers.wait_stored(database, 6, timeout=0.05)


def test_a_database_not_yet_created_counts_as_nothing_stored(tmp_path: Path) -> None:
    with pytest.raises(ChildError, match="0 of 1 events stored"):
        _peer_servers.wait_stored(tmp_path / "absent.projectdb", 1, timeout=0.05)


def test_a_free_port_can_be_bound_on_loopback() -> None:
    port = _peer_servers.free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", port))
        assert server.getsockname()[1] == port


def _rates(name: str, *values: float) -> Rates:
    return Rates(name, tuple(Sample(value, None, None, 0.5, None) for value in values))


def test_side_by_side_ratios_are_medians_over_medians() -> None:
    comparison = SideBySide(
        workload="10 watchers",
        pierhead=_rates("pierhead", 90.0, 100.0, 400.0),
        peer=_rates("peer", 10.0, 20.0, 30.0),
        relay=_rates("relay", 100.0, 200.0, 300.0),
        others=(_rates("peer, batched", 40.0, 50.0, 60.0),),
    )
    assert comparison.vs_peer == pytest.approx(5.0)
    assert comparison.vs_relay == pytest.approx(0.5)
    table = rows(comparison, "peer")
    assert [row[0] for row in table] == ["pierhead", "peer", "peer, batched", "relay"]
    assert all(len(row) == len(header("peer")) for row in table)
    assert table[0][2:7] == ("90", "100", "400", "5.00x", "0.50x")
    assert table[1][5:7] == ("1.00x", "0.10x")
    assert table[2][5:7] == ("2.50x", "0.25x")
    assert table[3][5:7] == ("10.00x", "1.00x")


def test_a_peer_not_measured_has_a_row_that_says_so() -> None:
    comparison = SideBySide(
        workload="ingest",
        pierhead=_rates("pierhead", 100.0),
        peer=None,
        relay=_rates("relay", 400.0),
    )
    assert comparison.vs_peer is None
    table = rows(comparison, "peer")
    assert [row[0] for row in table] == ["pierhead", "peer", "relay"]
    assert table[0][5:7] == (MISSING, "0.25x")
    assert table[1][1:] == ("ingest", *[MISSING] * 9)
