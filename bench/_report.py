"""What a benchmark hands back to the runner, and how it is printed and recorded.

Benchmarks return plain figures; all layout lives here so every benchmark prints, and lands in
BENCHMARKS.md, the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

RESULTS_PREAMBLE = """\
# Benchmarks

Each benchmark measures its baseline in the same run and is judged on the ratio to it, never on
absolute figures, which depend on the machine. Sections are rewritten by `nox -s bench -- --write`.
"""


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
    lines += ["", *(f"- {goal.verdict()}" for goal in report.goals), end]
    return "\n".join(lines)


def _markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _markdown_rule(columns: int) -> str:
    return "|" + "---|" + "--:|" * (columns - 1)


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name} begin -->", f"<!-- bench:{name} end -->"


def write_section(path: Path, name: str, section: str) -> None:
    """Replace benchmark ``name``'s section of ``path``, or append it; other text is kept."""
    text = path.read_text(encoding="utf-8") if path.exists() else RESULTS_PREAMBLE
    begin, end = _markers(name)
    start, stop = text.find(begin), text.find(end)
    if start != -1 and stop > start:
        text = text[:start] + section + text[stop + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text, encoding="utf-8", newline="\n")
