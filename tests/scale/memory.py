"""A process's resident memory once it has stopped moving."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from tests.support import memory_kib

INTERVAL_S = 0.5
"""Time between two samples."""
WINDOW = 4
"""Consecutive samples that must agree."""
SPREAD = 0.005
"""How far apart they may be, as a share of the largest (at least ``MIN_SPREAD_KIB``)."""
MIN_SPREAD_KIB = 256


@dataclass(frozen=True, slots=True)
class Resident:
    kib: int
    """The last sample."""
    settled: bool
    """Whether ``WINDOW`` samples in a row agreed before the timeout."""
    samples: int


async def settled_rss(pid: int, timeout_s: float = 30.0) -> Resident:
    """VmRSS of ``pid``, sampled until ``WINDOW`` samples in a row agree or ``timeout_s`` passed."""
    samples: list[int] = []
    deadline = time.monotonic() + timeout_s
    while True:
        samples.append(memory_kib(pid))
        recent = samples[-WINDOW:]
        spread = max(recent) - min(recent)
        if len(recent) == WINDOW and spread <= max(MIN_SPREAD_KIB, max(recent) * SPREAD):
            return Resident(samples[-1], True, len(samples))
        if time.monotonic() >= deadline:
            return Resident(samples[-1], False, len(samples))
        # A sampling period, not a wait for something to happen: memory has no event to wait on.
        await asyncio.sleep(INTERVAL_S)
