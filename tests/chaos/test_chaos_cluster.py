"""The chaos scenario, short, on three nodes sharing one Redis server: cuts, a stall, a node
paused, random nodes SIGKILLed (and one SIGTERMed) and restarted while their clients fail over
to the others, then every event, delivery and mutex fence accounted for, read from every node.
``python -m tests.chaos.run_chaos --cluster`` runs the long version."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.scenario import ChaosConfig, run_scenario

pytestmark = pytest.mark.asyncio

SHORT_CLUSTER = ChaosConfig(seed=20261122, nodes=3, pauses=1, timeout_s=150.0)
"""The single node's short version (``test_chaos.py``) on three nodes, with one pause on top:
20 workers x 150 scalars and 4 critical sections, 4 SIGKILLs and a SIGTERM of random nodes,
about 20 s on two cores."""


async def test_nothing_lost_doubled_or_overlapping_through_chaos_on_three_nodes(
    tmp_path: Path,
) -> None:
    report = await run_scenario(tmp_path, SHORT_CLUSTER)
    print(report.summary())  # noqa: T201
    assert report.chaos.kills == SHORT_CLUSTER.kills
    assert report.chaos.terms == 1
    assert report.chaos.pauses == 1
    assert report.chaos.stalls == 1
    assert report.sections == SHORT_CLUSTER.workers * SHORT_CLUSTER.mutex_sections
