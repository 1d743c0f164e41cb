"""Token authentication: what it costs durable ingest, and what it costs opening a session.

One report, ``auth-cost``. Two brokers run side by side, each ``pierhead serve`` on a
temporary store: one with ``--auth none``, one with ``--auth token`` and a token made for the
run. The same client processes (:mod:`bench._peers`) drive both in interleaved repeats, and
present the token only to the broker that asks for one:

ingest
    One worker publishes batches of :data:`bench.broker.BATCH` ``LogRecord`` events with at
    most :data:`bench.broker.WINDOW` batches unacknowledged, as in ``broker-ingest``; events
    per second from the first publish to the last ``ack``. The token is checked once, at
    ``hello``: this is the cost a long session pays.
sessions
    Watcher sessions opened one after another from :data:`CONCURRENCY` loops side by side:
    connect, ``hello``, ``welcome``, close; sessions per second. Each ``hello`` with a token
    costs a hash, a lookup and a write of the token's last use to ``tokens.db``: this is where
    authentication does its work.

The goal is on ingest: with token auth, at least :data:`INGEST_GOAL` of the rate without. The
sessions ratio is reported beside it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from broker._tokens import ROLES, SqliteTokenStore

from ._procs import Child, ChildError, Fleet, run_queue_wait_s
from ._report import Goal, Report
from ._stats import (
    MachineClock,
    Rates,
    Sample,
    load_average,
    machine_note,
    paired_ratio,
    rate_row,
)
from .broker import BASE_DEADLINE_S, BATCH, STARTUP_TIMEOUT_S, WINDOW, _workspace

Mode = Literal["none", "token"]
MODES: Final[tuple[Mode, ...]] = ("none", "token")

INGEST_EVENTS: Final = 200_000
INGEST_WARM: Final = 5_000
SESSIONS: Final = 2_000
SESSIONS_WARM: Final = 100
CONCURRENCY: Final = 4
"""Loops opening sessions side by side in the client process."""
REPEATS: Final = 5
QUICK_INGEST_EVENTS: Final = 5_000
QUICK_INGEST_WARM: Final = 500
QUICK_SESSIONS: Final = 200
QUICK_SESSIONS_WARM: Final = 20
QUICK_REPEATS: Final = 1

INGEST_GOAL: Final = 0.90
"""Durable ingest with ``--auth token``, as a fraction of the rate with ``--auth none``."""

INGEST_RATE_FLOOR: Final = 2_000
"""Events per second the deadlines allow for; far below any real figure."""
SESSION_RATE_FLOOR: Final = 20
"""Sessions per second the deadlines allow for."""


@dataclass(frozen=True, slots=True)
class AuthMeasurement:
    ingest: dict[Mode, Rates]
    """Events per second, per broker."""
    sessions: dict[Mode, Rates]
    """Sessions per second, per broker."""
    events: int
    """Events per ingest repeat, after the warm-up."""
    warm: int
    session_count: int
    """Sessions per repeat, after the warm-up."""
    sessions_warm: int
    concurrency: int
    repeats: int
    broker_warnings: int
    load_average: float | None
    """The machine's 1-minute load average when the measurement began."""

    @property
    def ingest_ratio(self) -> float:
        """Ingest with token auth over ingest without: see :func:`paired_ratio`."""
        return paired_ratio(self.ingest["token"], self.ingest["none"])

    @property
    def sessions_ratio(self) -> float:
        """Session rate with token auth over the rate without: see :func:`paired_ratio`."""
        return paired_ratio(self.sessions["token"], self.sessions["none"])


@dataclass(frozen=True, slots=True)
class _Broker:
    process: Child
    url: str
    token: str | None
    """What its clients present in ``hello``."""


def _made_token(data_dir: Path) -> str:
    """A token with every role over every workspace, in a broker's data directory."""
    store = SqliteTokenStore(data_dir)
    try:
        return store.create("bench", ROLES, "*")[1]
    finally:
        store.close()


@contextmanager
def _brokers() -> Iterator[dict[Mode, _Broker]]:
    """Both brokers on temporary stores; stopped, and the stores removed, on exit."""
    with ExitStack() as stack:
        plain = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pierhead-bench-")))
        guarded = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pierhead-bench-")))
        fleet = stack.enter_context(Fleet())
        secrets: dict[Mode, str | None] = {"none": None, "token": _made_token(guarded)}
        brokers: dict[Mode, _Broker] = {}
        for mode, data in zip(MODES, (plain, guarded), strict=True):
            process, port = fleet.broker(data, timeout=STARTUP_TIMEOUT_S, options=("--auth", mode))
            brokers[mode] = _Broker(process, f"ws://127.0.0.1:{port}", secrets[mode])
        yield brokers


def _run_client(broker: _Broker, role: str, role_params: dict[str, Any], deadline: float) -> Sample:
    """One client process does its warm-up, then the timed part; it is gone on return."""
    timeout = deadline + 5.0
    params = {"target": "broker", "url": broker.url, "codec": "json", "deadline_s": deadline}
    params |= role_params
    if broker.token is not None:
        params["token"] = broker.token
    with Fleet() as fleet:
        child = fleet.peer(f"{role}-client", role, params)
        child.expect("ready", STARTUP_TIMEOUT_S)
        child.send("warm")
        child.expect("warmed", timeout)
        machine = MachineClock()
        server = broker.process
        server_cpu, server_waits = server.cpu_seconds(), server.run_queue_waits()
        child.send("go")
        result = child.expect("result", timeout)
        server_cpu_after, server_waits_after = server.cpu_seconds(), server.run_queue_waits()
    server_cpu_s = (
        None if server_cpu is None or server_cpu_after is None else server_cpu_after - server_cpu
    )
    client_cpu_s = float(result["cpu_s"])
    machine.stop(server_cpu_s, client_cpu_s)
    count_key = "events" if role == "publish" else "sessions"
    count = int(role_params[count_key])
    if int(result[count_key]) != count:
        raise ChildError(f"{role}: {result[count_key]} {count_key} done, {count} expected")
    elapsed_s = max(int(result["end_ns"]) - int(result["start_ns"]), 1) / 1e9
    window = max(machine.wall_s, 1e-9)
    server_wait = run_queue_wait_s(server_waits, server_waits_after)
    return Sample(
        rate=count / elapsed_s,
        server_load=None if server_cpu_s is None else server_cpu_s / window,
        server_wait=None if server_wait is None else server_wait / window,
        client_load=client_cpu_s / window,
        other_load=machine.other_load,
    )


def _ingest(broker: _Broker, mode: Mode, *, warm: int, events: int) -> Sample:
    params = {
        "warm": warm,
        "events": events,
        "workspace": _workspace(f"auth-{mode}"),
        "run_id": f"bench-auth-{mode}",
        "mode": "flood",
        "batch": BATCH,
        "window": WINDOW,
    }
    deadline = BASE_DEADLINE_S + (warm + events) / INGEST_RATE_FLOOR
    return _run_client(broker, "publish", params, deadline)


def _sessions(broker: _Broker, *, warm: int, sessions: int, concurrency: int) -> Sample:
    params = {"warm": warm, "sessions": sessions, "concurrency": concurrency}
    deadline = BASE_DEADLINE_S + (warm + sessions) / SESSION_RATE_FLOOR
    return _run_client(broker, "sessions", params, deadline)


def measure_auth(
    *,
    events: int = INGEST_EVENTS,
    warm: int = INGEST_WARM,
    sessions: int = SESSIONS,
    sessions_warm: int = SESSIONS_WARM,
    concurrency: int = CONCURRENCY,
    repeats: int = REPEATS,
) -> AuthMeasurement:
    """Ingest and session rates of both brokers, ``repeats`` interleaved rounds of each."""
    ingest: dict[Mode, list[Sample]] = {mode: [] for mode in MODES}
    opened: dict[Mode, list[Sample]] = {mode: [] for mode in MODES}
    load = load_average()
    with _brokers() as brokers:
        for repeat in range(repeats):
            # Alternate which goes first, so that neither always runs on a warmer machine.
            order = MODES if repeat % 2 == 0 else MODES[::-1]
            for mode in order:
                ingest[mode].append(_ingest(brokers[mode], mode, warm=warm, events=events))
            for mode in order:
                opened[mode].append(
                    _sessions(
                        brokers[mode],
                        warm=sessions_warm,
                        sessions=sessions,
                        concurrency=concurrency,
                    )
                )
        warnings = sum(broker.process.log_warnings for broker in brokers.values())
    return AuthMeasurement(
        ingest={
            mode: Rates(f"durable ingest, --auth {mode} (events/s)", tuple(ingest[mode]))
            for mode in MODES
        },
        sessions={
            mode: Rates(
                f"connect + hello + welcome, --auth {mode} (sessions/s)", tuple(opened[mode])
            )
            for mode in MODES
        },
        events=events,
        warm=warm,
        session_count=sessions,
        sessions_warm=sessions_warm,
        concurrency=concurrency,
        repeats=repeats,
        broker_warnings=warnings,
        load_average=load,
    )


def auth_report(result: AuthMeasurement) -> Report:
    notes = (
        "Two brokers side by side, `--auth none` and `--auth token`, each on its own temporary"
        " store (SQLite WAL, synchronous=full), driven by the same client processes; only the"
        " `--auth token` broker's clients present a token (in `hello`)",
        f"Ingest: one worker publishes batches of {BATCH} `LogRecord` events with at most"
        f" {WINDOW} batches unacknowledged; events per second until the last `ack`;"
        f" {result.events:,} events per repeat after {result.warm:,} warm-up events",
        f"Sessions: {result.concurrency} loops in one client process open watcher sessions one"
        " after another (connect, `hello`, `welcome`, close); sessions per second;"
        f" {result.session_count:,} per repeat after {result.sessions_warm:,} warm-up sessions."
        " With a token, each `hello` costs a hash, a lookup and a write of the token's last use",
        f"{result.repeats} repeats, alternating which broker goes first; each client is a"
        " separate process on 127.0.0.1. Ratios are the median over repeats of one broker's"
        " rate over the other's in the same repeat: ingest can drift over the repeats, alike"
        " for both, and pairing the repeats keeps that out of the ratio",
        "Load columns, in cores over the run, median (min..max) over repeats: server CPU = CPU"
        " time of the broker process; server CPU wait = time its threads were ready to run but"
        " had no CPU; client CPU = the client process; other CPU = everything else on the"
        " machine",
        machine_note(result.broker_warnings, result.load_average),
    )
    header = (
        "variant",
        "min per s",
        "median per s",
        "max per s",
        "vs --auth none (paired)",
        "server CPU",
        "server CPU wait",
        "client CPU",
        "other CPU",
    )
    rows = (
        rate_row(result.ingest["none"], 1.0),
        rate_row(result.ingest["token"], result.ingest_ratio),
        rate_row(result.sessions["none"], 1.0),
        rate_row(result.sessions["token"], result.sessions_ratio),
    )
    token, plain = result.ingest["token"].median_rate, result.ingest["none"].median_rate
    sessions_token = result.sessions["token"].median_rate
    sessions_plain = result.sessions["none"].median_rate
    goals = (
        Goal(
            description=f"durable ingest with --auth token >= {INGEST_GOAL:.2f}x --auth none",
            measured=f"{result.ingest_ratio:.2f}x ({token:,.0f} vs {plain:,.0f} events/s);"
            f" sessions {result.sessions_ratio:.2f}x"
            f" ({sessions_token:,.0f} vs {sessions_plain:,.0f} sessions/s)",
            passed=result.ingest_ratio >= INGEST_GOAL,
        ),
    )
    return Report(
        name="auth-cost",
        title="what token authentication costs ingest and session setup",
        notes=notes,
        header=header,
        rows=rows,
        goals=goals,
    )


def run(*, quick: bool) -> Report:
    if quick:
        return auth_report(
            measure_auth(
                events=QUICK_INGEST_EVENTS,
                warm=QUICK_INGEST_WARM,
                sessions=QUICK_SESSIONS,
                sessions_warm=QUICK_SESSIONS_WARM,
                repeats=QUICK_REPEATS,
            )
        )
    return auth_report(measure_auth())
