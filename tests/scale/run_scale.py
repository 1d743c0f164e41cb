"""Connection scale: ``python -m tests.scale.run_scale [--sessions 10000] [--processes N]``.

Opens ``--sessions`` idle SDK sessions against one ``pierhead serve`` from ``--processes``
client processes, reports the broker's memory per session, SIGKILLs and restarts the broker and
reports how long it takes for every session to be back (see ``tests.scale.scenario``). Exits
with 1 when a target is missed or a step fails (keeping the data directory for a look), with 0
when both targets are met.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

from tests.scale.layout import ScaleLayout
from tests.scale.limits import FileLimitError
from tests.scale.scenario import ScaleConfig, run_scale

SESSIONS_PER_PROCESS = 2500
"""Sessions one client process holds by default."""


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.scale.run_scale",
        description="Idle sessions against one pierhead broker: memory per session and the "
        "time for all of them to come back after a SIGKILL and restart.",
    )
    parser.add_argument("--sessions", type=int, default=10_000, help="(default 10000)")
    parser.add_argument(
        "--processes",
        type=int,
        default=None,
        help=f"client processes (default: one per {SESSIONS_PER_PROCESS} sessions)",
    )
    parser.add_argument(
        "--workspaces", type=int, default=None, help="(default: one per 100 sessions)"
    )
    parser.add_argument("--watchers", type=int, default=None, help="(default: one session in 100)")
    parser.add_argument(
        "--rss-target-kib", type=float, default=40.0, help="per session (default 40)"
    )
    parser.add_argument(
        "--reconnect-target-s", type=float, default=20.0, help="all back after (default 20)"
    )
    args = parser.parse_args(argv)
    if args.sessions < 2:
        parser.error("need at least 2 sessions: a worker and a watcher")
    return args


def _say(line: str) -> None:
    print(line, flush=True)  # noqa: T201


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    sessions = args.sessions
    try:
        layout = ScaleLayout(
            sessions=sessions,
            processes=args.processes or -(-sessions // SESSIONS_PER_PROCESS),
            workspaces=args.workspaces or max(1, sessions // 100),
            watchers=args.watchers or max(1, sessions // 100),
        )
    except ValueError as exc:
        print(f"bad figures: {exc}")  # noqa: T201
        return 1
    config = ScaleConfig(
        layout, rss_target_kib=args.rss_target_kib, reconnect_target_s=args.reconnect_target_s
    )
    directory = Path(tempfile.mkdtemp(prefix="pierhead-scale-"))
    try:
        report = asyncio.run(run_scale(directory, config, say=_say))
    except FileLimitError as exc:
        print(f"FAILED: open-file limit too low: {exc}")  # noqa: T201
        shutil.rmtree(directory, ignore_errors=True)
        return 1
    except Exception as exc:
        traceback.print_exc()
        print(f"FAILED: {type(exc).__name__}: {exc}")  # noqa: T201
        print(f"data kept in {directory}")  # noqa: T201
        return 1
    print(report.summary(), flush=True)  # noqa: T201
    if not report.passed:
        print(f"data kept in {directory}")  # noqa: T201
        return 1
    shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
