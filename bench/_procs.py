"""Child processes for the broker benchmarks: the broker, the bare relay and the clients.

Every participant runs in its own process and talks to the benchmark over pipes: commands go
to its stdin one per line, and it answers on stdout with one JSON object per line, each with a
``kind`` (``ready``, ``warmed``, ``result`` or ``error``). Every wait has a timeout, and a
:class:`Fleet` stops every process it started when it is left, whatever happened inside.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final

ROOT: Final = Path(__file__).resolve().parent.parent
"""The project directory, from which ``python -m bench._peers`` finds the packages."""

STDERR_LINES: Final = 200
"""Lines of a child's stderr kept to explain a failure."""

STOP_TIMEOUT_S: Final = 5.0
"""How long a child has to exit after SIGTERM before it is killed."""

_WARNING_LEVELS: Final = frozenset({"warning", "error", "critical"})
_EXPECTED_WARNINGS: Final = frozenset({"auth_off"})
"""Warnings every broker started without --auth gives; not a sign of trouble in a run."""

CAPACITY_OPTIONS: Final = ("--max-events-per-s", "1e9")
"""Options of every benchmark broker: the per-session rate limit (100,000 events/s by default)
is lifted, since a worker faster than that is refused, and the benchmarks measure capacity."""

_CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _process_cpu_clock(pid: int) -> int:
    """The clock id of process ``pid``'s CPU time (all its threads), as Linux numbers them:
    ``MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED)``."""
    return ((~pid) << 3) | 2


class ChildError(RuntimeError):
    """A child failed, exited early, said something unexpected or took too long."""


def _pierhead_command() -> list[str]:
    """The ``pierhead`` console script of the running interpreter's environment."""
    script = Path(sys.executable).with_name("pierhead")
    if script.exists():
        return [str(script)]
    # An environment without the console script (run from a source tree) still has the code.
    return [sys.executable, "-c", "import sys; from pierhead._cli import main; sys.exit(main())"]


class Child:
    """One process with line-based pipes; its stdout and stderr are read by daemon threads."""

    def __init__(self, name: str, argv: Sequence[str]) -> None:
        self.name = name
        self._stdout: queue.Queue[str | None] = queue.Queue()
        self._stderr: deque[str] = deque(maxlen=STDERR_LINES)
        self._stderr_seen = threading.Condition()
        self._stderr_closed = False
        self.log_warnings = 0
        """Lines of JSON logs on stderr at warning level or above (the broker's)."""
        self._process = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
        assert self._process.stdout is not None
        assert self._process.stderr is not None
        self._threads = [
            threading.Thread(target=self._pump_stdout, args=(self._process.stdout,), daemon=True),
            threading.Thread(target=self._pump_stderr, args=(self._process.stderr,), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @property
    def pid(self) -> int:
        return self._process.pid

    def cpu_seconds(self) -> float | None:
        """User plus system CPU time the process has used so far, all its threads' (those
        gone included); None where it cannot be read.

        Read from the process's CPU clock, to the nanosecond, where the system has one for
        another process (Linux): ``/proc/PID/stat`` counts in clock ticks (10 ms), and the
        difference of two such readings over a repeat in which a process runs a few tenths of
        a second was off by several percent either way.
        """
        with contextlib.suppress(OSError, AttributeError):
            return time.clock_gettime(_process_cpu_clock(self.pid))
        try:
            text = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return None
        # Fields after the parenthesised command name, which may itself hold spaces.
        fields = text.rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS

    def run_queue_waits(self) -> dict[int, int] | None:
        """Nanoseconds each thread has spent runnable but waiting for a CPU; None if unknown.

        Time spent waiting for a CPU is time other processes took: it tells a contended
        machine from a process that waits on I/O or on its peers.
        """
        waits = {}
        try:
            for task in Path(f"/proc/{self.pid}/task").iterdir():
                with contextlib.suppress(OSError, ValueError, IndexError):  # thread gone
                    waits[int(task.name)] = int((task / "schedstat").read_text().split()[1])
        except OSError:
            return None
        return waits or None

    def _pump_stdout(self, stream: IO[str]) -> None:
        for line in stream:
            self._stdout.put(line)
        self._stdout.put(None)

    def _pump_stderr(self, stream: IO[str]) -> None:
        for line in stream:
            level, event = _json_field(line, "level"), _json_field(line, "event")
            if level in _WARNING_LEVELS and event not in _EXPECTED_WARNINGS:
                self.log_warnings += 1
            with self._stderr_seen:
                self._stderr.append(line.rstrip("\n"))
                self._stderr_seen.notify_all()
        with self._stderr_seen:
            self._stderr_closed = True
            self._stderr_seen.notify_all()

    def stderr_tail(self, lines: int = 20) -> str:
        with self._stderr_seen:
            return "\n".join(list(self._stderr)[-lines:])

    def _failure(self, message: str) -> ChildError:
        tail = self.stderr_tail()
        code = self._process.poll()
        status = "running" if code is None else f"exit code {code}"
        detail = f"\n--- {self.name} stderr (last lines) ---\n{tail}" if tail else ""
        return ChildError(f"{self.name} ({status}): {message}{detail}")

    def send(self, command: str) -> None:
        """Send one command line to the child's stdin."""
        stdin = self._process.stdin
        assert stdin is not None
        try:
            stdin.write(command + "\n")
            stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise self._failure(f"cannot send {command!r}: {exc}") from None

    def expect(self, kind: str, timeout: float) -> dict[str, Any]:
        """The child's next message, which must be of ``kind``, within ``timeout`` seconds."""
        try:
            line = self._stdout.get(timeout=timeout)
        except queue.Empty:
            raise self._failure(f"no {kind!r} within {timeout:g} s") from None
        if line is None:
            self._stdout.put(None)  # stays closed for later calls
            self._process.wait(timeout=STOP_TIMEOUT_S)
            raise self._failure(f"exited before {kind!r}")
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            raise self._failure(f"wrote {line.strip()!r}, not a JSON message") from None
        if not isinstance(message, dict):
            raise self._failure(f"wrote {line.strip()!r}, not a JSON object")
        if message.get("kind") == "error":
            raise self._failure(f"failed: {message.get('message')}")
        if message.get("kind") != kind:
            raise self._failure(f"sent {message.get('kind')!r} where {kind!r} was expected")
        return message

    def wait_stderr(self, match: Callable[[str], bool], timeout: float) -> str:
        """The first stderr line (among those kept) for which ``match`` is true."""
        deadline = time.monotonic() + timeout
        with self._stderr_seen:
            while True:
                for line in self._stderr:
                    if match(line):
                        return line
                remaining = deadline - time.monotonic()
                if self._stderr_closed or remaining <= 0:
                    break
                self._stderr_seen.wait(remaining)
        raise self._failure(f"no matching log line within {timeout:g} s")

    def terminate(self) -> None:
        """Ask the child to stop (SIGTERM); :meth:`reap` waits for it."""
        if self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(signal.SIGTERM)

    def reap(self) -> None:
        """Wait for the child to exit (killing it if it does not), then close its pipes."""
        try:
            self._process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        for thread in self._threads:
            thread.join(timeout=STOP_TIMEOUT_S)
        for stream in (self._process.stdin, self._process.stdout, self._process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):  # a broken stdin pipe fails its flush
                    stream.close()

    def stop(self) -> None:
        self.terminate()
        self.reap()


def system_cpu_seconds() -> float | None:
    """CPU time used on the whole machine so far, summed over CPUs; None where unknown."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    # user nice system idle iowait irq softirq ...: everything but idle and iowait is work.
    user, nice, system, _idle, _iowait, irq, softirq = (int(value) for value in fields[1:8])
    return (user + nice + system + irq + softirq) / _CLOCK_TICKS


def run_queue_wait_s(before: dict[int, int] | None, after: dict[int, int] | None) -> float | None:
    """Seconds of waiting for a CPU between two :meth:`Child.run_queue_waits`, over threads."""
    if before is None or after is None:
        return None
    return sum(wait - before.get(tid, 0) for tid, wait in after.items()) / 1e9


def _json_field(line: str, key: str) -> str | None:
    """Field ``key`` of a JSON log line, if the line is one and the field is a string."""
    if not line.startswith("{"):
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    value = record.get(key) if isinstance(record, dict) else None
    return value if isinstance(value, str) else None


class Fleet:
    """The processes of one measurement; leaving the ``with`` block stops all of them."""

    def __init__(self) -> None:
        self.children: list[Child] = []

    def __enter__(self) -> Fleet:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        children, self.children = self.children, []
        # Signal everyone first, then wait: the processes shut down side by side.
        for child in children:
            child.terminate()
        for child in reversed(children):
            child.reap()

    def spawn(self, name: str, argv: Sequence[str]) -> Child:
        child = Child(name, argv)
        self.children.append(child)
        return child

    def peer(self, name: str, role: str, params: dict[str, Any]) -> Child:
        """A client process: ``python -m bench._peers ROLE PARAMS``."""
        argv = [sys.executable, "-m", "bench._peers", role, json.dumps(params)]
        return self.spawn(name, argv)

    def broker(
        self, data_dir: Path, *, timeout: float, options: Sequence[str] = ()
    ) -> tuple[Child, int]:
        """``pierhead serve`` on a free loopback port, with further ``options`` (such as
        ``--auth token``); returns the process and its port."""
        argv = [
            *_pierhead_command(),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--data",
            str(data_dir),
            "--log-format",
            "json",
            "--drain-timeout",
            "2",
            *CAPACITY_OPTIONS,
            *options,
        ]
        child = self.spawn("broker", argv)
        line = child.wait_stderr(lambda text: _json_field(text, "event") == "listening", timeout)
        port = json.loads(line)["port"]
        if not isinstance(port, int):
            raise ChildError(f"broker: no port in {line!r}")
        return child, port

    def relay(self, *, timeout: float) -> tuple[Child, int]:
        """The bare websockets relay (``python -m bench._relay``); returns it and its port."""
        child = self.spawn("relay", [sys.executable, "-m", "bench._relay"])
        port = child.expect("listening", timeout)["port"]
        if not isinstance(port, int):
            raise ChildError(f"relay: no port in its listening message: {port!r}")
        return child, port
