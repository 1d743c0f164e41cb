"""Vendor the dashboard's front-end libraries at the versions pinned in the lock.

    python scripts/vendor_frontend.py            # fetch, verify and write vendor/
    python scripts/vendor_frontend.py --check    # verify the committed files, offline
    python scripts/vendor_frontend.py --relock   # after changing a version: record new sums

Each library is fetched with the ordinary npm client (``npm pack NAME@VERSION``, so the registry
and any proxy are npm's own configuration), its tarball checked against the sha256 in the lock,
and exactly the files the lock names are copied out of it, with the library's licence beside
them. A file may carry transforms, exact text replacements applied once each (the only one in
use points bare ``"preact"`` imports at the vendored file, so the page needs no import map and
no inline script). The lock also holds the sha256 of every written file, so ``--check`` proves
without a network that ``vendor/`` is exactly what the pinned tarballs give.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parent.parent
LOCK: Final = ROOT / "scripts" / "vendor_frontend.lock.json"
VENDOR: Final = ROOT / "broker" / "_dashboard" / "static" / "vendor"


class VendorError(Exception):
    """The lock, a tarball or the vendored files are not what they must be."""


@dataclass(frozen=True)
class Transform:
    replace: str
    with_: str


@dataclass(frozen=True)
class VendoredFile:
    source: str
    """The member's path inside the npm tarball."""
    target: str
    """Its path under vendor/."""
    sha256: str
    transforms: tuple[Transform, ...]


@dataclass(frozen=True)
class Library:
    name: str
    version: str
    tarball_sha256: str
    files: tuple[VendoredFile, ...]


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_lock(path: Path = LOCK) -> list[Library]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    return [
        Library(
            name=library["name"],
            version=library["version"],
            tarball_sha256=library["tarball_sha256"],
            files=tuple(
                VendoredFile(
                    source=item["source"],
                    target=item["target"],
                    sha256=item["sha256"],
                    transforms=tuple(
                        Transform(replace=step["replace"], with_=step["with"])
                        for step in item.get("transforms", [])
                    ),
                )
                for item in library["files"]
            ),
        )
        for library in raw["libraries"]
    ]


def write_lock(libraries: list[Library], path: Path = LOCK) -> None:
    def file_entry(item: VendoredFile) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "source": item.source,
            "target": item.target,
            "sha256": item.sha256,
        }
        if item.transforms:
            entry["transforms"] = [
                {"replace": step.replace, "with": step.with_} for step in item.transforms
            ]
        return entry

    document = {
        "libraries": [
            {
                "name": library.name,
                "version": library.version,
                "tarball_sha256": library.tarball_sha256,
                "files": [file_entry(item) for item in library.files],
            }
            for library in libraries
        ]
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def transformed(item: VendoredFile, data: bytes) -> bytes:
    """``data`` with the file's transforms applied; each must match exactly once, so a new
    upstream version that moves the text fails here instead of shipping unchanged."""
    text = data.decode("utf-8")
    for step in item.transforms:
        found = text.count(step.replace)
        if found != 1:
            raise VendorError(
                f"{item.source}: transform expects {step.replace!r} once, found it {found} times"
            )
        text = text.replace(step.replace, step.with_)
    return text.encode("utf-8")


def npm_pack(library: Library, into: Path) -> bytes:
    """The library's published tarball, fetched by the npm client."""
    npm = shutil.which("npm")
    if npm is None:
        raise VendorError("npm is not on PATH: install Node.js's npm to vendor the front end")
    spec = f"{library.name}@{library.version}"
    result = subprocess.run(
        [npm, "pack", spec, "--json", "--ignore-scripts", "--pack-destination", str(into)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise VendorError(f"npm pack {spec} failed: {result.stderr.strip()}")
    (packed,) = json.loads(result.stdout)
    filename: str = packed["filename"]
    return (into / filename).read_bytes()


def extract(library: Library, tarball: bytes, *, relock: bool) -> tuple[Library, dict[str, bytes]]:
    """The vendored files of ``library`` from its tarball, keyed by target, and the library as
    the lock must record it (new sums when ``relock``, else checked against the old)."""
    actual = sha256_of(tarball)
    if not relock and actual != library.tarball_sha256:
        raise VendorError(
            f"{library.name}@{library.version}: tarball sha256 {actual}, "
            f"lock says {library.tarball_sha256}"
        )
    written: dict[str, bytes] = {}
    files: list[VendoredFile] = []
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        for item in library.files:
            member = archive.extractfile(item.source)
            if member is None:
                raise VendorError(f"{library.name}: {item.source} is not a file in the tarball")
            data = transformed(item, member.read())
            digest = sha256_of(data)
            if not relock and digest != item.sha256:
                raise VendorError(f"{item.target}: sha256 {digest}, lock says {item.sha256}")
            written[item.target] = data
            files.append(
                VendoredFile(item.source, item.target, sha256=digest, transforms=item.transforms)
            )
    locked = Library(library.name, library.version, tarball_sha256=actual, files=tuple(files))
    return locked, written


def vendor(*, relock: bool) -> None:
    libraries = read_lock()
    everything: dict[str, bytes] = {}
    locked: list[Library] = []
    with tempfile.TemporaryDirectory(prefix="pierhead-vendor-") as scratch:
        for library in libraries:
            entry, written = extract(library, npm_pack(library, Path(scratch)), relock=relock)
            locked.append(entry)
            everything.update(written)
    if VENDOR.exists():
        shutil.rmtree(VENDOR)
    for target, data in everything.items():
        path = VENDOR / target
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    if relock:
        write_lock(locked)
    check()


def check(lock: Path = LOCK, vendored: Path = VENDOR) -> None:
    """Every vendored file has its locked sha256, and ``vendored`` holds nothing else."""
    expected = {item.target: item.sha256 for library in read_lock(lock) for item in library.files}
    present = {
        path.relative_to(vendored).as_posix() for path in vendored.rglob("*") if path.is_file()
    }
    problems = [f"missing: {target}" for target in sorted(expected.keys() - present)]
    problems += [f"not in the lock: {target}" for target in sorted(present - expected.keys())]
    for target in sorted(expected.keys() & present):
        digest = sha256_of((vendored / target).read_bytes())
        if digest != expected[target]:
            problems.append(f"changed: {target} (sha256 {digest}, lock {expected[target]})")
    if problems:
        raise VendorError("vendored files differ from the lock:\n  " + "\n  ".join(problems))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Vendor the front-end libraries of the lock.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="verify vendor/ offline")
    mode.add_argument("--relock", action="store_true", help="record the sums of the versions")
    arguments = parser.parse_args(argv)
    try:
        if arguments.check:
            check()
        else:
            vendor(relock=arguments.relock)
    except VendorError as exc:
        sys.stderr.write(f"vendor_frontend: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
