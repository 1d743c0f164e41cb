"""The chaos scenario, short: a few seconds of cuts, stalls, SIGKILLs and a SIGTERM of the broker,
then every event, delivery and mutex fence accounted for. ``python -m tests.chaos.run_chaos``
runs the long version."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.scenario import ChaosConfig, run_scenario

pytestmark = pytest.mark.asyncio

SHORT = ChaosConfig(seed=20261122)
"""The short version: 20 workers x 150 scalars and 4 critical sections, 4 SIGKILLs and a SIGTERM,
about 15 s on two cores."""


async def test_nothing_lost_doubled_or_overlapping_through_chaos(tmp_path: Path) -> None:
    report = await run_scenario(tmp_path, SHORT)
    print(report.summary())  # noqa: T201
    assert report.chaos.kills == SHORT.kills
    assert report.chaos.terms == 1
    assert report.chaos.stalls == 1
    assert report.sections == SHORT.workers * SHORT.mutex_sections
