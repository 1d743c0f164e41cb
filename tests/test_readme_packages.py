"""The README warns about the top-level packages pierhead installs, and names all of them."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_names_every_installed_package_and_says_to_install_apart() -> None:
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"][
        "targets"
    ]["wheel"]["packages"]
    quick_start = (ROOT / "README.md").read_text().split("## Quick start", 1)[1].split("\n## ")[0]
    warning = " ".join(quick_start.split())  # lines joined: the words, wherever they wrap
    match = re.search(r"installs \w+ top-level Python packages: (.*?)\. ", warning)
    assert match is not None, "the README does not list the top-level packages"
    assert sorted(re.findall(r"`(\w+)`", match.group(1))) == sorted(packages)
    assert "environment of its own" in warning
    assert "PyPI" in warning
    assert "`schema`" in warning.split("PyPI", 1)[1]  # the clash it names
