"""A training-style worker: scalars, progress and status, and an action to change the rate.

    python examples/training_worker.py --url ws://127.0.0.1:8765
    pierhead call train-demo RUN_ID set_lr value=0.01     # from another terminal

The run id is printed at start; the action takes effect at the next step.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random

import sdk


async def main(url: str, workspace: str, epochs: int, steps: int, pace_s: float) -> None:
    worker = sdk.Worker(url, workspace)
    settings = {"lr": 0.1}

    @worker.action("set_lr", description="change the learning rate from the next step on")
    def set_lr(value: float) -> dict[str, float]:
        if not 0 < value < 10:
            raise ValueError(f"learning rate {value} is out of range")
        old, settings["lr"] = settings["lr"], value
        return {"old": old, "new": value}

    async with worker:
        await worker.connected()
        print(f"run id: {worker.run_id}", flush=True)
        await worker.hyperparameters({"lr": settings["lr"], "epochs": epochs, "batch": 64})
        loss = 2.5
        for epoch in range(epochs):
            await worker.status("phase", f"epoch {epoch + 1}/{epochs}")
            for step in range(steps):
                await worker.checkpoint(unreachable="proceed")  # never stall training
                loss = max(0.01, loss * (1 - settings["lr"] * 0.05) + random.gauss(0, 0.01))
                global_step = epoch * steps + step
                await worker.scalar("loss", loss, step=global_step)
                await worker.scalar("lr", settings["lr"], step=global_step)
                await worker.progress("steps", step + 1, total=steps)
                await asyncio.sleep(pace_s)
            accuracy = 1 - math.exp(-(epoch + 1) / 3)
            await worker.scalar("accuracy", accuracy, step=epoch)
            await worker.progress("epochs", epoch + 1, total=epochs)
            await worker.event(f"epoch {epoch + 1} done: accuracy {accuracy:.3f}", "success")
        await worker.flush(timeout=30)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("PIERHEAD_URL", "ws://127.0.0.1:8765"))
    parser.add_argument("--workspace", default="train-demo")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=50)
    # About four minutes in all: time to try every command of the README on it while it runs.
    parser.add_argument("--pace", type=float, default=1.0, help="seconds per step")
    args = parser.parse_args()
    asyncio.run(main(args.url, args.workspace, args.epochs, args.steps, args.pace))
