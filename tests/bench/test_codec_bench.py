"""The codec benchmark, run with tiny counts: its structure is checked, never its timings."""

from __future__ import annotations

import subprocess
import sys

import pytest

import bench.codec
from tests.support import ROOT

REPEATS = 2


@pytest.fixture(scope="module")
def measurement() -> bench.codec.Measurement:
    return bench.codec.measure(iterations=5, repeats=REPEATS)


def test_every_variant_is_measured(measurement: bench.codec.Measurement) -> None:
    assert [variant.name for variant in measurement.variants] == list(bench.codec.VARIANTS)
    assert bench.codec.BASELINE in bench.codec.VARIANTS


def test_every_repeat_has_a_positive_rate(measurement: bench.codec.Measurement) -> None:
    for variant in measurement.variants:
        assert len(variant.rates) == REPEATS
        assert all(rate > 0 for rate in variant.rates)
        assert variant.min_rate <= variant.median_rate <= variant.max_rate


def test_the_frame_is_about_200_bytes(measurement: bench.codec.Measurement) -> None:
    assert 100 <= measurement.json_bytes <= 400
    assert 100 <= measurement.msgpack_bytes <= 400
    assert 100 <= measurement.stdlib_bytes <= 400


def test_there_is_one_goal_per_typed_variant(measurement: bench.codec.Measurement) -> None:
    report = bench.codec.report(measurement)
    assert len(report.goals) == len(bench.codec.TYPED_VARIANTS)
    assert len(report.rows) == len(bench.codec.VARIANTS)
    assert all(len(row) == len(report.header) for row in report.rows)


def test_the_runner_runs_a_selected_benchmark_without_matplotlib() -> None:
    """``python -m bench`` (what ``nox -s bench`` runs), for one quick benchmark; only
    ``--write`` draws plots, so nothing else imports matplotlib."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "bench", "--quick", "--only", "codec"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "codec: encode + decode" in result.stdout
    assert result.returncode in (0, 1), result.stderr  # 1 only when a goal is missed
    imported = {
        line.rpartition("|")[2].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "bench._plots" in imported  # the import log is complete enough to tell
    assert not {name for name in imported if name.partition(".")[0] == "matplotlib"}
