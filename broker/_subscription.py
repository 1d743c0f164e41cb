"""Subscriptions: which workspaces a watcher follows, from where, and how far it has read.

Pure bookkeeping; the watcher session's delivery loop moves the cursors as it sends.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Collection
from dataclasses import dataclass

from schema import Cursor as WireCursor
from schema import StartPosition


@dataclass(slots=True)
class ReadCursor:
    """The epoch of a workspace a subscriber follows and the last offset it was sent."""

    epoch: int
    offset: int


class Subscription:
    __slots__ = ("_match", "awaited", "cursors", "kinds", "pattern", "sub")

    def __init__(self, sub: int, pattern: str, kinds: Collection[str] | None) -> None:
        self.sub = sub
        self.pattern = pattern
        self.kinds = frozenset(kinds) if kinds is not None else None
        self._match = re.compile(fnmatch.translate(pattern)).match
        self.cursors: dict[str, ReadCursor] = {}
        self.awaited: dict[str, ReadCursor] = {}
        """Resume cursors of workspaces this node has not read yet (another node writes them,
        and this one has not heard of them): where the reader goes on once they arrive in the
        same epoch."""

    def matches(self, workspace: str) -> bool:
        return self._match(workspace) is not None

    def wants(self, kind: str) -> bool:
        return self.kinds is None or kind in self.kinds


def start_cursor(
    start: StartPosition | dict[str, WireCursor],
    *,
    workspace: str,
    epoch: int,
    first_offset: int,
    last_offset: int,
    assigned_offset: int | None = None,
    may_lag: bool = False,
) -> tuple[ReadCursor, bool]:
    """Where a new subscription starts reading a workspace, and whether that loses nothing.

    ``last_offset`` is the committed end of the stream; ``first_offset`` the oldest stored;
    ``assigned_offset`` the last offset given here, durable or on its way (``last_offset`` when
    not given); ``may_lag``: the stream is this node's copy of one another node writes, which
    may be behind.
    A resume cursor whose events are gone (retention) or whose epoch ended still starts, and
    the delivery loop reports the hole with a ``gap`` frame; the result says it was not
    recovered.
    """
    earliest = ReadCursor(epoch, first_offset - 1)
    if start == "latest":
        return ReadCursor(epoch, last_offset), True
    if start == "earliest":
        return earliest, True
    assert isinstance(start, dict)
    given = start.get(workspace)
    if given is None:
        # A resuming reader names every workspace it knows: this one is new to it.
        return earliest, True
    if given.epoch != epoch:
        return earliest, False
    if given.offset > last_offset:
        if may_lag or given.offset <= (assigned_offset or last_offset):
            # Behind the reader here: this node's copy of a workspace another node writes, or
            # this node's own commit that another node read from the store (and delivered)
            # before its answer came back here. The reader goes on from its cursor once the
            # stream here has caught up.
            return ReadCursor(epoch, given.offset), True
        # Ahead of the stream in the same epoch cannot happen with a durable store; the reader
        # is confused, so it is put at the end and told the resume was not exact.
        return ReadCursor(epoch, last_offset), False
    return ReadCursor(epoch, given.offset), given.offset + 1 >= first_offset
