"""Report layout: min/median/max cells, plot links, the preamble and sections of BENCHMARKS.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench._plots import Plot, Point, Series
from bench._report import (
    PREAMBLE,
    RESULTS_PREAMBLE,
    Goal,
    Report,
    Spread,
    recorded_command,
    render_markdown,
    render_text,
    spread_cell,
    spread_header,
    write_section,
)

PLOT = Plot(
    file="things-by-size",
    title="Things by size",
    x_label="size",
    y_label="things per second",
    series=(Series("ours", (Point(1, 2, 3, 4),)),),
)


def _report(
    name: str = "thing", *, goals: tuple[Goal, ...] = (), plots: tuple[Plot, ...] = ()
) -> Report:
    spread = Spread.of([30.0, 10.0, 20.0])
    return Report(
        name=name,
        title="things per second",
        notes=("Counted with `count`",),
        header=("variant", *spread_header("things/s"), "load"),
        rows=(("ours", *spread.cells(",.0f"), spread.cell(".1f")),),
        goals=goals,
        plots=plots,
    )


def test_a_spread_is_min_median_max_of_the_repeats() -> None:
    assert Spread.of([5.0, 1.0, 4.0, 2.0]) == Spread(1.0, 3.0, 5.0)
    assert Spread.of([7.0]) == Spread(7.0, 7.0, 7.0)
    with pytest.raises(ValueError, match="no values"):
        Spread.of([])


def test_a_spread_renders_as_three_cells_or_one() -> None:
    spread = Spread.of([1_000.0, 3_500.0, 2_250.0])
    assert spread.cells(",.0f") == ("1,000", "2,250", "3,500")
    assert spread.cell(",.0f") == "2,250 (1,000..3,500)"
    assert spread_header("ms") == ("min ms", "median ms", "max ms")


def test_a_spread_cell_leaves_out_unknown_values_and_says_when_none_is_known() -> None:
    assert spread_cell([None, 3.0, 1.0, None, 2.0], ".1f") == "2.0 (1.0..3.0)"
    assert spread_cell([None, None], ".1f") == "n/a"


def test_markdown_has_command_machine_table_plot_links_and_goals() -> None:
    goal = Goal(description="ours >= 10 things/s", measured="20 things/s", passed=True)
    section = render_markdown(
        _report(goals=(goal,), plots=(PLOT,)), machine="a machine", command="nox -s bench"
    )
    lines = section.splitlines()
    assert lines[0] == "<!-- bench:thing begin -->"
    assert lines[-1] == "<!-- bench:thing end -->"
    assert "- Command: `nox -s bench`" in lines
    assert "- Machine: a machine" in lines
    assert "| variant | min things/s | median things/s | max things/s | load |" in lines
    assert "| ours | 10 | 20 | 30 | 20.0 (10.0..30.0) |" in lines
    assert "![Things by size](docs/bench/things-by-size.png)" in lines
    assert "- PASS  ours >= 10 things/s: 20 things/s" in lines
    # The plot follows the table and precedes the verdicts.
    assert lines.index("| ours | 10 | 20 | 30 | 20.0 (10.0..30.0) |") < lines.index(
        "![Things by size](docs/bench/things-by-size.png)"
    )


def test_a_report_without_goals_passes_and_shows_no_verdicts() -> None:
    report = _report()
    assert report.passed
    assert "PASS" not in render_text(report)
    assert "PASS" not in render_markdown(report, machine="m", command="c")


def test_the_command_is_recorded_as_it_was_run() -> None:
    assert recorded_command(["--write"], nox_session="bench") == "nox -s bench -- --write"
    assert recorded_command([], nox_session="bench") == "nox -s bench"
    assert (
        recorded_command(["--write", "--only", "codec"], nox_session=None)
        == "python -m bench --write --only codec"
    )
    assert recorded_command(["--only", "a b"], nox_session=None) == "python -m bench --only 'a b'"


def test_a_new_file_gets_the_preamble_then_the_section(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    write_section(path, "thing", "<!-- bench:thing begin -->\nfigures\n<!-- bench:thing end -->")
    text = path.read_text(encoding="utf-8")
    assert text.startswith(f"<!-- bench:{PREAMBLE} begin -->\n{RESULTS_PREAMBLE}\n")
    assert text.endswith("<!-- bench:thing begin -->\nfigures\n<!-- bench:thing end -->\n")


def test_sections_are_replaced_in_place_and_others_kept(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    for name, body in (("one", "first"), ("two", "second"), ("one", "third")):
        write_section(path, name, f"<!-- bench:{name} begin -->\n{body}\n<!-- bench:{name} end -->")
    text = path.read_text(encoding="utf-8")
    assert "first" not in text
    assert text.index("third") < text.index("second")
    assert text.count(RESULTS_PREAMBLE) == 1


def test_an_old_preamble_without_markers_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    section = "<!-- bench:one begin -->\nfigures\n<!-- bench:one end -->"
    path.write_text(f"# Benchmarks\n\nAn older preamble.\n\n{section}\n", encoding="utf-8")
    write_section(path, "two", "<!-- bench:two begin -->\nmore\n<!-- bench:two end -->")
    text = path.read_text(encoding="utf-8")
    assert "An older preamble." not in text
    assert text.startswith(f"<!-- bench:{PREAMBLE} begin -->\n{RESULTS_PREAMBLE}\n")
    assert section in text
    assert text.count("# Benchmarks") == 1
