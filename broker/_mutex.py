"""The workspace mutex as a lease: one holder, a FIFO of waiters, a fence, deadlines.

Sans-I/O: the broker calls a method when a frame arrives, a session opens or closes, or the timer
it keeps for :meth:`MutexLease.next_deadline` fires, and then carries out the effects returned, in
order (answer a request, send ``mutex_lost``, emit a ``semaphores`` event). Time is whatever
monotonic clock the caller reads, passed in as ``now`` in seconds; nothing here sleeps or reads it.

Rules worth knowing before reading the code:

* The fence increases by one on every grant and never goes down, so anything the holder writes
  with its fence can be told apart from writes of an earlier holder.
* Re-acquiring by the current holder is idempotent: it is answered with the fence it already
  holds. A worker that lost its answer to a reconnect can simply ask again.
* Waiters exist only while the lease is held: every way the holder goes away grants the head of
  the queue at once, so a waiter is never left behind a free lease.
* Every request id passed in gets at most one answer among the effects (a queued request is
  answered later, or never if its session goes away first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

__all__ = [
    "Conflict",
    "Granted",
    "HolderChanged",
    "Lost",
    "LostReason",
    "MutexEffect",
    "MutexLease",
    "NotHeld",
    "NotHolder",
    "Queued",
    "Released",
    "Superseded",
    "WaitTimedOut",
]

LostReason: TypeAlias = Literal["expired", "broken"]


@dataclass(frozen=True, slots=True)
class Granted:
    """``run_id`` holds the lease with ``fence``: answer ``request_id`` with ``mutex_granted``."""

    run_id: str
    request_id: int
    fence: int


@dataclass(frozen=True, slots=True)
class Queued:
    """``request_id`` waits in line; its answer comes later (granted, timed out or superseded)."""

    run_id: str
    request_id: int


@dataclass(frozen=True, slots=True)
class Conflict:
    """The lease is held by ``holder`` and the request would not wait: ``error conflict``."""

    run_id: str
    request_id: int
    holder: str


@dataclass(frozen=True, slots=True)
class Superseded:
    """A newer waiting request of the same run took this one's place: answer it with an error."""

    run_id: str
    request_id: int


@dataclass(frozen=True, slots=True)
class WaitTimedOut:
    """The waiting request ran out of ``timeout_s`` and left the queue: ``error timeout``."""

    run_id: str
    request_id: int


@dataclass(frozen=True, slots=True)
class Released:
    """``run_id`` gave back the lease it held with ``fence``: answer ``request_id`` with ``ok``."""

    run_id: str
    request_id: int
    fence: int


@dataclass(frozen=True, slots=True)
class NotHolder:
    """A release from a run that does not hold the lease: answer ``request_id`` with an error."""

    run_id: str
    request_id: int


@dataclass(frozen=True, slots=True)
class NotHeld:
    """A break of a lease nobody holds; ``by`` is who asked, to be answered with an error."""

    by: str


@dataclass(frozen=True, slots=True)
class Lost:
    """``run_id`` no longer holds the lease it had with ``fence``: send it ``mutex_lost``."""

    run_id: str
    fence: int
    reason: LostReason


@dataclass(frozen=True, slots=True)
class HolderChanged:
    """The holder or the fence changed: emit a ``semaphores`` event. Always the last effect."""

    holder: str | None
    fence: int


MutexEffect: TypeAlias = (
    Granted
    | Queued
    | Conflict
    | Superseded
    | WaitTimedOut
    | Released
    | NotHolder
    | NotHeld
    | Lost
    | HolderChanged
)


@dataclass(slots=True)
class _Waiter:
    request_id: int
    deadline: float | None


class MutexLease:
    """The mutex of one workspace.

    Every mutating method returns the effects to carry out, in order. When the holder or the
    fence changes, the last effect is one :class:`HolderChanged` with the new values.
    """

    __slots__ = ("_fence", "_grace_deadline", "_holder", "_queue")

    def __init__(self, fence: int = 0) -> None:
        """A free lease whose next grant gets ``fence + 1``; ``fence`` comes from the store."""
        if fence < 0:
            raise ValueError(f"fence must be >= 0, got {fence}")
        self._fence = fence
        self._holder: str | None = None
        # Set only while the holder's session is gone; the holder keeps the lease until then.
        self._grace_deadline: float | None = None
        # dict keeps insertion order, and assigning to an existing key keeps its place: FIFO.
        self._queue: dict[str, _Waiter] = {}

    @classmethod
    def restored(cls, holder: str | None, fence: int, *, now: float, grace_s: float) -> MutexLease:
        """The lease as the store had it before a restart; no effects.

        The holder's session did not survive the restart, so it is restored in grace and the
        grace period starts again at ``now``: a worker reconnecting promptly keeps the lease.
        """
        lease = cls(fence)
        if holder is not None:
            lease._holder = holder
            lease._grace_deadline = now + _check_grace(grace_s)
        return lease

    @property
    def holder(self) -> str | None:
        """The run holding the lease, or ``None`` when it is free."""
        return self._holder

    @property
    def fence(self) -> int:
        """The fence of the latest grant (the holder's fence while it is held)."""
        return self._fence

    @property
    def waiting(self) -> tuple[str, ...]:
        """Runs waiting for the lease, next in line first."""
        return tuple(self._queue)

    @property
    def in_grace(self) -> bool:
        """Whether the holder's session is gone and the lease expires at a deadline."""
        return self._grace_deadline is not None

    @property
    def grace_deadline(self) -> float | None:
        """When the lease ends while the holder's session is gone; None otherwise."""
        return self._grace_deadline

    def next_deadline(self) -> float | None:
        """The earliest grace or wait deadline; call :meth:`expire` once ``now`` reaches it."""
        deadlines = [w.deadline for w in self._queue.values() if w.deadline is not None]
        if self._grace_deadline is not None:
            deadlines.append(self._grace_deadline)
        return min(deadlines, default=None)

    def acquire(
        self, run_id: str, request_id: int, *, wait: bool, timeout_s: float | None, now: float
    ) -> list[MutexEffect]:
        """A ``mutex_acquire`` from ``run_id``.

        Effects:

        * free: ``Granted`` with a new fence, ``HolderChanged``;
        * held by ``run_id`` itself: ``Granted`` with the current fence and no change; a grace
          deadline is cancelled, since a frame from the run shows its session is live;
        * held by another, ``wait=False``: ``Conflict`` naming the holder. A queued request of
          the same run stays queued: trying is not giving up;
        * held by another, ``wait=True``: ``Queued``, at the back of the line with a deadline of
          ``now + timeout_s`` (none when ``timeout_s`` is None). A run already waiting keeps
          its place, takes the new request id and deadline, and its earlier request is answered
          with ``Superseded`` (not when the id is the same, as in a resend).
        """
        if timeout_s is not None and not timeout_s > 0:  # written so that NaN is refused too
            raise ValueError(f"timeout_s must be > 0 or None, got {timeout_s}")
        if self._holder is None:
            return self._changed_since(None, [self._grant(run_id, request_id)])
        if self._holder == run_id:
            self._grace_deadline = None
            return [Granted(run_id, request_id, self._fence)]
        if not wait:
            return [Conflict(run_id, request_id, self._holder)]

        effects: list[MutexEffect] = []
        previous = self._queue.get(run_id)
        if previous is not None and previous.request_id != request_id:
            effects.append(Superseded(run_id, previous.request_id))
        deadline = None if timeout_s is None else now + timeout_s
        self._queue[run_id] = _Waiter(request_id, deadline)
        effects.append(Queued(run_id, request_id))
        return effects

    def release(self, run_id: str, request_id: int) -> list[MutexEffect]:
        """A ``mutex_release`` from ``run_id``.

        Effects: from the holder, ``Released`` with the fence it held, then ``Granted`` (new
        fence) to the next waiter if any, then ``HolderChanged``. From anyone else, including
        a waiter and including any run when the lease is free: ``NotHolder`` and no change.
        """
        if self._holder != run_id:
            return [NotHolder(run_id, request_id)]
        before = self._holder
        effects: list[MutexEffect] = [Released(run_id, request_id, self._fence)]
        self._vacate()
        self._grant_next(effects)
        return self._changed_since(before, effects)

    def break_lease(self, by: str) -> list[MutexEffect]:
        """An admin's ``mutex_break``; ``by`` names the admin for the error effect.

        Effects: ``Lost`` (reason ``"broken"``) for the holder, ``Granted`` (new fence) to the
        next waiter if any, ``HolderChanged``. When the lease is free: ``NotHeld`` and no change.
        """
        if self._holder is None:
            return [NotHeld(by)]
        before = self._holder
        effects: list[MutexEffect] = [Lost(self._holder, self._fence, "broken")]
        self._vacate()
        self._grant_next(effects)
        return self._changed_since(before, effects)

    def disconnected(self, run_id: str, now: float, grace_s: float) -> list[MutexEffect]:
        """The session of ``run_id`` closed; no effects.

        The holder keeps the lease until ``now + grace_s`` (a second disconnect does not push an
        existing grace deadline later). A waiter leaves the queue unanswered: there is no session
        left to answer.
        """
        _check_grace(grace_s)
        if self._holder == run_id:
            if self._grace_deadline is None:
                self._grace_deadline = now + grace_s
        else:
            self._queue.pop(run_id, None)
        return []

    def reconnected(self, run_id: str) -> list[MutexEffect]:
        """A session of ``run_id`` opened; no effects. A holder in grace keeps the lease."""
        if self._holder == run_id:
            self._grace_deadline = None
        return []

    def expire(self, now: float) -> list[MutexEffect]:
        """The timer fired: act on every deadline at or before ``now``, earliest first.

        Effects, in deadline order: ``WaitTimedOut`` for each waiter whose timeout passed;
        ``Lost`` (reason ``"expired"``) for a holder whose grace passed, followed by ``Granted``
        (new fence) to the next waiter still in line; ``HolderChanged`` last if the holder
        changed. Going in deadline order matters when the timer fires late: a waiter whose
        timeout falls after the holder's grace deadline is granted, not timed out.
        Afterwards :meth:`next_deadline` is ``None`` or later than ``now``.
        """
        before = self._holder
        effects: list[MutexEffect] = []
        while True:
            grace = self._grace_deadline
            timeout = self._earliest_timeout()
            # On a tie the waiter goes first: a request whose timeout has passed is not granted.
            if timeout is not None and timeout[0] <= now and (grace is None or timeout[0] <= grace):
                waiter = self._queue.pop(timeout[1])
                effects.append(WaitTimedOut(timeout[1], waiter.request_id))
            elif grace is not None and grace <= now and self._holder is not None:
                effects.append(Lost(self._holder, self._fence, "expired"))
                self._vacate()
                self._grant_next(effects)
            else:
                break
        return self._changed_since(before, effects)

    def _earliest_timeout(self) -> tuple[float, str] | None:
        """The earliest waiter deadline and its run; the first in line wins a tie."""
        earliest: tuple[float, str] | None = None
        for run_id, waiter in self._queue.items():
            if waiter.deadline is not None and (earliest is None or waiter.deadline < earliest[0]):
                earliest = (waiter.deadline, run_id)
        return earliest

    def _grant(self, run_id: str, request_id: int) -> Granted:
        self._holder = run_id
        self._fence += 1
        self._grace_deadline = None
        return Granted(run_id, request_id, self._fence)

    def _vacate(self) -> None:
        self._holder = None
        self._grace_deadline = None

    def _grant_next(self, effects: list[MutexEffect]) -> None:
        if self._queue:
            run_id = next(iter(self._queue))
            waiter = self._queue.pop(run_id)
            effects.append(self._grant(run_id, waiter.request_id))

    def _changed_since(self, before: str | None, effects: list[MutexEffect]) -> list[MutexEffect]:
        # Comparing holders is enough: a new fence always comes with a new holder, because the
        # holder is never in the queue and only the queue is granted after a vacate.
        if self._holder != before:
            effects.append(HolderChanged(self._holder, self._fence))
        return effects


def _check_grace(grace_s: float) -> float:
    if not grace_s >= 0:  # written so that NaN is refused too
        raise ValueError(f"grace_s must be >= 0, got {grace_s}")
    return grace_s
