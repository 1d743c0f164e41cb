"""One run of a peer's stream: the peer's publisher and watchers, as :func:`bench.broker._stream`
runs pierhead's and the relay's, with the same steps and the same figures (a
:class:`bench.broker.StreamOutcome`).
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

from ._procs import Child, ChildError, Fleet, run_queue_wait_s
from ._stats import MachineClock
from .broker import (
    BATCH,
    STARTUP_TIMEOUT_S,
    TICK_S,
    WINDOW,
    StreamOutcome,
    watcher_processes,
)

BASE_DEADLINE_S: Final = 60.0
SLOWEST_RATE: Final = 200
"""Events (or deliveries) per second below which a peer's run is taken to be stuck."""


@dataclass(frozen=True, slots=True)
class PeerTarget:
    """A peer's server and the module of its client roles."""

    name: str
    process: Child
    clients: str
    """The ``python -m`` module of its ``publish`` and ``watch`` roles."""
    params: dict[str, Any]
    """What every client needs to reach the server."""


@dataclass(frozen=True, slots=True)
class PeerStream:
    mode: Literal["flood", "paced"]
    watchers: int
    warm: int
    events: int
    rate: int = 0
    frames: bool = False
    """Whole frames of :data:`~bench.broker.BATCH` events per message, where the peer has
    no batches of its own (Redis)."""


_names = itertools.count(1)


def stream_name(label: str) -> str:
    """A fresh project, channel or workspace name for each run, so no run sees another's."""
    return f"bench-{label}-{next(_names)}"


Stored = Callable[[str, int, float], int]
"""``stored(name, count, timeout)``: when the server had stored ``count`` events of ``name``."""


def _spawn(fleet: Fleet, target: PeerTarget, name: str, role: str, params: dict[str, Any]) -> Child:
    argv = [sys.executable, "-m", target.clients, role, json.dumps(params)]
    return fleet.spawn(name, argv)


def run_peer_stream(
    target: PeerTarget, stream: PeerStream, label: str, *, stored: Stored | None = None
) -> StreamOutcome:
    """Run one publisher and its watchers to the end; every client process is gone on return.

    With ``stored``, the measured span ends when the server has stored the last event (an
    ingest without acknowledgements), else when the last watcher has it.
    """
    name = stream_name(label)
    deadline = BASE_DEADLINE_S + (stream.warm + stream.events * max(1, stream.watchers)) / (
        SLOWEST_RATE
    )
    timeout = deadline + 5.0
    common = {
        **target.params,
        "project": name,
        "channel": name,
        "codec": "json",
        "deadline_s": deadline,
        "warm": stream.warm,
        "events": stream.events,
        "frames": stream.frames,
    }
    with Fleet() as fleet:
        # The publisher first: a neetbox server refuses watchers of a project no run has opened.
        publisher = _spawn(
            fleet,
            target,
            "publisher",
            "publish",
            {
                **common,
                "run_id": "bench-publisher",
                "mode": stream.mode,
                "batch": BATCH,
                "window": WINDOW,
                "rate": stream.rate,
                "tick_s": TICK_S,
                "watchers": stream.watchers,
            },
        )
        publisher.expect("ready", STARTUP_TIMEOUT_S)
        watchers = [
            _spawn(
                fleet,
                target,
                f"watchers-{index}",
                "watch",
                {
                    **common,
                    "connections": connections,
                    "payload_kind": "log" if stream.mode == "flood" else "scalar",
                    "latency": stream.mode == "paced",
                },
            )
            for index, connections in enumerate(watcher_processes(stream.watchers))
        ]
        for child in watchers:
            child.expect("ready", STARTUP_TIMEOUT_S)
        publisher.send("warm")
        publisher.expect("warmed", timeout)
        if stored is not None:
            stored(name, stream.warm, timeout)
        for child in watchers:
            child.expect("warmed", timeout)
        machine = MachineClock()
        server_cpu, server_waits = target.process.cpu_seconds(), target.process.run_queue_waits()
        publisher.send("go")
        stored_ns = 0 if stored is None else stored(name, stream.warm + stream.events, timeout)
        published = publisher.expect("result", timeout)
        received = [child.expect("result", timeout) for child in watchers]
        server_cpu_after = target.process.cpu_seconds()
        server_waits_after = target.process.run_queue_waits()
        publisher.send("close")
        publisher.reap()
    server_cpu_s = (
        None if server_cpu is None or server_cpu_after is None else server_cpu_after - server_cpu
    )
    client_cpu_s = sum(float(result["cpu_s"]) for result in (published, *received))
    machine.stop(server_cpu_s, client_cpu_s)
    delivered = sum(int(result["events"]) for result in received)
    if delivered != stream.events * stream.watchers:
        raise ChildError(
            f"{target.name}: {delivered} deliveries, expected"
            f" {stream.events} events x {stream.watchers} watchers"
        )
    return StreamOutcome(
        start_ns=int(published["start_ns"]),
        acked_ns=stored_ns or int(published["end_ns"]),
        last_ns=max((int(result["last_ns"]) for result in received), default=0),
        delivered=delivered,
        latencies_us=tuple(
            int(value) for result in received for value in result.get("latencies_us", ())
        ),
        server_cpu_s=server_cpu_s,
        server_wait_s=run_queue_wait_s(server_waits, server_waits_after),
        client_cpu_s=client_cpu_s,
        other_load=machine.other_load,
        window_s=machine.wall_s,
    )
