"""What a plot is made of, and how reports' descriptions of one figure combine.

Drawing needs matplotlib, which only the bench installs: the bench checks each PNG it draws
(:func:`bench._plots.check_png`). Here: the plot input and the PNG check; that a run without
``--write`` does not import matplotlib is checked with the runner, in ``test_codec_bench``.
"""

from __future__ import annotations

import zlib
from dataclasses import replace
from pathlib import Path

import pytest

from bench._plots import (
    PLOTS_DIR,
    Plot,
    Point,
    Series,
    check_png,
    combine,
    line_styles,
    plain_number,
)


def _plot(*series: Series, file: str = "fanout-vs-watchers") -> Plot:
    return Plot(
        file=file,
        title="Fan-out",
        x_label="watchers",
        y_label="deliveries per second",
        series=series,
        log_x=True,
    )


def _series(name: str, *xs: float) -> Series:
    return Series(name, tuple(Point.of(x, [x, 2 * x, 3 * x]) for x in xs))


def test_a_point_is_min_median_max_over_repeats() -> None:
    assert Point.of(10, [3.0, 1.0, 2.0]) == Point(10, 1.0, 2.0, 3.0)
    assert Point.of(5, [4.0, 1.0, 2.0, 8.0]) == Point(5, 1.0, 3.0, 8.0)
    with pytest.raises(ValueError, match="no values"):
        Point.of(1, [])
    with pytest.raises(ValueError, match="min <= median <= max"):
        Point(1, 2.0, 1.0, 3.0)


def test_a_series_is_joined_in_order_of_x() -> None:
    series = Series("ours", (Point.of(100, [1.0]), Point.of(1, [2.0]), Point.of(10, [3.0])))
    assert [point.x for point in series.ordered] == [1, 10, 100]
    with pytest.raises(ValueError, match="no points"):
        Series("empty", ())


def test_a_plot_is_a_png_file_in_the_plots_folder() -> None:
    assert _plot(_series("ours", 1)).path == f"{PLOTS_DIR}/fanout-vs-watchers.png"
    for bad in ("", "Fanout", "../fanout", "fan out", "fanout.png", "-fanout"):
        with pytest.raises(ValueError, match="plot file"):
            _plot(_series("ours", 1), file=bad)
    with pytest.raises(ValueError, match="named twice"):
        _plot(_series("ours", 1), _series("ours", 10))


def test_descriptions_of_one_figure_combine_their_series_in_order() -> None:
    broker = _plot(_series("broker", 1, 10), _series("relay", 1, 10))
    peer = _plot(_series("Redis pub/sub", 1, 10, 100))
    other = _plot(_series("broker", 500), file="latency-vs-rate")
    combined = combine([broker, other, peer])
    assert [plot.file for plot in combined] == ["fanout-vs-watchers", "latency-vs-rate"]
    assert [series.name for series in combined[0].series] == ["broker", "relay", "Redis pub/sub"]
    assert combined[0].axes() == broker.axes()
    assert combined[1] == other


def test_descriptions_of_one_figure_must_agree() -> None:
    broker = _plot(_series("broker", 1))
    with pytest.raises(ValueError, match="different axes"):
        combine([broker, replace(_plot(_series("peer", 1)), log_y=True)])
    with pytest.raises(ValueError, match="named twice"):
        combine([broker, _plot(_series("broker", 10))])


def test_series_of_one_system_share_a_colour_and_differ_in_style() -> None:
    def series(name: str, system: str | None) -> Series:
        return Series(name, (Point.of(1, [1.0]),), system=system)

    styles = line_styles(
        [
            series("broker p50", "broker"),
            series("relay p50", "relay"),
            series("broker p99", "broker"),
            series("Redis", None),
            series("relay p99", "relay"),
        ]
    )
    assert styles == [(0, "-"), (1, "-"), (0, "--"), (2, "-"), (1, "--")]


def test_tick_labels_are_plain_numbers() -> None:
    assert [plain_number(v) for v in (1.0, 30.0, 10_000.0, 2.5e6)] == [
        "1",
        "30",
        "10,000",
        "2,500,000",
    ]
    assert [plain_number(v) for v in (0.5, 0.02, 1_234.5)] == ["0.5", "0.02", "1,234.5"]


def _png(width: int, height: int) -> bytes:
    header = b"IHDR" + width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    chunk = len(header[4:]).to_bytes(4, "big") + header
    return b"\x89PNG\r\n\x1a\n" + chunk + zlib.crc32(header).to_bytes(4, "big")


def test_the_png_check_reads_the_size(tmp_path: Path) -> None:
    path = tmp_path / "plot.png"
    path.write_bytes(_png(800, 500))
    check_png(path, width=800, height=500)
    with pytest.raises(RuntimeError, match="is 800x500 pixels, expected 640x480"):
        check_png(path, width=640, height=480)
    path.write_bytes(b"GIF89a" + bytes(30))
    with pytest.raises(RuntimeError, match="not a PNG"):
        check_png(path, width=800, height=500)
