"""Benchmarks start real processes: every test module here checks that none is left behind."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


def _children() -> set[int]:
    """Processes whose parent is this one (Linux), to tell whether a benchmark left any."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == os.getpid():
            found.add(int(stat.parent.name))
    return found


@pytest.fixture(scope="module", autouse=True)
def no_process_is_left_behind() -> Iterator[None]:
    if not Path("/proc/self/stat").exists():
        yield
        return
    before = _children()
    yield
    assert _children() <= before
