"""Connection scale: many idle SDK sessions against one ``pierhead serve``, then a SIGKILL.

``await run_scale(directory, ScaleConfig(layout))`` runs the broker as a child process on
``directory / "data"`` and the layout's sessions in client processes (``tests.scale.clients``).
It measures the broker's resident memory (VmRSS) before any session and with every session open
and idle, once it stopped moving, and reports the growth per session. Then it kills the broker
with SIGKILL, starts it again on the same data and port, and measures the time from the kill
until every SDK client has been welcomed again, as each client's own connection states report
it. Last, it checks that the sessions work: every worker's marker event after the restart is
acknowledged, and every watcher receives the marker of every run its pattern covers.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._procs import Child, Fleet
from broker.testing import BrokerProcess
from tests.scale.layout import ScaleLayout
from tests.scale.limits import SPARE_FILES, FileLimit, raise_open_files
from tests.scale.memory import Resident, settled_rss
from tests.support import free_port

_QUIET_WARNINGS = frozenset({"auth_off"})
"""The warning every broker without --auth gives: not a sign of trouble."""


@dataclass(frozen=True, slots=True)
class ScaleConfig:
    layout: ScaleLayout
    rss_target_kib: float = 40.0
    """Most broker memory per idle session."""
    reconnect_target_s: float = 20.0
    """Longest time from the SIGKILL until every session is back."""
    open_timeout_s: float = 120.0
    """Longest time for a client process to open its sessions."""
    reconnect_timeout_s: float = 120.0
    """Longest wait for the sessions to come back before the run gives up on them."""
    verify_timeout_s: float = 60.0


@dataclass(slots=True)
class ScaleReport:
    config: ScaleConfig
    files: FileLimit
    rss_before: Resident
    rss_open: Resident
    opened_s: float
    restart_s: float
    """From the SIGKILL until the new broker listens."""
    returns_s: list[float]
    """For each session that came back, the seconds from the SIGKILL until it was welcomed."""
    idle_drops: int
    rss_back: Resident | None = None
    verified: dict[str, int] = field(default_factory=dict)
    broker_warnings: dict[str, int] = field(default_factory=dict)

    @property
    def kib_per_session(self) -> float:
        return (self.rss_open.kib - self.rss_before.kib) / self.config.layout.sessions

    @property
    def back(self) -> int:
        return len(self.returns_s)

    @property
    def reconnect_s(self) -> float | None:
        """From the SIGKILL until every session is back; None if some never came back."""
        return max(self.returns_s) if self.back == self.config.layout.sessions else None

    def returned_by(self, share: float) -> float:
        """Seconds from the SIGKILL until ``share`` of the sessions that came back had."""
        ordered = sorted(self.returns_s)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    def problems(self) -> list[str]:
        config, sessions = self.config, self.config.layout.sessions
        found = []
        if self.kib_per_session > config.rss_target_kib:
            found.append(
                f"{self.kib_per_session:.1f} KiB of broker memory per idle session, "
                f"target {config.rss_target_kib:g}"
            )
        if self.reconnect_s is None:
            found.append(f"only {self.back} of {sessions} sessions came back")
        elif self.reconnect_s > config.reconnect_target_s:
            found.append(
                f"the sessions took {self.reconnect_s:.1f} s to come back, "
                f"target {config.reconnect_target_s:g}"
            )
        verified = self.verified
        if verified.get("acked") != verified.get("workers"):
            found.append(
                f"{verified.get('acked')} of {verified.get('workers')} workers' events acked"
            )
        if verified.get("complete") != verified.get("watchers"):
            found.append(
                f"{verified.get('complete')} of {verified.get('watchers')} watchers saw "
                "every event of their runs"
            )
        return found

    @property
    def passed(self) -> bool:
        return not self.problems()

    def summary(self) -> str:
        config, layout = self.config, self.config.layout
        verified = self.verified
        reconnect = self.reconnect_s
        after_listening = (
            f"{reconnect - self.restart_s:.2f} s after it listened" if reconnect else "never"
        )
        warnings = ", ".join(f"{name} x{n}" for name, n in self.broker_warnings.items())
        lines = [
            f"scale: {layout.sessions} sessions ({layout.workers} workers of distinct runs over "
            f"{layout.workspaces} workspaces, {layout.watchers} watchers on patterns of 10 "
            f"workspaces) in {layout.processes} client processes",
            f"  open files: limit {self.files.soft} (hard {self.files.hard}), the broker needs "
            f"{layout.sessions} + spare",
            f"  opened in {self.opened_s:.1f} s; {self.idle_drops} connections lost while idle",
            f"  broker RSS: {_mib(self.rss_before)} before any session, {_mib(self.rss_open)} "
            f"with all open -> {self.kib_per_session:.1f} KiB per session "
            f"(target <= {config.rss_target_kib:g} KiB): "
            + _verdict(self.kib_per_session <= config.rss_target_kib),
            f"  SIGKILL -> listening again on the same port and data: {self.restart_s:.2f} s",
            f"  SIGKILL -> all {layout.sessions} back: "
            + (f"{reconnect:.2f} s ({after_listening})" if reconnect else f"{self.back} back")
            + f" (target <= {config.reconnect_target_s:g} s): "
            + _verdict(reconnect is not None and reconnect <= config.reconnect_target_s),
            "  back after the SIGKILL: "
            + (
                f"half by {self.returned_by(0.5):.2f} s, 90% by {self.returned_by(0.9):.2f} s, "
                f"99% by {self.returned_by(0.99):.2f} s"
                if self.returns_s
                else "none"
            ),
            f"  after the restart: {verified.get('acked')}/{verified.get('workers')} workers' "
            f"events acked, {verified.get('complete')}/{verified.get('watchers')} watchers saw "
            f"every run they follow ({verified.get('watcher_events')} events delivered, "
            f"{verified.get('missed')} gaps), {verified.get('flaps')} connections lost again",
        ]
        if self.rss_back is not None:
            lines.append(f"  broker RSS with all back after the restart: {_mib(self.rss_back)}")
        lines.append(f"  broker warnings: {warnings or 'none'}")
        problems = self.problems()
        lines.append("PASS" if not problems else "FAIL: " + "; ".join(problems))
        return "\n".join(lines)


def _mib(resident: Resident) -> str:
    note = "" if resident.settled else " (still moving)"
    return f"{resident.kib / 1024:.1f} MiB{note}"


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


async def run_scale(
    directory: Path, config: ScaleConfig, say: Callable[[str], None] = lambda _: None
) -> ScaleReport:
    """Run it with the broker's store in ``directory / "data"``; raises on a broken step.

    ``say`` is told what the run does as it goes.
    """
    layout = config.layout
    # The broker inherits this process's limit; each client process raises its own.
    files = raise_open_files(layout.sessions)
    # A port of its own: the broker is restarted on it after a SIGKILL.
    options = (
        "--max-connections-per-address", str(layout.sessions + SPARE_FILES),
        "--port", str(free_port()),
    )  # fmt: skip
    data = directory / "data"
    broker = BrokerProcess(data, *options)
    first_logs = broker.logs
    try:
        await broker.start()
        before = await settled_rss(broker.process.pid)
        with Fleet() as fleet:
            clients = [
                fleet.spawn(
                    f"clients-{process}",
                    [
                        sys.executable,
                        "-m",
                        "tests.scale.clients",
                        "hold",
                        _params(broker, config, process),
                    ],
                )
                for process in range(layout.processes)
            ]
            say(f"opening {layout.sessions} sessions from {layout.processes} processes")
            started = time.monotonic()
            await _expect_all(clients, "ready", config.open_timeout_s + 30.0)
            opened_s = time.monotonic() - started
            say(f"all open in {opened_s:.1f} s; waiting for the broker's memory to settle")
            open_rss = await settled_rss(broker.process.pid)

            _send_all(clients, "restart")
            await _expect_all(clients, "armed", 30.0)
            say("SIGKILL and restart")
            killed = time.monotonic()
            broker.kill()
            await broker.wait()
            broker = BrokerProcess(data, *options)
            await broker.start()
            restart_s = time.monotonic() - killed
            backs = await _expect_all(clients, "back", config.reconnect_timeout_s + 30.0)
            report = ScaleReport(
                config=config,
                files=files,
                rss_before=before,
                rss_open=open_rss,
                opened_s=opened_s,
                restart_s=restart_s,
                returns_s=[at - killed for message in backs for at in message["returns"]],
                idle_drops=sum(message["idle_drops"] for message in backs),
            )
            say(f"{report.back} back; checking the sessions work")
            report.rss_back = await settled_rss(broker.process.pid)

            _send_all(clients, "verify")
            results = await _expect_all(clients, "verified", config.verify_timeout_s + 30.0)
            report.verified = _summed(results)
            _send_all(clients, "stop")
            await asyncio.gather(*(asyncio.to_thread(client.reap) for client in clients))
        report.broker_warnings = _warnings([*first_logs, *broker.logs])
        return report
    finally:
        await broker.close()


def _params(broker: BrokerProcess, config: ScaleConfig, process: int) -> str:
    layout = config.layout
    return json.dumps(
        {
            "url": broker.url,
            "sessions": layout.sessions,
            "processes": layout.processes,
            "workspaces": layout.workspaces,
            "watchers": layout.watchers,
            "process": process,
            "open_timeout_s": config.open_timeout_s,
            "reconnect_timeout_s": config.reconnect_timeout_s,
            "verify_timeout_s": config.verify_timeout_s,
            # Room for every step and for the waits between them (memory settling).
            "deadline_s": config.open_timeout_s
            + config.reconnect_timeout_s
            + config.verify_timeout_s
            + 300.0,
        }
    )


def _send_all(clients: Sequence[Child], command: str) -> None:
    for client in clients:
        client.send(command)


async def _expect_all(clients: Sequence[Child], kind: str, timeout: float) -> list[dict[str, Any]]:
    return list(
        await asyncio.gather(*(asyncio.to_thread(c.expect, kind, timeout) for c in clients))
    )


def _summed(messages: Sequence[dict[str, Any]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for message in messages:
        for key, value in message.items():
            if isinstance(value, int):
                totals[key] = totals.get(key, 0) + value
    return totals


def _warnings(logs: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Warnings and worse the broker logged, by event name."""
    counts: dict[str, int] = {}
    for record in logs:
        if record.get("level") in {"warning", "error", "critical"}:
            name = str(record.get("event"))
            if name not in _QUIET_WARNINGS:
                counts[name] = counts.get(name, 0) + 1
    return counts
