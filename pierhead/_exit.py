"""The command's exit codes, the same for every subcommand (the README and ``--help`` list them)."""

from __future__ import annotations

from typing import Final

EXIT_OK: Final = 0
EXIT_REFUSED: Final = 1
"""The broker refused: its message is printed."""
EXIT_USAGE: Final = 2
EXIT_UNREACHABLE: Final = 3
EXIT_INTERRUPTED: Final = 130
"""Ctrl-C cut the command short (128 + SIGINT, as a shell reports it). Ctrl-C is how ``watch``,
``tail`` and ``demo`` end, which then exit 0."""
