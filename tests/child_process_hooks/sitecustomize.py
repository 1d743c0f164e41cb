"""What every Python child process of a test run does for the run's secret scan.

``tests.secret_scan`` puts this directory first on ``PYTHONPATH`` and names a directory in
``SECRET_SCAN_DIR``; Python then imports this module at the start of each child (``pierhead
serve`` however it is started, ``pierhead token create``, benchmark peers...). The child copies
all it writes to its stderr into ``stderr-*.log`` in that directory, after one JSON line saying
which process it is and during which test it started, and notes each token it creates in
``tokens-*.jsonl``. Without ``SECRET_SCAN_DIR`` (a child of a run without the plugin) it does
nothing. Standard output is not copied: that is where ``pierhead token create`` prints a
secret on purpose, and where commands print their results rather than their logs.
"""

from __future__ import annotations

import functools
import io
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import IO, TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from importlib.abc import Loader
    from importlib.machinery import ModuleSpec

    from _typeshed import ReadableBuffer

    from broker._tokens import Token, TokenStore

SCAN_DIR_VARIABLE: Final = "SECRET_SCAN_DIR"
"""The directory the children of a scanned run write to."""
TEST_VARIABLE: Final = "SECRET_SCAN_TEST"
"""The node id of the test running when a child started."""
STDERR_PREFIX: Final = "stderr-"
TOKENS_PREFIX: Final = "tokens-"
_TOKENS_MODULE: Final = "broker._tokens"


def recording(
    create: Callable[..., tuple[Token, str]], record: Callable[[str], None]
) -> Callable[..., tuple[Token, str]]:
    """``TokenStore.create`` that also hands every new secret to ``record``."""

    @functools.wraps(create)
    def create_and_record(store: TokenStore, *args: Any, **kwargs: Any) -> tuple[Token, str]:
        token, secret = create(store, *args, **kwargs)
        record(secret)
        return token, secret

    return create_and_record


def _new_file(directory: str, prefix: str, suffix: str) -> int:
    # Pids are reused over a long run: the time makes the name one process's alone.
    name = f"{prefix}{os.getpid()}-{time.time_ns()}{suffix}"
    return os.open(
        os.path.join(directory, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600
    )


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class _Tee(io.BufferedIOBase):
    """The bytes stderr writes, written to a file as well, at once: a SIGKILL loses none."""

    def __init__(self, stream: IO[bytes], copy: int) -> None:
        super().__init__()
        self._stream = stream
        self._copy = copy

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer, /) -> int:
        written = self._stream.write(data)
        _write_all(self._copy, bytes(memoryview(data)[:written]))
        return written

    def flush(self) -> None:
        self._stream.flush()

    def fileno(self) -> int:
        return self._stream.fileno()

    def isatty(self) -> bool:
        return self._stream.isatty()


def _copy_stderr(directory: str, test: str) -> None:
    stderr = sys.stderr
    if stderr is None or not isinstance(stderr, io.TextIOWrapper):
        return
    copy = _new_file(directory, STDERR_PREFIX, ".log")
    header = {"pid": os.getpid(), "argv": sys.orig_argv, "test": test}
    _write_all(copy, json.dumps(header).encode() + b"\n")
    sys.stderr = io.TextIOWrapper(
        _Tee(stderr.buffer, copy),
        encoding=stderr.encoding,
        errors=stderr.errors,
        line_buffering=stderr.line_buffering,
        write_through=True,
    )


class _RecordTokensOnImport:
    """An import hook that wraps ``TokenStore.create`` the moment ``broker._tokens`` loads:
    importing it up front would slow down every child, most of which never make a token."""

    def __init__(self, record: Callable[[str], None]) -> None:
        self._record = record

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name != _TOKENS_MODULE:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec: ModuleSpec | None = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                self._record_after_loading(spec.loader)
                return spec
        return None

    def _record_after_loading(self, loader: Loader) -> None:
        execute = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            execute(module)
            store = module.TokenStore
            store.create = recording(store.create, self._record)

        loader.exec_module = exec_module  # type: ignore[method-assign]


def _note_tokens(directory: str, test: str) -> Callable[[str], None]:
    opened: list[int] = []

    def record(secret: str) -> None:
        if not opened:
            opened.append(_new_file(directory, TOKENS_PREFIX, ".jsonl"))
        _write_all(opened[0], json.dumps({"secret": secret, "test": test}).encode() + b"\n")

    return record


def _start(directory: str) -> None:
    test = os.environ.get(TEST_VARIABLE, "")
    _copy_stderr(directory, test)
    sys.meta_path.insert(0, _RecordTokensOnImport(_note_tokens(directory, test)))


if __name__ == "sitecustomize" and os.environ.get(SCAN_DIR_VARIABLE):
    _start(os.environ[SCAN_DIR_VARIABLE])
