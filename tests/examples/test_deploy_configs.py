"""The load balancer configurations in examples/deploy/ are the ones docs/operations.md shows,
and scripts/try_load_balancer.py runs them with only the addresses changed.

Running the balancers themselves is ``nox -s loadbalancer`` (it needs HAProxy and nginx)."""

from __future__ import annotations

import importlib.util
import re
import sys
from types import ModuleType

import pytest

from tests.support import ROOT

DEPLOY = ROOT / "examples" / "deploy"
CONFIGS = ["haproxy.cfg", "nginx.conf"]


def fenced_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```[a-z]*\n(.*?)^```$", markdown, flags=re.DOTALL | re.MULTILINE)


@pytest.fixture(scope="module")
def script() -> ModuleType:
    path = ROOT / "scripts" / "try_load_balancer.py"
    spec = importlib.util.spec_from_file_location("try_load_balancer", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", CONFIGS)
def test_operations_doc_shows_the_tried_file_verbatim(name: str) -> None:
    config = (DEPLOY / name).read_text()
    doc = (ROOT / "docs" / "operations.md").read_text()
    assert f"`examples/deploy/{name}`" in doc
    assert config in fenced_blocks(doc), f"docs/operations.md differs from examples/deploy/{name}"


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("ports", [[40001, 40002], [40001, 40002, 40003, 40004]])
def test_the_script_changes_only_the_addresses(
    script: ModuleType, name: str, ports: list[int]
) -> None:
    template = (DEPLOY / name).read_text()
    rendered: str = script.render(template, 40000, ports)
    assert "127.0.0.1:8765" not in rendered
    assert "127.0.0.1:40000" in rendered
    addresses = re.findall(r"127\.0\.0\.1:(\d+)", rendered)
    assert addresses == ["40000", *map(str, ports)] or addresses == [
        *map(str, ports),
        "40000",
    ]
    # Everything else is the file as shipped, line for line.
    kept = [line for line in rendered.splitlines() if "127.0.0.1:" not in line]
    shipped = [line for line in template.splitlines() if "127.0.0.1:" not in line]
    assert kept == shipped
