"""The ``pierhead`` command: one entry point, a subcommand per job, documented exit codes.

Exit codes: 0 success, 1 refused by the broker (its message is printed), 2 usage error,
3 broker unreachable. Errors are one line on stderr, never a traceback.

The broker is imported only for the subcommands that need it (``serve``, ``token``,
``notify``, ``demo``): ``pierhead watch`` and the operator commands load the SDK alone.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from importlib.metadata import version
from typing import Any

import schema
from sdk import (
    ActionFailedError,
    AuthenticationError,
    BrokerRefusedError,
    ClosedError,
    ForbiddenError,
    PierheadError,
)

from ._cli_ops import UsageError, add_operator_commands, checked
from ._console import run_watch
from ._exit import EXIT_INTERRUPTED, EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE
from ._reach import UnreachableError, split_urls, url_problem

DEFAULT_URL = "ws://127.0.0.1:8765"
BROKER_COMMANDS = {
    "serve": "run a broker (on its embedded store, or on Redis with --store)",
    "token": "create, list and revoke access tokens",
    "notify": "check the sinks of a notifications file",
}
"""The subcommands the broker package provides, with their one-line help."""


def _add_connection_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """``--url`` and ``--token``: before the subcommand (``pierhead --url X ls``) and after it.

    Only the command itself has defaults: a subcommand's would overwrite a value given before
    the subcommand with its default.
    """
    url_default = os.environ.get("PIERHEAD_URL", DEFAULT_URL) if defaults else argparse.SUPPRESS
    token_default = os.environ.get("PIERHEAD_TOKEN") if defaults else argparse.SUPPRESS
    parser.add_argument(
        "--url",
        default=url_default,
        help=(
            "broker address, ws:// or wss://, or several separated by commas, tried in turn "
            f"(env PIERHEAD_URL; default {DEFAULT_URL})"
        ),
    )
    parser.add_argument("--token", default=token_default, help="access token (env PIERHEAD_TOKEN)")


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    _add_connection_options(common, defaults=False)
    return common


def _parser(*, with_broker: bool) -> argparse.ArgumentParser:
    """The whole command; without the broker, ``serve`` and ``token`` are only named."""
    parser = argparse.ArgumentParser(
        prog="pierhead",
        description="A websocket message broker for long-running jobs and their watchers.",
        epilog="exit codes: 0 done, 1 refused by the broker, 2 usage error, 3 broker unreachable,"
        " 130 interrupted (Ctrl-C ends watch, tail and demo with 0)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_connection_options(parser, defaults=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = _common_options()

    if with_broker:
        from broker import add_serve_command, add_token_command

        add_serve_command(commands)
        add_token_command(commands)
        from ._notify_cmd import add_notify_command

        add_notify_command(commands)
    else:
        for name, summary in BROKER_COMMANDS.items():
            commands.add_parser(name, help=summary, add_help=False)
    watch = commands.add_parser(
        "watch", parents=[common], help="live console of workspaces and their events"
    )
    watch.add_argument("pattern", nargs="?", default="*", help="glob over names (default: *)")
    watch.add_argument("--json", action="store_true", help="NDJSON events instead of a screen")
    watch.add_argument("--once", action="store_true", help="print the view once and exit")
    watch.set_defaults(run=_run_watch, parser=watch)
    add_operator_commands(commands, common)
    demo = commands.add_parser(
        "demo", help="a broker and simulated workers, watched live (Ctrl-C ends it)"
    )
    demo.add_argument("--json", action="store_true", help="NDJSON events instead of a screen")
    demo.add_argument("--seconds", type=float, default=None, help="stop after this long")
    demo.set_defaults(run=_run_demo)
    version_command = commands.add_parser("version", help="print the installed version")
    version_command.set_defaults(run=lambda _: _print_version())
    return parser


async def _run_watch(args: argparse.Namespace) -> int:
    checked(schema.Subscribe, pattern=args.pattern)
    return await run_watch(
        args.url, args.token, args.pattern, json_output=args.json, once=args.once
    )


async def _run_demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    return await run_demo(json_output=args.json, seconds=args.seconds)


def _print_version() -> int:
    print(f"pierhead {version('pierhead')}")
    return 0


def _runs_until_stopped(args: argparse.Namespace) -> bool:
    """Whether Ctrl-C is how the command ends, rather than a cut short."""
    if args.command == "tail":
        return not args.no_follow
    return args.command in ("watch", "demo")


def main(argv: Sequence[str] | None = None) -> int:
    # The command reports in one line of its own; the SDK's log lines would repeat it.
    logging.getLogger("pierhead.sdk").addHandler(logging.NullHandler())
    parser = _parser(with_broker=False)
    args, _ = parser.parse_known_args(argv)
    if args.command in BROKER_COMMANDS:
        parser = _parser(with_broker=True)
    args = parser.parse_args(argv)
    if args.command is None:
        _print_version()
        parser.print_help()
        return 0
    # A command that talks to a broker has its parser, for its usage errors.
    command_parser: argparse.ArgumentParser | None = getattr(args, "parser", None)
    if command_parser is not None:
        if problem := url_problem(args.url):
            command_parser.error(problem)
        args.url = split_urls(args.url)
    try:
        result: Any = args.run(args)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
    except KeyboardInterrupt:
        return EXIT_OK if _runs_until_stopped(args) else EXIT_INTERRUPTED
    except UsageError as exc:
        assert command_parser is not None
        command_parser.error(str(exc))
    except UnreachableError as exc:
        print(f"pierhead: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except (BrokerRefusedError, ActionFailedError) as exc:
        print(f"pierhead: refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except (AuthenticationError, ForbiddenError) as exc:
        print(f"pierhead: refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except ClosedError as exc:
        print(
            f"pierhead: the broker closed the connection: {exc.__cause__ or exc}", file=sys.stderr
        )
        return EXIT_UNREACHABLE
    except PierheadError as exc:
        print(f"pierhead: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    return int(result)


if __name__ == "__main__":
    sys.exit(main())
