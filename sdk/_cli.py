"""The ``pierhead`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import version

PLANNED_COMMANDS = {
    "watch": "live console of workspaces and their events",
    "ls": "list workspaces",
    "tail": "follow one workspace's events",
    "catch": "pause a workspace",
    "release": "resume a caught workspace",
    "mutex": "break a workspace's mutex",
    "delete": "delete a workspace",
    "call": "call an action a worker offers",
    "token": "create, list and revoke access tokens",
    "demo": "a broker with simulated workers, watched live",
}


def _parser() -> argparse.ArgumentParser:
    planned = "\n".join(f"  {name:<8} {text}" for name, text in PLANNED_COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="pierhead",
        description="A websocket message broker for long-running jobs and their watchers.",
        epilog=f"planned commands, not yet available in this version:\n{planned}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    version_command = commands.add_parser("version", help="print the installed version")
    version_command.set_defaults(run=lambda _: _print_version())
    from broker._cli import add_serve_command

    add_serve_command(commands)
    return parser


def _print_version() -> int:
    print(f"pierhead {version('pierhead')}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        _print_version()
        parser.print_help()
        return 0
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
