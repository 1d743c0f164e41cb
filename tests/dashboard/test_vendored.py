"""The vendored front-end libraries are exactly what the pinned npm tarballs give (the lock's
sums), checked offline, so a hand edit or a half-done version bump cannot ship."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.support import ROOT

SCRIPT = ROOT / "scripts" / "vendor_frontend.py"


def vendoring_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vendor_frontend", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Its dataclasses look their module up by name while they are made.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_committed_vendored_files_match_the_lock() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_every_library_ships_its_licence() -> None:
    script = vendoring_script()
    for library in script.read_lock():
        targets = {item.target for item in library.files}
        assert any(target.endswith("/LICENSE") for target in targets), library.name


def test_the_check_names_a_changed_a_missing_and_an_unlocked_file(tmp_path: Path) -> None:
    script = vendoring_script()
    vendored = tmp_path / "vendor"
    shutil.copytree(script.VENDOR, vendored)
    (vendored / "htm" / "htm.module.js").write_text("export default 1;\n", encoding="utf-8")
    (vendored / "uplot" / "LICENSE").unlink()
    (vendored / "preact" / "extra.js").write_text("", encoding="utf-8")

    with pytest.raises(script.VendorError) as failure:
        script.check(script.LOCK, vendored)

    message = str(failure.value)
    assert "changed: htm/htm.module.js" in message
    assert "missing: uplot/LICENSE" in message
    assert "not in the lock: preact/extra.js" in message


def test_a_transform_that_no_longer_matches_fails_instead_of_shipping_unchanged() -> None:
    script = vendoring_script()
    item = script.VendoredFile(
        source="package/hooks/dist/hooks.mjs",
        target="preact/hooks.mjs",
        sha256="",
        transforms=(script.Transform(replace='from"preact"', with_='from"./preact.mjs"'),),
    )
    with pytest.raises(script.VendorError, match="found it 0 times"):
        script.transformed(item, b'import{x}from"./other.mjs";')
