"""The page survives its broker: SIGKILL the broker process while the page is open, restart it
on the same port and data, and the page reconnects by itself and resumes the fleet from its
cursors (no reload, no refetch of everything)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import expect

from broker.testing import broker_process
from sdk import Worker
from tests.dashboard.live import chromium, dashboard
from tests.support import free_port


@pytest.mark.asyncio
async def test_the_page_reconnects_and_resumes_after_the_broker_is_killed_and_restarted(
    tmp_path: Path,
) -> None:
    data, port = tmp_path / "data", free_port()
    async with broker_process(data, "--port", str(port)) as first, chromium() as browser:
        async with Worker(first.url, "deploy-prod", reconnect_max_s=0.5) as worker:
            await worker.event("before the kill")
            await worker.flush()
            async with dashboard(browser, first.url, "/") as live:
                page = live.page
                state = page.get_by_test_id("connection-state")
                event = page.locator("tr[data-workspace='deploy-prod']").get_by_test_id(
                    "last-event"
                )
                await expect(state).to_have_text("connected")
                await expect(event).to_have_text("before the kill")
                # While the broker is down, the browser reports each refused attempt.
                live.expect_broker_down()

                first.kill()
                await first.wait()
                await expect(state).to_have_text("reconnecting…")

                async with broker_process(data, "--port", str(port)) as second:
                    assert second.url == first.url
                    await expect(state).to_have_text("connected")
                    await expect(page.get_by_test_id("resumed")).to_contain_text(
                        "resumed at offset"
                    )
                    await worker.event("after the restart", "warning")
                    await worker.flush()
                    await expect(event).to_have_text("after the restart")
                    await expect(event).to_have_attribute("data-severity", "warning")
                    # The same page, never reloaded: its first connection's object is still
                    # the one that resumed.
                    resumes = await page.evaluate("() => window.pierhead.store.resumed !== null")
                    assert resumes
