"""The packages' dependencies point one way: ``schema`` <- ``broker``, ``schema`` <- ``sdk``, and
``pierhead`` (the command) over both. Neither ``broker`` nor ``sdk`` imports or spawns the other,
so a watcher never loads the server and SQLite, and the broker runs without the SDK."""

from __future__ import annotations

import ast
import asyncio
import itertools
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import sdk
from broker.testing import running_broker

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "schema": {"broker", "sdk", "pierhead"},
    "broker": {"sdk", "pierhead"},
    "sdk": {"broker", "pierhead"},
}
"""Per package, the top-level packages its modules must not import (or start as a process)."""


def modules(package: str) -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted((ROOT / package).rglob("*.py")):
        yield path, ast.parse(path.read_text(), str(path))


def imported(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """Every absolute module an ``import`` or ``from ... import`` names, anywhere in the module
    (also inside functions, where a lazy import hides)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def spawned(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """Modules a command line in the source would run: ``-m NAME`` in a list, or ``import`` in
    a ``python -c`` string."""
    for node in ast.walk(tree):
        if isinstance(node, ast.List | ast.Tuple):
            texts = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
            for flag, name in itertools.pairwise(texts):
                if flag == "-m" and isinstance(name, str):
                    yield node.lineno, name
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            try:
                code = ast.parse(node.value)
            except SyntaxError:
                continue
            for _, name in imported(code):
                yield node.lineno, name


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_neither_imports_nor_spawns_the_packages_above_it(package: str) -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path, tree in modules(package)
        for line, name in [*imported(tree), *spawned(tree)]
        if name.split(".")[0] in FORBIDDEN[package]
    ]
    assert found == []


def test_the_checks_see_a_lazy_import_and_a_spawned_module() -> None:
    tree = ast.parse(
        "def f():\n    from broker._cli import main\n"
        "ARGV = ['python', '-m', 'sdk.tool']\n"
        "CODE = ['python', '-c', 'from pierhead._cli import main; main()']\n"
    )
    assert [name for _, name in imported(tree)] == ["broker._cli"]
    assert sorted(name for _, name in spawned(tree)) == ["pierhead._cli", "sdk.tool"]


@pytest.mark.asyncio
async def test_watch_and_the_operator_commands_load_no_broker_code(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    code = (
        "import json, sys\n"
        "from pierhead._cli import main\n"
        "url, report = sys.argv[1], sys.argv[2]\n"
        "codes = [main(['watch', '--once', '--url', url]), main(['ls', '--url', url])]\n"
        "import sdk.sync\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'broker')\n"
        "open(report, 'w').write(json.dumps({'codes': codes, 'broker': loaded}))\n"
    )
    async with running_broker() as broker, sdk.Worker(broker.url, "job-1", run_id="r") as job:
        await job.connected()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, broker.url, str(report),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert "job-1" in out.decode()  # both commands did their work against the broker
    assert json.loads(report.read_text()) == {"codes": [0, 0], "broker": []}
