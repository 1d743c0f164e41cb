"""What a soak samples from a running broker process: its memory, its file descriptors, the
size of its store on disk, and the queue depths it reports in ``stats``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import sdk
from tests.support import memory_kib


@dataclass(frozen=True, slots=True)
class Sample:
    t_s: float
    """Seconds since the load started."""
    rss_kib: int
    fds: int
    store_bytes: int
    """Every file in the broker's data directory (database, WAL, shared memory)."""
    counters: dict[str, int | float]
    """The broker's ``stats`` counters at that moment."""

    @property
    def rss_mib(self) -> float:
        return self.rss_kib / 1024

    @property
    def store_mib(self) -> float:
        return self.store_bytes / (1024 * 1024)

    def counter(self, name: str) -> float:
        """A counter of the report; a broker that does not report it fails the soak."""
        try:
            return float(self.counters[name])
        except KeyError:
            raise KeyError(f"the broker's stats report has no {name!r} counter") from None


def open_fds(pid: int) -> int:
    """File descriptors ``pid`` holds open, from /proc (Linux only)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def directory_bytes(directory: Path) -> int:
    """Bytes of the files under ``directory``; files that vanish meanwhile count for nothing."""
    total = 0
    for path in directory.rglob("*"):
        try:
            if path.is_file():
                total += path.stat().st_size
        except FileNotFoundError:  # SQLite removes its -wal and -shm files now and then
            continue
    return total


class BrokerProbe:
    """Samples one broker process; ``watcher`` is an open admin session on it, for ``stats``."""

    def __init__(self, pid: int, data_dir: Path, watcher: sdk.Watcher) -> None:
        self.pid = pid
        self.data_dir = data_dir
        self.watcher = watcher

    async def sample(self, t_s: float) -> Sample:
        report = await self.watcher.stats()
        return Sample(
            t_s=t_s,
            rss_kib=memory_kib(self.pid),
            fds=open_fds(self.pid),
            store_bytes=directory_bytes(self.data_dir),
            counters=dict(report.counters),
        )
