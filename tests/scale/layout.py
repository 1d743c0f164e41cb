"""Who the sessions of a scale run are, and which client process holds each.

Workers of distinct runs spread evenly over the workspaces, and watchers that each follow a
group of ten neighbouring workspaces with a glob (``scale-012?``). The layout is a pure function
of its figures, so every client process derives the same one and knows, for each of its
watchers, which runs it must hear from, wherever those runs are held.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from functools import cached_property

GROUP = 10
"""Workspaces a watcher's pattern matches: the ten names that differ in their last digit."""


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    run_id: str
    workspace: str


@dataclass(frozen=True, slots=True)
class WatcherSpec:
    index: int
    pattern: str


SessionSpec = WorkerSpec | WatcherSpec


@dataclass(frozen=True)
class ScaleLayout:
    sessions: int
    processes: int
    workspaces: int
    watchers: int

    def __post_init__(self) -> None:
        if not 0 < self.watchers < self.sessions:
            raise ValueError("need at least one watcher and one worker")
        if not 0 < self.workspaces <= self.workers:
            raise ValueError("need between one workspace and one per worker")
        if not 0 < self.processes <= self.sessions:
            raise ValueError("need between one process and one per session")

    @property
    def workers(self) -> int:
        return self.sessions - self.watchers

    def workspace(self, number: int) -> str:
        return f"scale-{number:04d}"

    @cached_property
    def specs(self) -> list[SessionSpec]:
        """Every session: the workers, then the watchers."""
        groups = -(-self.workspaces // GROUP)
        return [
            *(
                WorkerSpec(f"scale-run-{i:05d}", self.workspace(i % self.workspaces))
                for i in range(self.workers)
            ),
            *(WatcherSpec(i, f"scale-{i % groups:03d}?") for i in range(self.watchers)),
        ]

    def held_by(self, process: int) -> list[SessionSpec]:
        """The sessions client process ``process`` (0-based) holds: every ``processes``-th, so
        each process gets its share of workers and of watchers."""
        return self.specs[process :: self.processes]

    @cached_property
    def runs_by_workspace(self) -> dict[str, frozenset[str]]:
        runs: dict[str, set[str]] = {}
        for spec in self.specs:
            if isinstance(spec, WorkerSpec):
                runs.setdefault(spec.workspace, set()).add(spec.run_id)
        return {name: frozenset(ids) for name, ids in runs.items()}

    def runs_followed(self, pattern: str) -> frozenset[str]:
        """The run ids of every worker in a workspace that ``pattern`` matches."""
        matched = [
            ids
            for name, ids in self.runs_by_workspace.items()
            if fnmatch.fnmatchcase(name, pattern)
        ]
        return frozenset().union(*matched)
