"""The ``pierhead`` command's entry point, kept apart from the command itself: the command's
modules take a moment to import, and a Ctrl-C meanwhile ends it with its exit code, not with a
traceback."""

from __future__ import annotations

from ._exit import EXIT_INTERRUPTED


def main() -> int:
    try:
        from ._cli import main as run_command

        return run_command()
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
