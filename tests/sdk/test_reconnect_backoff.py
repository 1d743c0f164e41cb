"""Reconnect backoff: closes soon after the welcome, and closes that say "slow down", make the
wait grow instead of starting over."""

from __future__ import annotations

import asyncio
import logging
import random
from pathlib import Path

import pytest

import sdk
from broker._worker_session import PACING_WINDOW_BATCHES
from broker.testing import broker_process
from schema import CloseCode
from sdk._backoff import Backoff


def backoff() -> Backoff:
    return Backoff(initial_s=0.1, maximum_s=10.0, rng=random.Random(7))


@pytest.mark.parametrize(
    "code", [CloseCode.RATE_LIMITED, CloseCode.MESSAGE_TOO_BIG, CloseCode.PROTOCOL_ERROR]
)
def test_a_slow_down_close_never_resets_the_backoff(code: CloseCode) -> None:
    policy = backoff()
    # However long each session lasted, the broker said the client overdid it.
    for attempt in range(1, 8):
        policy.after_session(lasted_s=3600.0, close_code=code)
        assert policy.attempts == attempt


def test_a_session_closed_soon_after_its_welcome_does_not_reset_the_backoff() -> None:
    policy = backoff()
    for attempt in range(1, 8):
        policy.after_session(lasted_s=0.01, close_code=None)
        assert policy.attempts == attempt


def test_a_session_that_stayed_up_resets_the_backoff() -> None:
    policy = backoff()
    for _ in range(5):
        policy.next_delay()  # failed attempts before the connection came up
    delay = policy.after_session(lasted_s=10.0, close_code=CloseCode.GOING_AWAY)
    assert policy.attempts == 1
    assert 0 <= delay <= 0.1


def test_the_delays_grow_to_the_cap_with_full_jitter() -> None:
    policy = backoff()
    caps = [min(10.0, 0.1 * 2**n) for n in range(10)]
    for cap in caps:
        assert 0 <= policy.after_session(lasted_s=0.0, close_code=CloseCode.RATE_LIMITED) <= cap


@pytest.mark.asyncio
async def test_after_4029_closes_the_worker_backs_off_more_each_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker publishing faster than ``--max-events-per-s`` with a window of unacknowledged
    batches wider than the broker paces (so the broker closes it with 4029 instead of holding
    its acks): every event arrives once, and consecutive 4029 closes never start the backoff
    over (before, each welcome reset it and the worker came back within 0.1 s)."""
    caplog.set_level(logging.INFO, logger="pierhead.sdk")
    total = 300
    async with (
        broker_process(tmp_path / "data", "--max-events-per-s", "50", "--max-batch", "5") as broker,
        asyncio.timeout(120),
    ):
        async with sdk.Worker(
            broker.url,
            "throttled",
            run_id="run-1",
            reconnect_initial_s=0.01,
            reconnect_max_s=0.4,
            max_in_flight=3 * PACING_WINDOW_BATCHES,
        ) as worker:
            for step in range(total):
                await worker.scalar("x", step)
            await worker.flush(timeout=100)
        async with sdk.Watcher(broker.url) as watcher:
            stored = [e async for e in watcher.history("throttled", after=0, kinds=["scalar"])]
        assert [e.seq for e in stored] == list(range(1, total + 1))

    scheduled = [r for r in caplog.records if r.getMessage().startswith("pierhead reconnect_")]
    rate_limited = [r for r in scheduled if getattr(r, "close_code", None) == 4029]
    assert len(rate_limited) >= 2, (
        "the broker did not close the worker for its rate twice",
        [r.getMessage() for r in scheduled],
    )
    # Each reconnect follows a 4029 close here (nothing else ends the sessions): the attempt
    # count, which sets the backoff's cap, grows with every one of them.
    attempts = [getattr(r, "attempt") for r in scheduled]  # noqa: B009
    assert attempts == list(range(1, len(attempts) + 1)), [r.getMessage() for r in scheduled]
