"""The workspace page against real brokers, real SDK workers and a real Chromium: the log
view after a broker SIGKILL and restart holds exactly the stored events, a retention gap is a
gap, time travel shows what the Python fold computes, and the Catch/Release buttons follow the
stream."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from playwright.async_api import expect

from broker.testing import BrokerProcess, running_broker
from schema import WorkspaceDetails, fold_events, new_workspace_state
from sdk import Watcher, Worker
from tests.dashboard.live import chromium, dashboard
from tests.dashboard.workspace_live import (
    as_page_state,
    drawn_log_rows,
    shown_past_state,
    stored_events,
)
from tests.support import WAIT_S, free_port


@pytest.mark.asyncio
async def test_the_log_view_ends_with_exactly_the_stored_events_after_a_sigkill_and_restart(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    async with AsyncExitStack() as stack, chromium() as browser:
        first = BrokerProcess(data, "--port", str(free_port()))
        await first.start()
        stack.push_async_callback(first.close)
        async with Worker(first.url, "deploy-prod") as worker:
            for index in range(120):
                await worker.log(f"before {index}", "warning" if index % 7 == 0 else "info")
            await worker.flush()
            async with dashboard(browser, first.url, "/w/deploy-prod") as live:
                page = live.page
                summary = page.locator("[data-testid=log-summary]")
                async with Watcher(first.url) as watcher:
                    before = await stored_events(watcher, "deploy-prod")
                await expect(summary).to_have_attribute("data-last", str(before[-1].offset))

                live.expect_broker_down()
                first.kill()
                await first.wait()
                second = BrokerProcess(data, "--port", str(first.port))
                await second.start()
                stack.push_async_callback(second.close)
                for index in range(80):
                    await worker.log(f"after {index}")
                await worker.flush()

                async with Watcher(second.url) as watcher:
                    stored = await stored_events(watcher, "deploy-prod")
                await expect(page.get_by_test_id("status")).to_have_attribute("data-state", "open")
                await expect(page.locator("[data-testid=ws-resumed]")).to_be_visible()
                await expect(summary).to_have_attribute("data-last", str(stored[-1].offset))
                rows = await drawn_log_rows(page)
                assert rows == [str(event.offset) for event in stored]
                assert len(stored) > 200  # both brokers' events, and the presence changes


@pytest.mark.asyncio
async def test_a_retention_gap_is_shown_as_a_gap_with_its_range() -> None:
    async with (
        running_broker(retention_events=50, retention_interval_s=3600.0) as broker,
        chromium() as browser,
    ):
        async with Worker(broker.url, "train-a") as worker:
            for index in range(200):
                await worker.log(f"line {index}")
            await worker.flush()
            assert broker.broker is not None
            await broker.broker.apply_retention()
            async with Watcher(broker.url) as watcher:
                stored = await stored_events(watcher, "train-a")
            first = stored[0].offset
            assert first > 1
            async with dashboard(browser, broker.url, "/w/train-a") as live:
                page = live.page
                gap = page.locator(f"[data-testid=log-scroll] [data-gap='1-{first - 1}']")
                summary = page.locator("[data-testid=log-summary]")
                await expect(summary).to_have_attribute("data-last", str(stored[-1].offset))
                rows = await drawn_log_rows(page)
                assert rows == [f"gap:1-{first - 1}"] + [str(event.offset) for event in stored]
                await page.locator("[data-testid=log-scroll]").evaluate("e => { e.scrollTop = 0; }")
                await expect(gap).to_contain_text(f"offsets 1\N{EN DASH}{first - 1} missing")


@pytest.mark.asyncio
async def test_time_travel_shows_the_state_the_python_fold_computes_at_each_offset() -> None:
    async with running_broker() as broker, chromium() as browser:
        details = WorkspaceDetails(workflow="ShipIt", current_host="db-1")
        async with (
            Worker(broker.url, "deploy-prod", details=details) as worker,
            Watcher(broker.url) as operator,
        ):
            await worker.status("phase", "starting")
            await worker.progress("hosts", 1, total=4)
            await worker.event("db-1 done", "success")
            await worker.flush()
            await operator.catch("deploy-prod", "db-2 looks odd")
            await worker.wait_caught()
            await worker.log("waiting")
            await worker.status("phase", "paused")
            await worker.flush()
            await operator.release("deploy-prod")
            await worker.wait_released()
            async with worker.mutex():
                await worker.progress("hosts", 3, total=4)
                await worker.event("db-3 failed", "error")
                await worker.flush()
            await worker.status("phase", "done")
            await worker.flush()

            events = await stored_events(operator, "deploy-prod")
            (live_state,) = await operator.workspaces("deploy-prod")
            empty = new_workspace_state(
                "deploy-prod", epoch=live_state.epoch, created=live_state.created
            )
            offsets = sorted({1, 3, len(events) // 2, len(events) - 2, len(events)})
            async with dashboard(browser, broker.url, f"/w/deploy-prod?at={offsets[0]}") as live:
                page = live.page
                for position, offset in enumerate(offsets):
                    if position > 0:
                        # Scrubbing: the offset box, as an operator types into it.
                        box = page.locator("[data-testid=offset-input]")
                        await box.fill(str(offset))
                        await box.dispatch_event("change")
                    expected = fold_events(empty, [e for e in events if e.offset <= offset])
                    shown = await shown_past_state(page, offset)
                    assert shown == await as_page_state(page, expected), f"at offset {offset}"
                    await expect(page).to_have_url(live.base + f"/w/deploy-prod?at={offset}")


@pytest.mark.asyncio
async def test_catch_from_the_page_is_pending_until_the_stream_shows_it() -> None:
    async with running_broker() as broker, chromium() as browser:
        async with Worker(broker.url, "deploy-prod") as worker:
            await worker.event("started")
            await worker.flush()
            async with dashboard(browser, broker.url, "/w/deploy-prod") as live:
                page = live.page
                panel = page.locator("[data-testid=semaphores]")
                await panel.locator("[data-testid=catch]").click()
                await panel.locator("[data-testid=catch-reason]").fill("<b>db-3</b> is odd")
                await panel.locator("[data-testid=catch-confirm]").click()
                await asyncio.wait_for(worker.wait_caught(), WAIT_S)
                assert worker.semaphores.reason == "<b>db-3</b> is odd"
                await expect(panel).to_have_attribute("data-caught", "true")
                await expect(panel.locator("[data-testid=reason]")).to_have_text(
                    "<b>db-3</b> is odd"
                )
                audit = page.locator("[data-testid=audit] tr[data-what=caught]")
                await expect(audit).to_have_count(1)
                await panel.locator("[data-testid=release]").click()
                await asyncio.wait_for(worker.wait_released(), WAIT_S)
                await expect(panel).to_have_attribute("data-caught", "false")
                await expect(
                    page.locator("[data-testid=audit] tr[data-what=released]")
                ).to_have_count(1)
