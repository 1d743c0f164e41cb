"""The long chaos run: ``python -m tests.chaos.run_chaos --runs 5 --events 2000``.

Runs the scenario of ``tests.chaos.scenario`` ``--runs`` times, each on a fresh data directory
with its own seed (``--seed`` plus the run's number), and prints each run's report. Stops at
the first failure: prints what broke and the seed, keeps that run's data directory for a look
(each node's log, ``node<i>.log``; what was printed, ``failure.txt``; after a timeout, where
each task waited, ``tasks-at-timeout.txt``), and exits with status 1. Exits with 0 when every
run passed.

``--cluster`` runs it against three nodes on one Redis server instead of one node on SQLite:
the SIGKILLs and the SIGTERM hit a random node, which stays down a moment before it restarts,
and ``--pauses`` (2 by default there) SIGSTOP a random node for a second.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import traceback
from dataclasses import replace
from pathlib import Path

from tests.chaos.scenario import ChaosConfig, run_scenario


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.chaos.run_chaos",
        description="Chaos runs against a pierhead broker process, with exact accounting.",
    )
    parser.add_argument("--runs", type=int, default=3, help="scenarios to run (default 3)")
    parser.add_argument(
        "--events", type=int, default=1000, help="scalars each of the 20 workers publishes"
    )
    parser.add_argument(
        "--sections", type=int, default=10, help="critical sections per worker (default 10)"
    )
    parser.add_argument("--kills", type=int, default=8, help="SIGKILLs per run (default 8)")
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="three nodes on one Redis server instead of one node on SQLite",
    )
    parser.add_argument(
        "--pauses",
        type=int,
        default=None,
        help="SIGSTOPs of a node for a second per run (default: 2 with --cluster, else 0)",
    )
    parser.add_argument(
        "--pace",
        type=float,
        default=0.02,
        help="mean seconds between two events of a worker (default 0.02)",
    )
    parser.add_argument("--seed", type=int, default=None, help="first seed (default: random)")
    args = parser.parse_args(argv)
    if args.pauses is None:
        args.pauses = 2 if args.cluster else 0
    if args.runs < 1 or args.events < args.sections + 1 or args.sections < 0 or args.kills < 0:
        parser.error("need --runs >= 1, --events > --sections >= 0 and --kills >= 0")
    if args.pauses < 0:
        parser.error("--pauses cannot be negative")
    if args.pace < 0:
        parser.error("--pace cannot be negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    first_seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    base = ChaosConfig(
        events_per_worker=args.events,
        mutex_sections=args.sections,
        kills=args.kills,
        pace_s=args.pace,
        nodes=3 if args.cluster else 1,
        pauses=args.pauses,
    )
    # Room for the publishing itself, the restarts (in a cluster: the time down and the
    # failover, a claim lease and a heartbeat timeout), the pauses and the final checks.
    per_stop = 15 if args.cluster else 5
    timeout = 90.0 + 3 * args.events * args.pace + per_stop * args.kills + 5 * args.pauses
    for run in range(args.runs):
        config = replace(base, seed=first_seed + run, timeout_s=timeout)
        directory = Path(tempfile.mkdtemp(prefix="pierhead-chaos-"))
        print(f"run {run + 1}/{args.runs}, seed {config.seed}", flush=True)  # noqa: T201
        try:
            report = asyncio.run(run_scenario(directory, config))
        except Exception as exc:
            why = f"FAILED (seed {config.seed}): {type(exc).__name__}: {exc}"
            failure = f"{traceback.format_exc()}{why}\n"
            # Kept with the data too: a terminal's scrollback is no place for the only copy.
            (directory / "failure.txt").write_text(failure)
            print(failure, end="")  # noqa: T201
            print(f"data kept in {directory}")  # noqa: T201
            return 1
        print(report.summary(), flush=True)  # noqa: T201
        shutil.rmtree(directory, ignore_errors=True)
    print(f"{args.runs} chaos runs passed")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
