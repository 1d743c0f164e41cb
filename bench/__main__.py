"""Run the benchmarks: ``python -m bench [--quick] [--write] [--only NAME]``; ``nox -s bench``.

Exits 1 when any benchmark misses a goal, so the command can gate a change.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final, Protocol

import msgspec

from . import (
    auth,
    broker,
    broker_cluster,
    broker_redis,
    cluster_idle_node,
    codec,
    dashboard,
    notify,
    peer_neetbox,
    peer_redis,
    sdk,
)
from ._plots import Plot, combine, draw, require_matplotlib
from ._report import Report, recorded_command, render_markdown, render_text, write_section

RESULTS_FILE: Final = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


class Benchmark(Protocol):
    def __call__(self, *, quick: bool) -> Report: ...


BENCHMARKS: Final[dict[str, Benchmark]] = {
    "codec": codec.run,
    "broker-ingest": broker.run_ingest,
    "broker-fanout": broker.run_fanout,
    "broker-fanout-watchers": broker.run_fanout_sweep,
    "broker-latency": broker.run_latency,
    "broker-latency-rates": broker.run_latency_sweep,
    "broker-catch": broker.run_catch,
    "redis-ingest": broker_redis.run,
    "notify-ingest": notify.run,
    "cluster-latency": broker_cluster.run_latency,
    "cluster-catch": broker_cluster.run_catch,
    "cluster-fanout": broker_cluster.run_fanout,
    "cluster-idle-node": cluster_idle_node.run,
    "sdk-enqueue": sdk.run_enqueue,
    "sdk-throughput": sdk.run_throughput,
    "auth-cost": auth.run,
    "peer-neetbox": peer_neetbox.run,
    "peer-redis-fanout": peer_redis.run_fanout,
    "peer-redis-latency": peer_redis.run_latency,
    "dashboard-live": dashboard.run_live,
    "dashboard-first-paint": dashboard.run_first_paint,
}
"""Every benchmark by the name of its report, in the order run; add a module's ``run`` here."""


def machine() -> str:
    """Enough to tell two machines' figures apart, without anything identifying the host."""
    cpus = os.cpu_count() or "unknown number of"
    return (
        f"{platform.system()} {platform.release()} {platform.machine()},"
        f" {cpus} logical CPUs; {platform.python_implementation()} {platform.python_version()},"
        f" msgspec {msgspec.__version__}"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="few iterations: a smoke test, not a measurement"
    )
    parser.add_argument(
        "--write", action="store_true", help=f"also record the figures in {RESULTS_FILE.name}"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=list(BENCHMARKS),
        metavar="NAME",
        help="run only this benchmark (repeatable); all of them by default. Names: "
        + ", ".join(BENCHMARKS),
    )
    args = parser.parse_args(argv)
    if args.quick and args.write:
        # Smoke-test figures are too noisy to stand in the record as measurements.
        parser.error("--write records measurements; run it without --quick")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = recorded_command(
        sys.argv[1:] if argv is None else argv, nox_session=os.environ.get("NOX_CURRENT_SESSION")
    )
    plots: list[Plot] = []
    if args.write:
        require_matplotlib()  # before the run, not after it
    description = machine()
    print(f"Machine: {description}\n")
    passed = True
    selected = args.only or list(BENCHMARKS)
    for name, benchmark in BENCHMARKS.items():
        if name not in selected:
            continue
        report = benchmark(quick=args.quick)
        if report.name != name:
            raise RuntimeError(f"benchmark {name!r} returned report {report.name!r}")
        print(render_text(report), end="\n\n")
        passed = passed and report.passed
        if args.write:
            section = render_markdown(report, machine=description, command=command)
            write_section(RESULTS_FILE, report.name, section)
            plots += report.plots
    if args.write:
        for plot in combine(plots):
            print(f"Plot: {draw(plot, RESULTS_FILE.parent)}")
        print(f"Recorded in {RESULTS_FILE}")
    print("All goals met." if passed else "Some goals were missed.")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
