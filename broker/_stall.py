"""Which connected runs went silent: a clock-free decision, like ``_heartbeat``.

A run is watched from its connection on; every event it sends is a sign of life. A run that
sends nothing for ``after_s`` while its connection stays up (it answers the broker's pings,
so the process lives, but the work does not move) is *stalled*, reported once; its next event
is its *recovery*. A run that disconnects is no longer watched: the presence events and the
``expired`` trigger tell of that.
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


@dataclass(slots=True)
class _Watched:
    epoch: int
    offset: int
    heard: float
    stalled: bool = False


class StallWatch:
    """Silent runs, given the time of each sign of life (any monotonic clock)."""

    def __init__(self, after_s: float) -> None:
        if not after_s > 0:
            raise ValueError("the stall time must be positive")
        self.after_s = after_s
        self._runs: dict[tuple[str, str], _Watched] = {}

    def __len__(self) -> int:
        return len(self._runs)

    def heard(
        self, workspace: str, epoch: int, run_id: str, offset: int, now: float
    ) -> Recovered | None:
        """The run connected, or sent the event at ``offset``: its recovery when it had been
        reported stalled."""
        key = (workspace, run_id)
        watched = self._runs.get(key)
        if watched is None or watched.epoch != epoch:
            self._runs[key] = _Watched(epoch, offset, now)
            return None
        was_stalled = watched.stalled
        watched.offset, watched.heard, watched.stalled = offset, now, False
        return Recovered(workspace, epoch, run_id, offset) if was_stalled else None

    def gone(self, workspace: str, run_id: str) -> None:
        """The run disconnected (or its workspace went): watch it no more."""
        self._runs.pop((workspace, run_id), None)

    def due(self, now: float) -> list[Stalled]:
        """The runs silent for ``after_s`` or longer and not reported yet; each is reported
        once until it speaks again."""
        found: list[Stalled] = []
        for (workspace, run_id), watched in self._runs.items():
            silent = now - watched.heard
            if not watched.stalled and silent >= self.after_s:
                watched.stalled = True
                found.append(Stalled(workspace, watched.epoch, run_id, watched.offset, silent))
        return found

    def next_due(self) -> float | None:
        """When the earliest run not yet reported becomes stalled, if it stays silent."""
        pending = [w.heard for w in self._runs.values() if not w.stalled]
        return min(pending) + self.after_s if pending else None
