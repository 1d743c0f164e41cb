"""The shared test support: test modules import helpers from it, never from one another, and
its ``until`` fails a test at its bound and returns as soon as the condition holds."""

from __future__ import annotations

import ast
import asyncio

import pytest

from tests.support import ROOT, until


def imported_modules(tree: ast.Module) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            names += [f"{'.' * node.level}{node.module}"]
    return names


def test_no_test_module_imports_another() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        for module in imported_modules(ast.parse(path.read_text(encoding="utf-8")))
        if module.rpartition(".")[2].startswith("test_")
    ]
    assert offenders == []


@pytest.mark.asyncio
async def test_until_fails_at_its_bound_saying_what_it_waited_for() -> None:
    with pytest.raises(AssertionError, match="waiting for the moon"):
        await until(lambda: False, "the moon", timeout=0.05)
    with pytest.raises(AssertionError, match="waiting for 3 frames"):
        await until(lambda: False, lambda: f"{1 + 2} frames", timeout=0.05)


@pytest.mark.asyncio
async def test_until_wakes_on_a_change_and_lets_a_condition_fail_sooner() -> None:
    changed = asyncio.Event()
    ready: list[int] = []

    async def arrive() -> None:
        ready.append(1)
        changed.set()

    arriving = asyncio.create_task(arrive())
    await until(lambda: bool(ready), "an arrival", changed=changed)
    await arriving

    def refuses() -> bool:
        raise AssertionError("closed before the reply")

    with pytest.raises(AssertionError, match="closed before the reply"):
        await until(refuses, "a reply")
