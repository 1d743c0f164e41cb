"""Open-file limits: every session is a socket, so a process holds one descriptor per session."""

from __future__ import annotations

import resource
from dataclasses import dataclass

SPARE_FILES = 256
"""Descriptors a process needs besides its sessions: the store, pipes, epoll, the listener."""


class FileLimitError(RuntimeError):
    """The hard limit on open files is below what the run needs; only root can raise it."""


@dataclass(frozen=True, slots=True)
class FileLimit:
    soft: int
    hard: int


def raise_open_files(sessions: int) -> FileLimit:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (child processes inherit it).

    Raises FileLimitError when even the hard limit cannot hold ``sessions`` sockets.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = sessions + SPARE_FILES
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise FileLimitError(
            f"{sessions} sessions need {needed} open files in one process, but the hard "
            f"RLIMIT_NOFILE is {hard}: raise it (ulimit -Hn, limits.conf or the service's "
            "LimitNOFILE) or run fewer sessions"
        )
    # An unlimited hard limit still has the kernel's nr_open above it: ask for what is needed.
    wanted = max(soft, needed) if hard == resource.RLIM_INFINITY else hard
    if soft != wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return FileLimit(*resource.getrlimit(resource.RLIMIT_NOFILE))
