"""The soak test: ``python -m tests.soak.run_soak --minutes 10 --rate 2000``.

Runs the scenario of ``tests.soak.scenario`` once on a fresh data directory: a steady load for
``--minutes``, the broker sampled every ``--sample-every`` seconds. Prints a line a minute while
it runs, then the summary table and a verdict per series and per check. Exits with 0 when
everything passed; otherwise with 1, keeping the data directory for a look.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

from tests.soak.growth import MIN_PER_SPAN, SPANS
from tests.soak.scenario import SoakConfig, run_soak


def parse(argv: list[str] | None) -> SoakConfig:
    parser = argparse.ArgumentParser(
        prog="python -m tests.soak.run_soak",
        description="A steady load on a pierhead broker process; fails on growth that does not "
        "level off, on a lost event, or on queues that do not empty.",
    )
    defaults = SoakConfig()
    parser.add_argument(
        "--minutes", type=float, default=defaults.minutes, help="length of the load (default 10)"
    )
    parser.add_argument(
        "--rate", type=float, default=defaults.rate, help="events/s over all workers (default 2000)"
    )
    parser.add_argument(
        "--sample-every", type=float, default=defaults.sample_every_s, help="seconds (default 5)"
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=defaults.warmup_s,
        help="seconds left out of the growth verdicts (default 150: the tail fills and "
        "retention trims twice)",
    )
    parser.add_argument(
        "--workspaces", type=int, default=defaults.workspaces, help="default 8 (at least 4)"
    )
    parser.add_argument(
        "--workers-per-workspace",
        type=int,
        default=defaults.workers_per_workspace,
        help="default 2",
    )
    parser.add_argument(
        "--retention-events",
        type=int,
        default=defaults.retention_events,
        help="the broker's --retention-events, per workspace (default 5000): small, so that "
        "the store reaches its steady size within the run",
    )
    args = parser.parse_args(argv)
    config = SoakConfig(
        minutes=args.minutes,
        rate=args.rate,
        sample_every_s=args.sample_every,
        warmup_s=args.warmup,
        workspaces=args.workspaces,
        workers_per_workspace=args.workers_per_workspace,
        retention_events=args.retention_events,
    )
    if config.rate <= 0 or config.sample_every_s <= 0 or config.retention_events < 1:
        parser.error("--rate, --sample-every and --retention-events must be positive")
    if config.warmup_s < 0:
        parser.error("--warmup cannot be negative")
    if config.workspaces < 4 or config.workers_per_workspace < 1:
        # The watchers' patterns name workspaces soak-0 to soak-3.
        parser.error("need --workspaces >= 4 and --workers-per-workspace >= 1")
    judged = (config.duration_s - config.warmup_s) / config.sample_every_s
    if judged < SPANS * MIN_PER_SPAN:
        parser.error(
            f"{config.minutes:g} min with a {config.warmup_s:g} s warm-up leaves {judged:.0f} "
            f"samples to judge; at least {SPANS * MIN_PER_SPAN} are needed (more --minutes, or "
            "a shorter --warmup, which may judge the store before it reaches its size)"
        )
    return config


def say(text: str) -> None:
    print(text, flush=True)  # noqa: T201


def main(argv: list[str] | None = None) -> int:
    config = parse(argv)
    directory = Path(tempfile.mkdtemp(prefix="pierhead-soak-"))
    say(
        f"soak: {config.minutes:g} min at {config.rate:,.0f} events/s, sampled every "
        f"{config.sample_every_s:g} s, data in {directory}"
    )
    try:
        report = asyncio.run(run_soak(directory, config, say))
    except Exception as exc:
        traceback.print_exc()
        say(f"soak FAILED: {type(exc).__name__}: {exc}")
        say(f"data kept in {directory}")
        return 1
    say(report.render())
    if not report.passed:
        say(f"data kept in {directory}")
        return 1
    shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
