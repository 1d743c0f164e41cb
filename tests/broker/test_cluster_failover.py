"""A Redis primary, its replica and a Sentinel on loopback, under two broker nodes that find the
primary through the Sentinel: the primary is SIGKILLed mid-stream; with `replica` durability no
acknowledged event is lost, and the nodes carry on with the promoted replica by themselves."""

from __future__ import annotations

from pathlib import Path

import pytest

import schema
import sdk
from tests.broker.cluster_support import QUICK_FAILOVER, nodes_on, offsets, stored
from tests.redis_server import primary_replica_sentinel
from tests.support import until

pytestmark = pytest.mark.asyncio

WS = "failover"
GUARD_S = 90.0
"""Only a guard against a hanging test: the failover takes a few seconds."""


async def test_a_failover_loses_nothing_acknowledged_with_replica_durability(
    tmp_path: Path,
) -> None:
    with primary_replica_sentinel() as (primary, replica, sentinel):
        options = ("--redis-durability", "replica", *QUICK_FAILOVER)
        async with nodes_on(tmp_path, 2, sentinel.url, *options) as (a, b):
            async with sdk.Worker([a.url, b.url], WS, run_id="job") as job:
                for index in range(1000):
                    await job.scalar("step", index)
                await job.flush(timeout=GUARD_S)
                primary.kill()
                for index in range(1000, 2000):
                    await job.scalar("step", index)
                # The Sentinel promotes the replica; once the old primary is back, it is made
                # a replica of the new one, and commits can be fsynced on a replica again.
                await until(
                    lambda: sentinel.primary_port() == replica.port,
                    "the Sentinel to promote the replica",
                    timeout=GUARD_S,
                )
                primary.restart()
                await job.flush(timeout=GUARD_S)
            history = await stored(b.url, WS)
        steps = [e.seq for e in history if isinstance(e.payload, schema.Scalar)]
        assert steps == list(range(1, 2001))
        assert offsets(history) == list(range(1, history[-1].offset + 1))
