"""``pierhead notify test FILE``: one sample message to each sink of a notifications file.

An operator runs it before a deploy: each sink's line says whether its receiver accepted the
message (and with what status) or why not. Exit 0 when every sink accepted it, 1 when one did
not, 2 when the file cannot be used (its message names the file and the key).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import secrets
import sys
from pathlib import Path

from broker._notify import Notification, SinkConfig
from broker._notify_config import NotifyConfigError, load_notify_config
from broker._notify_sender import PostResult, post_once

from ._exit import EXIT_OK, EXIT_REFUSED, EXIT_USAGE

SAMPLE_WORKSPACE = "pierhead-notify-test"


def add_notify_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    notify = commands.add_parser("notify", help="check the sinks of a notifications file")
    actions = notify.add_subparsers(dest="notify_command", metavar="ACTION", required=True)
    test = actions.add_parser(
        "test",
        help="send one sample message to each sink and report each result",
        description="Send one sample message to each sink of FILE (as pierhead serve --notify"
        " reads it) and print each sink's result. Exit 0 when every sink accepted it, 1 when"
        " one did not, 2 when FILE cannot be used.",
    )
    test.add_argument("file", type=Path, metavar="FILE", help="the notifications file (TOML)")
    test.set_defaults(run=run_notify_test)


def sample_notification(sink: SinkConfig) -> Notification:
    """A message that says what it is, under a fresh key (a receiver that keeps keys must not
    take a second test for a double of the first)."""
    return Notification(
        key=f"test-{secrets.token_hex(8)}",
        sink=sink.name,
        trigger="event",
        workspace=SAMPLE_WORKSPACE,
        epoch=0,
        at=datetime.datetime.now(datetime.UTC),
        summary=f"test notification from pierhead notify test to sink {sink.name}: it works",
        coalesce="test",
        severity="info",
    )


async def run_notify_test(args: argparse.Namespace) -> int:
    try:
        config = load_notify_config(args.file)
    except NotifyConfigError as exc:
        print(f"pierhead notify test: {exc}", file=sys.stderr)
        return EXIT_USAGE
    results: list[PostResult] = await asyncio.gather(
        *(
            post_once(sink, sample_notification(sink), public_url=config.public_url)
            for sink in config.sinks
        )
    )
    for sink, result in zip(config.sinks, results, strict=True):
        print(f"{sink.name}: {result.describe()}")
    return EXIT_OK if all(result.ok for result in results) else EXIT_REFUSED
