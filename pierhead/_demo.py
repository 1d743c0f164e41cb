"""``pierhead demo``: a broker, simulated workers and the watch console, in one command.

Everything runs in this process on a free loopback port with a temporary store, and all of
it ends with Ctrl-C (or after ``--seconds``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

from broker import BrokerConfig, BrokerServer, configure_logging
from schema import GpuStats, WorkspaceDetails, WorkspaceState
from sdk import Watcher, Worker

from ._console import run_watch

HOSTS = [f"web-{n}" for n in range(1, 7)]
FAILING_HOST = "web-4"
AUTO_RELEASE_S = 8.0


async def deploy(url: str, stop: asyncio.Event) -> None:
    """Walks hosts under the mutex; one host fails, the run catches itself and waits."""
    details = WorkspaceDetails(workflow="rolling-restart", host_pattern="web-*")
    async with Worker(
        url, "deploy-web", run_id="deploy-1", details=details, close_timeout_s=2
    ) as worker:
        while not stop.is_set():
            async with worker.mutex() as lease:
                await worker.event(f"rollout started (fence {lease.fence})")
                failed_once = False
                done = 0
                while done < len(HOSTS) and not stop.is_set():
                    host = HOSTS[done]
                    await worker.checkpoint()
                    await worker.progress("hosts", done, total=len(HOSTS))
                    await worker.status("current_host", host)
                    await worker.event(f"{host}: restarting services")
                    await _pause(stop, random.uniform(0.8, 1.6))
                    if host == FAILING_HOST and not failed_once:
                        failed_once = True
                        await worker.event(f"{host}: health check failed", "error")
                        await worker.post_catch(f"{host} failed its health check")
                        continue
                    await worker.event(f"{host}: healthy", "success")
                    done += 1
                await worker.progress("hosts", done, total=len(HOSTS))
                await worker.event("rollout finished", "success")
            await _pause(stop, 3)


async def train(url: str, stop: asyncio.Event) -> None:
    """A training run: loss and learning-rate scalars, step and epoch progress, a hardware
    sample every ten steps, and a ``set_lr`` action to call from the dashboard."""
    worker = Worker(url, "train-resnet", run_id="train-1", close_timeout_s=2)
    settings = {"lr": 0.1}

    @worker.action("set_lr", description="change the learning rate from the next step on")
    def set_lr(value: float) -> dict[str, float]:
        if not 0 < value < 1:
            raise ValueError(f"learning rate {value} is out of range (0, 1)")
        old, settings["lr"] = settings["lr"], value
        return {"old": old, "new": value}

    async with worker:
        await worker.hyperparameters({"lr": settings["lr"], "batch": 64, "epochs": 20})
        loss, step = 2.5, 0
        for epoch in range(1, 21):
            await worker.status("phase", f"epoch {epoch}/20")
            for batch in range(1, 41):
                if stop.is_set():
                    return
                loss = max(0.05, loss * (1 - settings["lr"] * 0.05) + random.gauss(0, 0.01))
                step += 1
                await worker.scalar("loss", loss, step=step)
                await worker.scalar("lr", settings["lr"], step=step)
                await worker.progress("batches", batch, total=40)
                if step % 10 == 1:
                    await worker.hardware(**_simulated_hardware())
                await _pause(stop, 0.1)
            await worker.progress("epochs", epoch, total=20)
            await worker.event(f"epoch {epoch} done, loss {loss:.3f}", "success")


def _simulated_hardware() -> dict[str, Any]:
    return {
        "cpu_percent": random.uniform(55, 80),
        "memory_used_bytes": int(random.uniform(11, 13) * 2**30),
        "memory_total_bytes": 32 * 2**30,
        "gpus": [
            GpuStats(
                index=index,
                name="simulated GPU",
                utilization_percent=random.uniform(85, 99),
                memory_used_bytes=int(random.uniform(17, 19) * 2**30),
                memory_total_bytes=24 * 2**30,
                temperature_c=random.uniform(64, 72),
            )
            for index in range(2)
        ],
    }


async def operator(url: str, stop: asyncio.Event) -> None:
    """Releases a caught workspace after a while, unless someone at the console does first."""
    async with Watcher(url, client="demo-operator") as watcher:
        await watcher.subscribe("*", kinds=["semaphores"])
        while not stop.is_set():
            await _pause(stop, 1)
            for state in list(watcher.state.values()):
                caught_for = _caught_for(state)
                if caught_for is not None and caught_for > AUTO_RELEASE_S:
                    await watcher.release(state.name)


def _caught_for(state: WorkspaceState) -> float | None:
    if not state.semaphores.caught or state.updated is None:
        return None
    return (datetime.datetime.now(datetime.UTC) - state.updated).total_seconds()


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()


async def run_demo(*, json_output: bool, seconds: float | None) -> int:
    # The console owns the terminal: the broker logs only errors. Its warnings are for an
    # operator's broker (auth off, which is the demo's choice on loopback, among them).
    configure_logging("json", "error")
    with tempfile.TemporaryDirectory(prefix="pierhead-demo-") as data:
        config = BrokerConfig(host="127.0.0.1", port=0, data_dir=Path(data))
        async with BrokerServer(config) as broker:
            print(f"pierhead demo: broker on {broker.url}, Ctrl-C to stop", file=sys.stderr)
            print(f"pierhead demo: dashboard at {broker.dashboard_url}", file=sys.stderr)
            stop = asyncio.Event()
            workers = [
                asyncio.create_task(job(broker.url, stop)) for job in (deploy, train, operator)
            ]
            console = asyncio.create_task(run_watch(broker.url, None, "*", json_output=json_output))
            try:
                done, _ = await asyncio.wait(
                    [console, *workers],
                    timeout=seconds,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                for task in done:
                    task.result()  # a crashed simulation is reported, not hidden
            finally:
                # Simulations may be waiting on a catch: cancel them rather than wait; their
                # workers still flush what they queued on the way out.
                stop.set()
                for task in (console, *workers):
                    task.cancel()
                await asyncio.gather(console, *workers, return_exceptions=True)
    return 0
