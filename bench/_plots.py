"""Plots for BENCHMARKS.md: named series of (x, min, median, max), drawn as PNG files.

A benchmark describes its plots as plain data (:class:`Plot`) and the runner draws them only
with ``--write``: matplotlib is imported by :func:`draw` alone, so a run that records nothing
never needs it. Plots are keyed by their file: reports that describe a plot with the same file
and axes share one figure, each adding its own series (another system's fan-out, say, beside
the broker's and the relay's), see :func:`combine`.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from ._report import Spread

PLOTS_DIR: Final = "docs/bench"
"""Where the PNG files go, relative to BENCHMARKS.md; links in it use this path."""

WIDTH_IN: Final = 8.0
HEIGHT_IN: Final = 5.0
DPI: Final = 100

LINE_STYLES: Final = ("-", "--", ":", "-.")
"""Within one system's series, in order."""

_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
_FILE_STEM: Final = re.compile(r"[a-z0-9][a-z0-9-]*")


@dataclass(frozen=True, slots=True)
class Point:
    """One x, and the figure measured there over repeats: its least, median and greatest value."""

    x: float
    min: float
    median: float
    max: float

    def __post_init__(self) -> None:
        if not self.min <= self.median <= self.max:
            raise ValueError(f"at x={self.x}: not min <= median <= max: {self}")

    @classmethod
    def of(cls, x: float, values: Iterable[float]) -> Point:
        """The point for ``x`` from one value per repeat."""
        spread = Spread.of(values)
        return cls(x, spread.min, spread.median, spread.max)


@dataclass(frozen=True, slots=True)
class Series:
    """One line of a plot, named as its legend shows it."""

    name: str
    points: tuple[Point, ...]
    system: str | None = None
    """What was measured, where one system has several series (p50 and p99, say): series of
    one system share a colour and differ in line style. None: the series is its own system."""

    def __post_init__(self) -> None:
        if not self.points:
            raise ValueError(f"series {self.name!r} has no points")

    @property
    def colour_key(self) -> str:
        return self.name if self.system is None else self.system

    @property
    def ordered(self) -> tuple[Point, ...]:
        """The points by increasing x, as the line joins them."""
        return tuple(sorted(self.points, key=lambda point: point.x))


@dataclass(frozen=True, slots=True)
class Plot:
    """A figure: median lines with min..max error bars, one per series."""

    file: str
    """File name without extension: lowercase letters, digits and dashes."""
    title: str
    x_label: str
    y_label: str
    series: tuple[Series, ...]
    log_x: bool = False
    log_y: bool = False

    def __post_init__(self) -> None:
        if not _FILE_STEM.fullmatch(self.file):
            raise ValueError(f"plot file {self.file!r}: use lowercase letters, digits, dashes")
        names = [series.name for series in self.series]
        if len(set(names)) != len(names):
            raise ValueError(f"plot {self.file!r}: series named twice in {names}")

    @property
    def path(self) -> str:
        """Where the PNG goes, relative to BENCHMARKS.md (with ``/``, as a Markdown link)."""
        return f"{PLOTS_DIR}/{self.file}.png"

    def axes(self) -> tuple[str, str, str, bool, bool]:
        """Everything but the series: what two descriptions of one figure must agree on."""
        return (self.title, self.x_label, self.y_label, self.log_x, self.log_y)


def combine(plots: Iterable[Plot]) -> tuple[Plot, ...]:
    """One plot per file, with the series of every description of it, in the order given."""
    merged: dict[str, Plot] = {}
    for plot in plots:
        known = merged.get(plot.file)
        if known is None:
            merged[plot.file] = plot
            continue
        if known.axes() != plot.axes():
            raise ValueError(f"plot {plot.file!r} described with different axes")
        # Plot re-checks that no series name comes twice.
        merged[plot.file] = replace(known, series=known.series + plot.series)
    return tuple(merged.values())


def require_matplotlib() -> None:
    """Exit with a hint unless matplotlib, which :func:`draw` needs, can be imported."""
    try:
        import matplotlib  # type: ignore[import-not-found, unused-ignore]  # noqa: F401
    except ImportError:
        raise SystemExit(
            "--write draws plots with matplotlib: `nox -s bench` installs it,"
            " or `pip install matplotlib`"
        ) from None


def draw(plot: Plot, results_dir: Path) -> Path:
    """Write ``plot`` as a PNG under ``results_dir`` (BENCHMARKS.md's folder); its path."""
    # Imported here so that only a run that writes plots needs matplotlib; Figure with no
    # pyplot involves no GUI backend, and there is no screen.
    from matplotlib.figure import Figure  # type: ignore[import-not-found, unused-ignore]
    from matplotlib.ticker import FuncFormatter  # type: ignore[import-not-found, unused-ignore]

    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    for series, (colour, style) in zip(plot.series, line_styles(plot.series), strict=True):
        points = series.ordered
        medians = [point.median for point in points]
        axes.errorbar(
            [point.x for point in points],
            medians,
            yerr=[
                [point.median - point.min for point in points],
                [point.max - point.median for point in points],
            ],
            marker="o",
            capsize=4,
            label=series.name,
            color=f"C{colour}",
            linestyle=style,
        )
    if plot.log_x:
        axes.set_xscale("log")
    if plot.log_y:
        axes.set_yscale("log")
    else:
        axes.set_ylim(bottom=0)  # a linear axis from zero does not exaggerate differences
    # Plain numbers with thousands separators: no "1e6" offset, no powers of ten.
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: plain_number(value)))
    # Ticks at the measured x values only: a log axis would otherwise label powers of ten.
    xs = sorted({point.x for series in plot.series for point in series.points})
    axes.set_xticks(xs, [plain_number(x) for x in xs])
    axes.tick_params(axis="x", which="minor", bottom=False, labelbottom=False)
    axes.set_title(plot.title)
    axes.set_xlabel(plot.x_label)
    axes.set_ylabel(plot.y_label)
    axes.grid(True, which="major", alpha=0.3)
    # Below the axes, where no line runs through it however many series join.
    figure.legend(loc="outside lower center", ncols=2)
    path = results_dir / plot.path
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    check_png(path, width=round(WIDTH_IN * DPI), height=round(HEIGHT_IN * DPI))
    return path


def plain_number(value: float) -> str:
    """A tick label: digits with thousands separators, never an exponent."""
    if value == int(value):
        return f"{value:,.0f}"
    return f"{value:,.6f}".rstrip("0").rstrip(".")


def line_styles(series: Iterable[Series]) -> list[tuple[int, str]]:
    """Each series' colour (an index into matplotlib's cycle) and line style: a colour per
    system, in order of first appearance, and within a system one style per series."""
    colours: dict[str, int] = {}
    used: dict[str, int] = {}
    styles = []
    for one in series:
        key = one.colour_key
        colour = colours.setdefault(key, len(colours))
        index = used.get(key, 0)
        used[key] = index + 1
        styles.append((colour, LINE_STYLES[index % len(LINE_STYLES)]))
    return styles


def check_png(path: Path, *, width: int, height: int) -> None:
    """Fail unless ``path`` is a PNG image of ``width`` x ``height`` pixels."""
    # The suite runs without matplotlib, so a drawn plot is checked here, where it is made.
    with path.open("rb") as file:
        head = file.read(24)
    if len(head) < 24 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise RuntimeError(f"{path} is not a PNG image")
    size = struct.unpack(">II", head[16:24])
    if size != (width, height):
        raise RuntimeError(f"{path} is {size[0]}x{size[1]} pixels, expected {width}x{height}")
