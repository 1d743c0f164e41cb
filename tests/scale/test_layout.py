"""The scale run's layout: every session held once, watchers spread, the runs each one follows."""

from __future__ import annotations

import fnmatch

import pytest

from tests.scale.layout import ScaleLayout, WatcherSpec, WorkerSpec


def test_every_session_is_held_by_exactly_one_process() -> None:
    layout = ScaleLayout(sessions=1003, processes=4, workspaces=23, watchers=17)
    held = [spec for process in range(4) for spec in layout.held_by(process)]
    assert sorted(map(repr, held)) == sorted(map(repr, layout.specs))
    assert len(set(held)) == 1003
    watchers = [sum(isinstance(s, WatcherSpec) for s in layout.held_by(p)) for p in range(4)]
    assert sum(watchers) == 17
    assert max(watchers) - min(watchers) <= 1


def test_runs_are_distinct_and_spread_evenly_over_the_workspaces() -> None:
    layout = ScaleLayout(sessions=1000, processes=3, workspaces=30, watchers=10)
    workers = [spec for spec in layout.specs if isinstance(spec, WorkerSpec)]
    assert len({worker.run_id for worker in workers}) == layout.workers == 990
    sizes = {len(runs) for runs in layout.runs_by_workspace.values()}
    assert len(layout.runs_by_workspace) == 30
    assert sizes == {33}


def test_a_watcher_follows_every_run_of_the_workspaces_its_pattern_matches() -> None:
    layout = ScaleLayout(sessions=2000, processes=2, workspaces=25, watchers=20)
    watchers = [spec for spec in layout.specs if isinstance(spec, WatcherSpec)]
    for watcher in watchers:
        expected = {
            spec.run_id
            for spec in layout.specs
            if isinstance(spec, WorkerSpec) and fnmatch.fnmatchcase(spec.workspace, watcher.pattern)
        }
        assert layout.runs_followed(watcher.pattern) == expected
        assert expected
    # 1980 runs over 25 workspaces: the first five hold 80, the others 79. The patterns cover
    # workspaces 0-9, 10-19 and 20-24.
    assert sorted({len(layout.runs_followed(w.pattern)) for w in watchers}) == [395, 790, 795]
    assert {w.pattern for w in watchers} == {f"scale-{g:03d}?" for g in range(3)}


@pytest.mark.parametrize(
    ("sessions", "processes", "workspaces", "watchers"),
    [(10, 1, 1, 0), (10, 1, 1, 10), (10, 0, 1, 1), (10, 11, 1, 1), (10, 1, 10, 1)],
)
def test_impossible_figures_are_refused(
    sessions: int, processes: int, workspaces: int, watchers: int
) -> None:
    with pytest.raises(ValueError, match="need"):
        ScaleLayout(sessions, processes, workspaces, watchers)
