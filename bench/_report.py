"""What a benchmark hands back to the runner, and how it is printed and recorded.

Benchmarks return plain figures; all layout lives here so every benchmark prints, and lands in
BENCHMARKS.md, the same way.
"""

from __future__ import annotations

import shlex
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from ._plots import Plot

RESULTS_PREAMBLE: Final = """\
# Benchmarks

Every figure is measured over several repeats and given as its least, median and greatest value
over them: `min`, `median` and `max` columns, or `median (min..max)` in one cell. Each benchmark
measures its baseline in the same run, interleaved with it, and is judged on the ratio to it
(median over median), never on absolute figures, which depend on the machine. Each section names
the machine and the exact command that measured it. Sections are rewritten by
`nox -s bench -- --write`, which also draws the plots in `docs/bench/`: medians joined by lines,
with error bars from min to max.

Every `pierhead serve` in these benchmarks runs with `--max-events-per-s 1e9`: the per-session
rate limit (100,000 events/s by default) would refuse a worker faster than that, and the
benchmarks measure capacity."""
PREAMBLE: Final = "preamble"
"""The marker name of the text above every section."""


@dataclass(frozen=True, slots=True)
class Spread:
    """A figure over repeats: its least, median and greatest value."""

    min: float
    median: float
    max: float

    @classmethod
    def of(cls, values: Iterable[float]) -> Spread:
        ordered = sorted(values)
        if not ordered:
            raise ValueError("no values")
        return cls(ordered[0], statistics.median(ordered), ordered[-1])

    def cells(self, spec: str) -> tuple[str, str, str]:
        """Min, median and max formatted with ``spec``, for three columns."""
        return (format(self.min, spec), format(self.median, spec), format(self.max, spec))

    def cell(self, spec: str) -> str:
        """``median (min..max)``, for one column."""
        low, median, high = self.cells(spec)
        return f"{median} ({low}..{high})"


def spread_cell(values: Iterable[float | None], spec: str) -> str:
    """``median (min..max)`` of the values that are known, for one column; ``n/a`` without."""
    known = [value for value in values if value is not None]
    return Spread.of(known).cell(spec) if known else "n/a"


def spread_header(figure: str) -> tuple[str, str, str]:
    """Column names for :meth:`Spread.cells`."""
    return (f"min {figure}", f"median {figure}", f"max {figure}")


@dataclass(frozen=True, slots=True)
class Goal:
    """One pass/fail target, with the figure it was judged on."""

    description: str
    measured: str
    passed: bool

    def verdict(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'}  {self.description}: {self.measured}"


@dataclass(frozen=True, slots=True)
class Report:
    """A finished benchmark: its setup, a table of figures and its goals."""

    name: str
    """Short key; also names the benchmark's section in BENCHMARKS.md."""
    title: str
    notes: tuple[str, ...]
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    goals: tuple[Goal, ...]
    plots: tuple[Plot, ...] = ()
    """Drawn next to BENCHMARKS.md with ``--write`` and linked from the section."""

    @property
    def passed(self) -> bool:
        return all(goal.passed for goal in self.goals)


def render_text(report: Report) -> str:
    """The report as printed: notes, an aligned table, then one verdict per goal."""
    lines = [f"{report.name}: {report.title}"]
    # Notes are written as Markdown; backticks are only noise on a terminal.
    lines += [f"  {note.replace('`', '')}" for note in report.notes]
    lines += [f"  {line}" for line in _aligned((report.header, *report.rows))]
    lines += [f"  {goal.verdict()}" for goal in report.goals]
    return "\n".join(lines)


def _aligned(table: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[column]) for row in table) for column in range(len(table[0]))]
    # The first column names the row; the others are figures, which read best right-aligned.
    return [
        "  ".join(
            cell.ljust(width) if column == 0 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in table
    ]


def render_markdown(report: Report, *, machine: str, command: str) -> str:
    """The report as its BENCHMARKS.md section, between the markers that let it be replaced."""
    begin, end = _markers(report.name)
    lines = [begin, f"## {report.name}: {report.title}", ""]
    lines += [f"- Command: `{command}`", f"- Machine: {machine}"]
    lines += [f"- {note}" for note in report.notes]
    lines += ["", _markdown_row(report.header), _markdown_rule(len(report.header))]
    lines += [_markdown_row(row) for row in report.rows]
    lines += [line for plot in report.plots for line in ("", f"![{plot.title}]({plot.path})")]
    if report.goals:
        lines += ["", *(f"- {goal.verdict()}" for goal in report.goals)]
    lines.append(end)
    return "\n".join(lines)


def _markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _markdown_rule(columns: int) -> str:
    return "|" + "---|" + "--:|" * (columns - 1)


_MARKER: Final = "<!-- bench:"


def _markers(name: str) -> tuple[str, str]:
    return f"{_MARKER}{name} begin -->", f"{_MARKER}{name} end -->"


def recorded_command(argv: Sequence[str], *, nox_session: str | None) -> str:
    """The command line that ran the benchmarks, as a reader would type it again."""
    if nox_session is None:
        return shlex.join(["python", "-m", "bench", *argv])
    return shlex.join(["nox", "-s", nox_session, *(["--", *argv] if argv else [])])


def write_section(path: Path, name: str, section: str) -> None:
    """Replace benchmark ``name``'s section of ``path``, or append it, under the current
    preamble; other text is kept."""
    text = _with_preamble(path.read_text(encoding="utf-8") if path.exists() else "")
    path.write_text(_with_section(text, name, section), encoding="utf-8", newline="\n")


def _with_section(text: str, name: str, section: str) -> str:
    begin, end = _markers(name)
    start, stop = text.find(begin), text.find(end)
    if start != -1 and stop > start:
        return text[:start] + section + text[stop + len(end) :]
    return text.rstrip("\n") + "\n\n" + section + "\n"


def _with_preamble(text: str) -> str:
    begin, end = _markers(PREAMBLE)
    preamble = f"{begin}\n{RESULTS_PREAMBLE}\n{end}"
    start, stop = text.find(begin), text.find(end)
    if start != -1 and stop > start:
        return text[:start] + preamble + text[stop + len(end) :]
    # Files written before the preamble had markers: the text above the first section is the
    # preamble of that time.
    first = text.find(_MARKER)
    rest = text[first:] if first != -1 else text
    return preamble + "\n\n" + rest if rest.strip() else preamble + "\n"
