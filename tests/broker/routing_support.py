"""What the routing core's tests share: recording peers, the writer played by :func:`commit`,
a router, a started worker, and time passed in."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import schema
from broker._effects import (
    Effect,
    Now,
    Send,
    Write,
)
from broker._routing import Router, RoutingLimits, Run
from broker._store import Commit
from schema import BrokerFrame

GRACE = 30.0
T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)

E = TypeVar("E")


@dataclass(eq=False)
class FakePeer:
    """Any session, as the router sees it; it only records, the effects say what to do."""

    name: str
    sent: list[BrokerFrame] = field(default_factory=list)

    def send(self, frame: BrokerFrame) -> None:
        self.sent.append(frame)

    def abort(self, code: int, reason: str) -> None:
        raise AssertionError("the router never closes a peer itself")

    @property
    def queued_bytes(self) -> int:
        return 0

    def send_ack(self, seq: int) -> None:
        raise AssertionError("the router never acknowledges itself")

    def wake(self) -> None:
        raise AssertionError("the router never wakes a watcher itself")


def at(seconds: float) -> Now:
    return Now(seconds, T0 + datetime.timedelta(seconds=seconds))


def of(kind: type[E], effects: Sequence[Effect]) -> list[E]:
    return [effect for effect in effects if isinstance(effect, kind)]


def frames(peer: FakePeer, effects: Sequence[Effect]) -> list[BrokerFrame]:
    """The frames the effects send to ``peer``, durable or not."""
    found = [effect.frame for effect in of(Send, effects) if effect.peer is peer]
    for write in of(Write, effects):
        found += frames(peer, write.then)
    return found


def commit(router: Router, effects: Sequence[Effect]) -> list[Effect]:
    """What the writer does with the ``Write`` effects: one commit, then the core's answer."""
    writes = of(Write, effects)
    events = [event for write in writes for event in write.events]
    states: dict[tuple[str, int], schema.WorkspaceState] = {}
    run_seqs: dict[tuple[str, int, str], int] = {}
    for write in writes:
        states.update(write.states)
        for key, seq in write.run_seqs.items():
            run_seqs[key] = max(seq, run_seqs.get(key, 0))
    deleted = [key for write in writes for key in write.deleted]
    after = router.committed(
        Commit(events=events, states=states, run_seqs=run_seqs, deleted=deleted)
    )
    # What waited for durability happens now, as the adapter would do it.
    return after + [then for write in writes for then in write.then]


def router() -> Router:
    return Router(RoutingLimits(mutex_grace_s=GRACE), node="a")


def start_worker(
    core: Router,
    name: str,
    run_id: str,
    *,
    now: Now | None = None,
    actions: Sequence[str] = (),
    peer: FakePeer | None = None,
) -> tuple[FakePeer, Run, list[Effect]]:
    peer = peer or FakePeer(f"{name}/{run_id}")
    now = now or at(0)
    workspace, created = core.workspace(name, now)
    specs = [schema.ActionSpec(name=action) for action in actions]
    run, effects = core.worker_started(
        peer, workspace, run_id, client="test", actions=specs, details=None, now=now
    )
    commit(core, [*created, *effects])
    return peer, run, [*created, *effects]


def events(*messages: str) -> list[schema.Event]:
    return [
        schema.Event(payload=schema.LogRecord(message=message), create_time=T0)
        for message in messages
    ]


def published(effects: Sequence[Effect]) -> list[tuple[int | None, int]]:
    """(seq, offset) of the events the effects write."""
    return [(event.seq, event.offset) for write in of(Write, effects) for event in write.events]


# Dedupe by (workspace, run, seq) -----------------------------------------------------------


def call(
    run_id: str = "r", action: str = "restart", request_id: int = 5, workspace: str = "ws"
) -> schema.ActionCall:
    args = {"n": 1}
    return schema.ActionCall(
        id=request_id, workspace=workspace, run_id=run_id, action=action, args=args, timeout_s=2.0
    )


def acquire(request_id: int, *, wait: bool = False) -> schema.MutexAcquire:
    return schema.MutexAcquire(id=request_id, wait=wait)
