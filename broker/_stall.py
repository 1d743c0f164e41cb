"""Which connected runs went silent: a clock-free decision, like ``_heartbeat``.

A run is watched from its connection on; every event it sends is a sign of life. A run that
sends nothing for ``after_s`` while its connection stays up (it answers the broker's pings,
so the process lives, but the work does not move) is *stalled*, reported once; its next event
is its *recovery*. A run that disconnects is no longer watched: the presence events and the
``expired`` trigger tell of that. A stalled run that disconnects stays stalled until it
expires: when it connects again within its grace, its next event is its recovery.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Stalled:
    workspace: str
    epoch: int
    run_id: str
    since_offset: int
    """The offset of the run's last event (or of its connection) before the silence."""
    silent_s: float


@dataclass(frozen=True, slots=True)
class Recovered:
    workspace: str
    epoch: int
    run_id: str
    offset: int
    """The offset of the event that ended the silence."""


@dataclass(frozen=True, slots=True)
class _Watched:
    epoch: int
    offset: int
    heard: float


class StallWatch:
    """Silent runs, given the time of each sign of life (any monotonic clock, never going
    back). The runs are kept in the order they were last heard from, so finding the silent
    ones looks only at those due: a storm of connections costs each one a dict insert."""

    def __init__(self, after_s: float) -> None:
        if not after_s > 0:
            raise ValueError("the stall time must be positive")
        self.after_s = after_s
        self._watched: dict[tuple[str, str], _Watched] = {}
        """Runs not reported, oldest sign of life first."""
        self._stalled: dict[tuple[str, str], _Watched] = {}
        """Connected runs reported stalled, until they speak again or go."""
        self._away: dict[tuple[str, str], _Watched] = {}
        """Runs reported stalled that disconnected, until they come back or expire."""

    def __len__(self) -> int:
        """The connected runs watched, stalled or not."""
        return len(self._watched) + len(self._stalled)

    def connected(self, workspace: str, epoch: int, run_id: str, offset: int, now: float) -> None:
        """The run connected (again): watched from now on, unless it is stalled, in which
        case it stays so until its next event (a connection is not the work moving)."""
        key = (workspace, run_id)
        stalled = self._away.pop(key, None) or self._stalled.pop(key, None)
        if stalled is not None and stalled.epoch == epoch:
            self._stalled[key] = stalled
            return
        self._watched.pop(key, None)
        self._watched[key] = _Watched(epoch, offset, now)

    def heard(
        self, workspace: str, epoch: int, run_id: str, offset: int, now: float
    ) -> Recovered | None:
        """The run connected, or sent the event at ``offset``: its recovery when it had been
        reported stalled."""
        key = (workspace, run_id)
        stalled = self._stalled.pop(key, None) or self._away.pop(key, None)
        # Popped and put back: the run moves to the end of the order.
        self._watched.pop(key, None)
        self._watched[key] = _Watched(epoch, offset, now)
        if stalled is not None and stalled.epoch == epoch:
            return Recovered(workspace, epoch, run_id, offset)
        return None

    def gone(self, workspace: str, run_id: str) -> None:
        """The run disconnected: watch it no more (a stalled one stays stalled, away)."""
        key = (workspace, run_id)
        self._watched.pop(key, None)
        stalled = self._stalled.pop(key, None)
        if stalled is not None:
            self._away[key] = stalled

    def expired(self, workspace: str, run_id: str) -> None:
        """The run's grace ended without it coming back: forget it."""
        key = (workspace, run_id)
        for runs in (self._watched, self._stalled, self._away):
            runs.pop(key, None)

    def forget_workspace(self, workspace: str) -> None:
        """The workspace was deleted (its runs closed without a word): watch none of them."""
        for runs in (self._watched, self._stalled, self._away):
            for key in [key for key in runs if key[0] == workspace]:
                del runs[key]

    def due(self, now: float) -> list[Stalled]:
        """The runs silent for ``after_s`` or longer and not reported yet; each is reported
        once until it speaks again."""
        found: list[Stalled] = []
        watched = self._watched
        while watched:
            key, run = next(iter(watched.items()))
            silent = now - run.heard
            if silent < self.after_s:
                break
            del watched[key]
            self._stalled[key] = run
            found.append(Stalled(key[0], run.epoch, key[1], run.offset, silent))
        return found

    def next_due(self) -> float | None:
        """When the earliest run not yet reported becomes stalled, if it stays silent."""
        for run in self._watched.values():
            return run.heard + self.after_s
        return None
