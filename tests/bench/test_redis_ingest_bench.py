"""``redis-ingest``, run with tiny counts: its structure is checked, never its timings.

Each measurement starts real brokers (one on SQLite, one per Redis server), real Redis servers
(the one the Redis tests run) and the client processes; the module's fixture checks that every
process is gone afterwards.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

import bench.broker_redis
from bench import _peer_servers
from bench.__main__ import BENCHMARKS
from bench.broker_redis import SQLITE, RedisIngestMeasurement, redis_variant

REPEATS = 2


@pytest.fixture(scope="module")
def measured() -> RedisIngestMeasurement:
    return bench.broker_redis.measure(events=300, warm=100, repeats=REPEATS)


def test_sqlite_and_redis_are_measured_in_the_same_run(measured: RedisIngestMeasurement) -> None:
    assert measured.missing is None
    assert measured.refused == ()
    assert measured.fsyncs == ("always", "everysec")
    assert measured.server  # such as "Valkey 9.1.2"
    for variant in (measured.sqlite, *measured.redis):
        assert len(variant.samples) == REPEATS
        assert all(sample.rate > 0 for sample in variant.samples)
        assert len(variant.broker_cpu_us) == len(variant.store_cpu_us) == REPEATS
    assert measured.sqlite.name == SQLITE
    assert [v.name for v in measured.redis] == [redis_variant(f) for f in measured.fsyncs]
    # The Redis server's CPU is measured for the Redis brokers only.
    assert measured.sqlite.store_cpu_us == (None,) * REPEATS
    assert all(cpu is not None and cpu >= 0 for v in measured.redis for cpu in v.store_cpu_us)


def test_the_report_has_a_row_per_store_and_the_goal_on_appendfsync_always(
    measured: RedisIngestMeasurement,
) -> None:
    report = bench.broker_redis.report(measured)
    assert report.name == "redis-ingest"
    assert [row[0] for row in report.rows] == [
        SQLITE,
        redis_variant("always"),
        redis_variant("everysec"),
    ]
    assert all(len(row) == len(report.header) for row in report.rows)
    ratio = report.header.index("median vs SQLite")
    assert report.rows[0][ratio] == "1.00x"
    assert report.rows[0][report.header.index("Redis CPU us/event")] == "n/a"
    assert report.rows[1][report.header.index("Redis CPU us/event")] != "n/a"
    (goal,) = report.goals
    assert redis_variant("always") in goal.description
    assert "150,000 events/s" in goal.description
    assert "x SQLite" in goal.measured
    assert BENCHMARKS["redis-ingest"] is bench.broker_redis.run


@pytest.fixture
def without_waitaof(tmp_path: Path) -> Iterator[None]:
    """The bench's Redis server, with ``WAITAOF`` renamed away: as an older Redis would be."""
    wrapper = tmp_path / "redis-server"
    real = _peer_servers.store_redis_binary()
    wrapper.write_text(f'#!/bin/sh\nexec "{real}" "$@" --rename-command WAITAOF ""\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(_peer_servers.REDIS_SERVER_VARIABLE, str(wrapper))
        yield


@pytest.mark.usefixtures("without_waitaof")
def test_without_waitaof_only_appendfsync_always_is_measured_and_the_report_says_why() -> None:
    result = bench.broker_redis.measure(events=200, warm=100, repeats=1)
    assert result.fsyncs == ("always",)
    ((fsync, reason),) = result.refused
    assert fsync == "everysec"
    assert "appendfsync always" in reason  # the broker's own explanation
    report = bench.broker_redis.report(result)
    assert [row[0] for row in report.rows] == [SQLITE, redis_variant("always")]
    assert any("Not measured with `appendfsync everysec`" in note for note in report.notes)


def test_without_a_redis_server_sqlite_is_measured_and_the_goal_is_missed(
    tmp_path: Path,
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(_peer_servers.REDIS_SERVER_VARIABLE, os.fspath(tmp_path / "nowhere"))
        result = bench.broker_redis.measure(events=200, warm=100, repeats=1)
    assert result.missing is not None
    assert _peer_servers.REDIS_SERVER_VARIABLE in result.missing
    assert result.redis == ()
    assert len(result.sqlite.samples) == 1
    report = bench.broker_redis.report(result)
    assert [row[0] for row in report.rows] == [SQLITE]
    assert any(note.startswith("Redis was not measured") for note in report.notes)
    (goal,) = report.goals
    assert not goal.passed
    assert goal.measured == "not measured"
