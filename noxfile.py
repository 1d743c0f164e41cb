"""Developer tasks: ``nox`` runs tests, lint and typecheck; ``nox -s bench`` runs benchmarks."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

LINT_TOOLS = ["ruff>=0.6"]
SOURCES = ["schema", "broker", "sdk", "tests", "bench", "examples", "noxfile.py"]


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite against an installed copy of the package."""
    session.install(".[test]")
    session.run("pytest", *session.posargs)


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


@nox.session
def chaos(session: nox.Session) -> None:
    """The long chaos scenario: ``nox -s chaos -- --runs 5``; the short one is in ``tests``."""
    session.install(".[test]")
    session.run("python", "-m", "tests.chaos.run_chaos", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks; each prints its figures and its ratio to a baseline measured in the same run."""
    session.install(".", "matplotlib")
    session.run("python", "-m", "bench", *session.posargs)
