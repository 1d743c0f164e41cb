"""Hostile content from a real worker through a real broker: the workspace page shows every
string as text and runs no script (see test_hostile_content.py for the fixture cases)."""

from __future__ import annotations

import pytest
from playwright.async_api import Dialog, expect

from broker.testing import running_broker
from schema import WorkspaceDetails
from sdk import Watcher, Worker
from tests.dashboard.live import chromium, dashboard

SCRIPT = "<script>alert('xss')</script>"
IMAGE = "<img src=x onerror=alert('xss')>"
SCRIPT_URL = "javascript:alert('xss')"


@pytest.mark.asyncio
async def test_hostile_strings_from_a_real_worker_render_as_text() -> None:
    dialogs: list[str] = []

    async def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    details = WorkspaceDetails(deployment_url=SCRIPT_URL, workflow=SCRIPT, current_host=IMAGE)
    async with running_broker() as broker, chromium() as browser:
        worker = Worker(broker.url, "hostile", details=details, client=IMAGE)

        @worker.action("skip_host", description=SCRIPT)
        def skip_host(host: str) -> str:
            return host

        async with worker, Watcher(broker.url) as operator:
            await worker.event(IMAGE, "error")
            await worker.log(SCRIPT, "error", logger=IMAGE)
            await worker.status("phase", SCRIPT_URL)
            await worker.flush()
            await operator.catch("hostile", SCRIPT)
            await worker.wait_caught()
            async with dashboard(browser, broker.url, "/w/hostile") as live:
                page = live.page
                page.on("dialog", on_dialog)
                details_view = page.get_by_test_id("details").first
                await expect(details_view.locator("dd[data-key=workflow]")).to_have_text(SCRIPT)
                await expect(details_view.locator("dd[data-key=deployment_url]")).to_have_text(
                    SCRIPT_URL
                )
                await expect(page.get_by_test_id("reason")).to_have_text(SCRIPT)
                log = page.get_by_test_id("log-scroll")
                await expect(log.get_by_text(f"{IMAGE}: {SCRIPT}", exact=True)).to_be_visible()
                await expect(log.get_by_text(IMAGE, exact=True)).to_be_visible()
                workers = page.get_by_test_id("state-workers").first
                await expect(workers).to_contain_text(IMAGE)
                workspace = page.get_by_test_id("workspace-page")
                await expect(workspace.locator("script")).to_have_count(0)
                await expect(workspace.locator("img")).to_have_count(0)
                await expect(page.locator("a[href^='javascript']")).to_have_count(0)
                await expect(page.locator("[onerror]")).to_have_count(0)
    assert dialogs == []
