"""The README's Python examples run as written."""

from __future__ import annotations

import asyncio
import inspect
import re

from tests.support import ROOT

README = ROOT / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_python_examples_run() -> None:
    blocks = python_blocks()
    assert len(blocks) >= 2, "the README lost its examples"
    ran = 0
    for block in blocks:
        namespace: dict[str, object] = {}
        exec(compile(block, str(README), "exec"), namespace)
        for name, value in namespace.items():
            if name.startswith("test_") and inspect.iscoroutinefunction(value):
                asyncio.run(value())
                ran += 1
    assert ran >= 1, "the README's test example was not run"
