"""The run views against a real broker, real SDK workers and a real Chromium: the charts hold,
point for point, the scalars the workers sent (history and live), two runs overlay, smoothing
changes the drawn line and never the data, the wall-clock axis and the hardware share one time
range, and strings from the stream are text."""

from __future__ import annotations

import datetime
import json
import math
from typing import Any

import pytest
from playwright.async_api import WebSocket, expect

import schema
from broker.testing import running_broker
from sdk import Worker
from tests.dashboard.live import chromium, dashboard
from tests.dashboard.runs_page import ema_reference, wait_for_chart

WORKSPACE = "train-live"


def losses(count: int, start: int = 0, scale: float = 2.5) -> list[float]:
    """Values a loss curve might take, with digits a float must keep exactly."""
    return [scale * math.exp(-step / 30) + (step % 7) / 1000 for step in range(start, count)]


@pytest.mark.asyncio
async def test_the_chart_holds_every_scalar_the_worker_sent_from_history_and_live() -> None:
    before, after = losses(150), losses(230, start=150)
    async with running_broker() as broker, chromium() as browser:
        async with Worker(broker.url, WORKSPACE, run_id="run-a") as worker:
            for step, value in enumerate(before):
                await worker.scalar("loss", value, step=step)
            await worker.flush(timeout=10)
            async with dashboard(
                browser, broker.url, f"/w/{WORKSPACE}/runs?runs=run-a&smooth=0"
            ) as live:
                drawn = await wait_for_chart(live.page, "loss", len(before), ["run-a"])
                assert drawn["xs"] == list(range(len(before)))
                assert drawn["lines"]["run-a"] == before

                for step, value in enumerate(after, start=len(before)):
                    await worker.scalar("loss", value, step=step)
                await worker.flush(timeout=10)
                drawn = await wait_for_chart(live.page, "loss", len(before) + len(after), ["run-a"])
                assert drawn["xs"] == list(range(len(before) + len(after)))
                assert drawn["lines"]["run-a"] == before + after


@pytest.mark.asyncio
async def test_two_runs_of_a_workspace_overlay_on_one_chart() -> None:
    first, second = losses(60), losses(90, scale=3.0)
    async with running_broker() as broker, chromium() as browser:
        async with (
            Worker(broker.url, WORKSPACE, run_id="run-a") as run_a,
            Worker(broker.url, WORKSPACE, run_id="run-b") as run_b,
        ):
            for step, value in enumerate(first):
                await run_a.scalar("loss", value, step=step)
            for step, value in enumerate(second):
                await run_b.scalar("loss", value, step=step * 2)
            await run_a.flush(timeout=10)
            await run_b.flush(timeout=10)
            path = f"/w/{WORKSPACE}/runs?runs=run-a,run-b&smooth=0"
            async with dashboard(browser, broker.url, path) as live:
                steps = sorted(set(range(len(first))) | {step * 2 for step in range(len(second))})
                drawn = await wait_for_chart(live.page, "loss", len(steps), ["run-a", "run-b"])
                assert drawn["xs"] == steps
                at = {x: index for index, x in enumerate(drawn["xs"])}
                assert [drawn["lines"]["run-a"][at[s]] for s in range(len(first))] == first
                assert [drawn["lines"]["run-b"][at[s * 2]] for s in range(len(second))] == second
                # Where a run has no point (run-a stops at step 59), its line has a hole.
                assert drawn["lines"]["run-a"][at[120]] is None
                picker = live.page.locator(".run-choice input:checked")
                await expect(picker).to_have_count(2)

                # Unpicking a run takes it off the chart and out of the URL.
                await live.page.locator(".run-choice[data-run=run-b] input").uncheck()
                await expect(live.page).to_have_url(
                    f"{live.base}/w/{WORKSPACE}/runs?runs=run-a&smooth=0"
                )
                drawn = await wait_for_chart(live.page, "loss", len(first), ["run-a"])
                assert drawn["lines"]["run-a"] == first


@pytest.mark.asyncio
async def test_smoothing_changes_the_drawn_line_and_not_the_data() -> None:
    values = losses(120)
    async with running_broker() as broker, chromium() as browser:
        async with Worker(broker.url, WORKSPACE, run_id="run-a") as worker:
            for step, value in enumerate(values):
                await worker.scalar("loss", value, step=step)
            await worker.flush(timeout=10)
            path = f"/w/{WORKSPACE}/runs?runs=run-a&smooth=0.9"
            async with dashboard(browser, broker.url, path) as live:
                labels = ["run-a", "run-a (smoothed)"]
                drawn = await wait_for_chart(live.page, "loss", len(values), labels)
                assert drawn["lines"]["run-a"] == values
                assert drawn["lines"]["run-a (smoothed)"] == pytest.approx(
                    ema_reference(values, 0.9), rel=1e-12
                )

                await live.page.locator("input[name=smooth]").fill("0.5")
                await expect(live.page).to_have_url(
                    f"{live.base}/w/{WORKSPACE}/runs?runs=run-a&smooth=0.5"
                )
                await live.page.wait_for_function(
                    "() => document.querySelector('.chart-controls output').textContent === '0.50'"
                )
                drawn = await wait_for_chart(live.page, "loss", len(values), labels)
                assert drawn["lines"]["run-a"] == values
                smoothed = drawn["lines"]["run-a (smoothed)"]
                assert smoothed == pytest.approx(ema_reference(values, 0.5), rel=1e-12)
                assert smoothed != pytest.approx(ema_reference(values, 0.9), rel=1e-6)

                await live.page.locator("input[name=smooth]").fill("0")
                drawn = await wait_for_chart(live.page, "loss", len(values), ["run-a"])
                assert drawn["lines"]["run-a"] == values


@pytest.mark.asyncio
async def test_the_wall_clock_axis_and_the_hardware_share_one_time_range() -> None:
    start = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)
    values = losses(40)
    async with running_broker() as broker, chromium() as browser:
        async with Worker(broker.url, WORKSPACE, run_id="run-a") as worker:
            for step, value in enumerate(values):
                when = start + datetime.timedelta(seconds=step)
                await worker.publish(
                    schema.Scalar(name="loss", value=value, step=step), create_time=when
                )
            for second in range(0, 50, 5):
                gpu = schema.GpuStats(
                    index=0, utilization_percent=50.0 + second, temperature_c=60.0
                )
                hardware = schema.Hardware(
                    cpu_percent=float(second),
                    memory_used_bytes=4_000_000_000,
                    memory_total_bytes=16_000_000_000,
                    gpus=[gpu],
                )
                await worker.publish(
                    hardware, create_time=start + datetime.timedelta(seconds=second - 5)
                )
            await worker.flush(timeout=10)
            path = f"/w/{WORKSPACE}/runs?runs=run-a&x=time&smooth=0"
            async with dashboard(browser, broker.url, path) as live:
                base = start.timestamp()
                drawn = await wait_for_chart(live.page, "loss", len(values), ["run-a"])
                assert drawn["xs"] == [base + step for step in range(len(values))]
                assert drawn["lines"]["run-a"] == values
                cpu = await wait_for_chart(live.page, "cpu %", 10, ["run-a"])
                assert cpu["lines"]["run-a"] == [float(second) for second in range(0, 50, 5)]
                load = await wait_for_chart(live.page, "gpu0 load %", 10, ["run-a"])
                assert load["lines"]["run-a"] == [50.0 + second for second in range(0, 50, 5)]
                ram = await wait_for_chart(live.page, "ram %", 10, ["run-a"])
                assert ram["lines"]["run-a"] == [25.0] * 10
                # One time range over scalars and hardware: the earliest sample to the latest.
                drawn = await wait_for_chart(live.page, "loss", len(values), ["run-a"])
                assert drawn["x"] == cpu["x"] == {"min": base - 5, "max": base + 40}


@pytest.mark.asyncio
async def test_progress_hyperparameters_and_status_of_the_runs() -> None:
    async with running_broker() as broker, chromium() as browser:
        async with (
            Worker(broker.url, WORKSPACE, run_id="run-a") as run_a,
            Worker(broker.url, WORKSPACE, run_id="run-b") as run_b,
        ):
            await run_a.hyperparameters({"lr": 0.1, "batch": 64, "optimizer": {"name": "adam"}})
            await run_b.hyperparameters({"lr": 0.01, "batch": 64, "optimizer": {"name": "adam"}})
            await run_a.status("phase", "epoch 3/20")
            await run_a.progress("batches", 10, total=40, rate=5.0)
            await run_a.flush(timeout=10)
            await run_b.flush(timeout=10)
            path = f"/w/{WORKSPACE}/runs?runs=run-a,run-b"
            async with dashboard(browser, broker.url, path) as live:
                page = live.page
                diff = page.locator("table.params-diff")
                await expect(diff.locator("caption")).to_have_text("1 of 3 differ")
                changed = diff.locator("tr[data-change=changed]")
                await expect(changed).to_have_count(1)
                await expect(changed).to_have_attribute("data-param", "lr")
                await expect(changed.locator("td").nth(1)).to_have_text("0.1")
                await expect(changed.locator("td").nth(2)).to_have_text("0.01")
                bar = page.locator("[data-progress=batches]")
                await expect(bar.locator(".progress-count")).to_have_text("10/40")
                await expect(bar.locator(".progress-rate")).to_have_text("5.00/s")
                await expect(bar.locator(".progress-eta")).to_have_text("ETA 6s")
                await expect(page.locator("[data-status=phase] td")).to_have_text("epoch 3/20")
                await expect(page.locator("[data-run-status=run-b] td")).to_have_text("online")


HOSTILE = '<img src=x onerror="window.__hacked=1">'


@pytest.mark.asyncio
async def test_names_and_values_from_the_stream_render_as_text() -> None:
    async with running_broker() as broker, chromium() as browser:
        async with Worker(broker.url, WORKSPACE, run_id="run-a") as worker:
            await worker.scalar(HOSTILE, 1.0, step=0)
            await worker.hyperparameters({HOSTILE: "<script>window.__hacked=2</script>"})
            await worker.status("<b>phase</b>", HOSTILE)
            await worker.flush(timeout=10)
            async with dashboard(browser, broker.url, f"/w/{WORKSPACE}/runs?runs=run-a") as live:
                page = live.page
                dialogs: list[str] = []
                page.on("dialog", lambda dialog: dialogs.append(dialog.message))
                await wait_for_chart(page, HOSTILE, 1, ["run-a", "run-a (smoothed)"])
                await expect(page.locator("figure.run-chart figcaption")).to_have_text(HOSTILE)
                await expect(page.locator("table.params-table td").first).to_have_text(HOSTILE)
                await expect(page.locator("table.params-table td").nth(1)).to_have_text(
                    '"<script>window.__hacked=2</script>"'
                )
                await expect(page.locator("table.status-table td").last).to_have_text(HOSTILE)
                assert (
                    await page.locator(".runs-page img, .runs-page script, .runs-page b").count()
                    == 0
                )
                assert await page.evaluate("() => window.__hacked === undefined")
                assert dialogs == []


@pytest.mark.asyncio
async def test_log_y_changes_the_scale_and_leaves_out_only_values_it_cannot_draw() -> None:
    values = [0.0, *losses(30, start=1)]
    async with running_broker() as broker, chromium() as browser:
        async with Worker(broker.url, WORKSPACE, run_id="run-a") as worker:
            for step, value in enumerate(values):
                await worker.scalar("loss", value, step=step)
            await worker.flush(timeout=10)
            path = f"/w/{WORKSPACE}/runs?runs=run-a&smooth=0"
            async with dashboard(browser, broker.url, path) as live:
                drawn = await wait_for_chart(live.page, "loss", len(values), ["run-a"])
                assert not drawn["log"]
                assert drawn["lines"]["run-a"] == values
                await live.page.locator("input[name=log]").check()
                await expect(live.page).to_have_url(
                    f"{live.base}/w/{WORKSPACE}/runs?runs=run-a&log=1&smooth=0"
                )
                await live.page.wait_for_function(
                    "() => document.querySelector('figure.run-chart').uplot.scales.y.distr === 3"
                )
                drawn = await wait_for_chart(live.page, "loss", len(values), ["run-a"])
                assert drawn["log"]
                # Zero has no place on a log axis: a hole; every other point is drawn as sent.
                assert drawn["lines"]["run-a"] == [None, *values[1:]]


RUN_KINDS = {"scalar", "hardware", "hyperparameters", "progress", "status", "presence", "call"}
"""What the run page may ask history for; ``call`` is the actions panel's call history."""


@pytest.mark.asyncio
async def test_the_run_page_reads_its_runs_without_replaying_the_workspace() -> None:
    values = losses(50)
    async with running_broker() as broker, chromium() as browser:
        async with Worker(broker.url, WORKSPACE, run_id="run-a") as worker:
            for line in range(2000):
                await worker.log(f"line {line}")
            for step, value in enumerate(values):
                await worker.scalar("loss", value, step=step)
            await worker.flush(timeout=10)
            frames: list[dict[str, Any]] = []
            requests: list[dict[str, Any]] = []

            def watch(socket: WebSocket) -> None:
                socket.on("framereceived", lambda payload: frames.append(json.loads(payload)))
                socket.on("framesent", lambda payload: requests.append(json.loads(payload)))

            async with dashboard(browser, broker.url, "/") as live:
                live.page.on("websocket", watch)
                await live.goto(f"/w/{WORKSPACE}/runs?runs=run-a&smooth=0")
                drawn = await wait_for_chart(live.page, "loss", len(values), ["run-a"])
                assert drawn["lines"]["run-a"] == values
            histories = [frame for frame in requests if frame["type"] == "history"]
            assert histories, "the page read no history"
            assert all(set(frame.get("kinds", ["every kind"])) <= RUN_KINDS for frame in histories)
            delivered = [
                event
                for frame in frames
                if frame["type"] in ("history_page", "events")
                for event in frame["events"]
            ]
            assert all(event["payload"]["kind"] != "log" for event in delivered)
            assert len(delivered) < 2 * len(values) + 50
