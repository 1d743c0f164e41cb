"""``python -m broker serve ...`` and ``python -m broker token ...``: the broker on its own.

The same subcommands as ``pierhead serve`` and ``pierhead token``, without the SDK's clients:
what ``broker_process()`` runs, so the broker never needs the ``sdk`` package to start.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._cli import add_serve_command, add_token_command


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pierhead", description="Run a pierhead broker.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_serve_command(commands)
    add_token_command(commands)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
