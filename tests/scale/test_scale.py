"""The scale run, small: a few hundred idle sessions from two client processes, the broker
SIGKILLed and restarted, every session back and working. ``python -m tests.scale.run_scale``
runs the 10,000-session version against its targets."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.scale.layout import ScaleLayout
from tests.scale.scenario import ScaleConfig, run_scale

pytestmark = pytest.mark.asyncio

SMALL = ScaleLayout(sessions=300, processes=2, workspaces=12, watchers=6)


async def test_every_idle_session_comes_back_after_a_sigkill_and_works(tmp_path: Path) -> None:
    report = await run_scale(tmp_path, ScaleConfig(SMALL))
    print(report.summary())  # noqa: T201
    assert report.back == SMALL.sessions
    assert report.reconnect_s is not None
    assert report.idle_drops == 0
    verified = report.verified
    assert verified["acked"] == verified["workers"] == SMALL.workers
    assert verified["complete"] == verified["watchers"] == SMALL.watchers
    assert verified["missed"] == 0
    assert verified["connected"] == SMALL.sessions
    assert report.rss_open.kib > report.rss_before.kib
