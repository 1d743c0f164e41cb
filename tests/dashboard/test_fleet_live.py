"""The fleet view against a real broker, real SDK workers and a real Chromium."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from broker.testing import running_broker
from sdk import Worker
from tests.dashboard.live import chromium, dashboard


@pytest.mark.asyncio
async def test_the_page_connects_and_lists_the_workspaces_of_running_workers() -> None:
    async with running_broker() as broker, chromium() as browser:
        async with Worker(broker.url, "deploy-prod") as worker:
            await worker.event("started")
            async with dashboard(browser, broker.url, "/") as live:
                status = live.page.get_by_test_id("connection-state")
                await expect(status).to_have_text("connected")
                await expect(live.page.get_by_test_id("roles")).to_contain_text("operator")
                fleet = live.page.get_by_test_id("fleet")
                await expect(fleet.locator("[data-workspace='deploy-prod']")).to_be_visible()
