"""The dashboard benchmark's workers, one process each: ``python -m bench._dashboard_worker
ROLE PARAMS``, talking to the benchmark as :mod:`bench._procs` describes.

``paced``
    An SDK ``Worker`` of ``workspace`` (run ``run_id``): answers ``ready`` once connected (its
    hyperparameters published), then on ``go`` enqueues ``rate`` events per second for
    ``seconds``, alternately a log line and a scalar (:data:`SCALARS` in turn, stepping up), in
    ticks of ``tick_s``, and waits for ``flush()``. Answers ``result`` with the events
    published, the last step of each scalar, the start and end times and its CPU time, then
    stays connected until ``stop``: its leaving is an event of the workspace too, and the page
    is measured on the worker's events alone.
``fill``
    A raw worker connection that floods ``events`` log records into ``workspace`` in frames
    of the broker's largest batch, for a store to open a page on (the first-paint
    measurement); answers ``result`` once all of them are acknowledged.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any, Final

import sdk

from . import _peers
from ._peer_roles import main

SCALARS: Final = ("loss", "accuracy")
"""The scalar series the paced worker draws, in turn."""
FILL_BATCH: Final = 1000
"""Events per ``publish`` frame of a fill: the broker's ``max_batch``."""
FILL_WINDOW: Final = 8
OUTBOX_MAX_EVENTS: Final = 1_000_000
"""Room for a few seconds of the paced rate should the broker fall behind: nothing is dropped."""

Params = dict[str, Any]


def due_events(elapsed_s: float, rate: float, sent: int, total: int) -> int:
    """How many more events a paced worker sends now, ``elapsed_s`` into its run."""
    return max(0, min(total, int(elapsed_s * rate) + 1) - sent)


async def paced(params: Params, commands: _peers.Commands) -> None:
    rate, seconds, tick = params["rate"], params["seconds"], params["tick_s"]
    total = round(rate * seconds)
    async with sdk.Worker(
        params["url"],
        params["workspace"],
        run_id=params["run_id"],
        outbox_max_events=OUTBOX_MAX_EVENTS,
    ) as worker:
        await worker.connected()
        await worker.hyperparameters({"lr": 0.1, "batch": 64, "rate": rate})
        await worker.flush()
        _peers.emit("ready")
        await commands.expect("go")
        loop = asyncio.get_running_loop()
        cpu, start_ns, start = time.process_time(), time.time_ns(), loop.time()
        steps = dict.fromkeys(SCALARS, 0)
        sent = 0
        while sent < total:
            for _ in range(due_events(loop.time() - start, rate, sent, total)):
                if sent % 2 == 0:
                    await worker.log(f"step {sent // 2}: batch done", logger="train")
                else:
                    name = SCALARS[(sent // 2) % len(SCALARS)]
                    steps[name] += 1
                    await worker.scalar(name, 1.0 / steps[name], step=steps[name])
                sent += 1
            ticks_done = int((loop.time() - start) / tick) + 1
            await asyncio.sleep(max(0.0, start + ticks_done * tick - loop.time()))
        send_end_ns = time.time_ns()
        await worker.flush()
        end_ns = time.time_ns()
        cpu_s = time.process_time() - cpu
        if worker.counters["dropped"]:
            raise RuntimeError(f"the outbox dropped events: {worker.counters}")
        _peers.emit(
            "result",
            events=sent,
            steps=steps,
            start_ns=start_ns,
            send_end_ns=send_end_ns,
            end_ns=end_ns,
            cpu_s=cpu_s,
        )
        await commands.expect("stop")


async def fill(params: Params, commands: _peers.Commands) -> None:
    flood = {
        **params,
        "target": "broker",
        "codec": "json",
        "mode": "flood",
        "batch": FILL_BATCH,
        "window": FILL_WINDOW,
        "warm": 0,
    }
    await _peers.publish(flood, commands)


ROLES: Final[dict[str, _peers.Role]] = {"paced": paced, "fill": fill}


if __name__ == "__main__":
    sys.exit(main(ROLES))
