"""The workspace page's audit and actions panel from the stream, against a real broker, real
SDK clients and a real Chromium: a mutex break names the admin token that broke it, the call
history shows calls other clients made, and an action's typed parameters get typed inputs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from playwright.async_api import expect

from broker._tokens import SqliteTokenStore
from broker.testing import running_broker
from sdk import ActionFailedError, Watcher, Worker
from tests.dashboard.live import chromium, dashboard
from tests.support import WAIT_S

WORKSPACE = "deploy-audit"


@pytest.mark.asyncio
async def test_the_audit_shows_a_break_with_the_token_that_broke_it(tmp_path: Path) -> None:
    tokens = SqliteTokenStore(tmp_path)
    _, admin = tokens.create("alice-admin", ["watcher", "operator", "admin"])
    _, worker_token = tokens.create("trainer", ["worker"])
    tokens.close()
    async with (
        running_broker(tmp_path, auth="token") as broker,
        chromium() as browser,
        Worker(broker.url, WORKSPACE, run_id="holder", token=worker_token) as worker,
    ):
        async with worker.mutex() as lease:
            async with dashboard(browser, broker.url, f"/w/{WORKSPACE}", token=admin) as live:
                page = live.page
                mutex = page.get_by_test_id("mutex")
                await expect(mutex.get_by_test_id("holder")).to_have_text("holder")
                audit = page.get_by_test_id("audit")
                granted = audit.locator("tr[data-what='mutex granted']")
                await expect(granted.get_by_test_id("who")).to_have_text("holder")
                await mutex.get_by_test_id("break").click()
                await mutex.get_by_test_id("break-confirm").click()
                broken = audit.locator("tr[data-what='mutex broken']")
                await expect(broken.get_by_test_id("who")).to_have_text("alice-admin")
                await expect(broken).to_contain_text("holder (fence 1)")
                await expect(mutex.get_by_test_id("holder")).to_have_text("free")
                await expect(mutex.get_by_test_id("mutex-change")).to_have_text(
                    "broken by alice-admin"
                )
            assert await asyncio.wait_for(lease.wait_lost(), WAIT_S) == "broken"


@pytest.mark.asyncio
async def test_the_call_history_lists_calls_other_clients_made() -> None:
    async with running_broker() as broker, chromium() as browser:
        worker = Worker(broker.url, WORKSPACE, run_id="run-a")

        @worker.action("skip_host")
        def skip_host(host: str) -> str:
            if host == "db-9":
                raise KeyError(host)
            return host

        async with worker, Watcher(broker.url, client="cli-of-bob") as bob:
            await worker.connected()
            assert await bob.call(WORKSPACE, "run-a", "skip_host", {"host": "db-5"}) == "db-5"
            async with dashboard(browser, broker.url, f"/w/{WORKSPACE}") as live:
                history = live.page.locator("table.call-history tbody tr")
                # The call made before the page opened comes from the stored history...
                await expect(history).to_have_count(1)
                await expect(history.first.get_by_test_id("caller")).to_have_text("cli-of-bob")
                # ...and one made while it is open, live.
                with pytest.raises(ActionFailedError, match="KeyError"):
                    await bob.call(WORKSPACE, "run-a", "skip_host", {"host": "db-9"})
                await expect(history).to_have_count(2)
                newest = history.first
                await expect(newest).to_have_attribute("data-outcome", "failed")
                await expect(newest.get_by_test_id("caller")).to_have_text("cli-of-bob")
                await expect(newest).to_contain_text("KeyError")
                await expect(newest).to_contain_text('{"host":"db-9"}')
                audit = live.page.get_by_test_id("audit")
                calls = audit.locator("tr[data-what=call]")
                await expect(calls).to_have_count(2)
                await expect(calls.first.get_by_test_id("who")).to_have_text("cli-of-bob")
                await expect(calls.first.get_by_test_id("action")).to_have_text("skip_host")
                await expect(calls.first).to_have_attribute("data-outcome", "failed")


@pytest.mark.asyncio
async def test_typed_parameters_get_a_number_input_and_a_checkbox() -> None:
    received: list[tuple[float, bool, str]] = []
    async with running_broker() as broker, chromium() as browser:
        worker = Worker(broker.url, WORKSPACE, run_id="run-a")

        @worker.action("tune")
        def tune(rate: float, fast: bool = False, label: str = "base") -> str:
            received.append((rate, fast, label))
            return "tuned"

        async with worker:
            await worker.connected()
            async with dashboard(browser, broker.url, f"/w/{WORKSPACE}") as live:
                form = live.page.locator("form.action-form[data-action=tune][data-run=run-a]")
                rate = form.locator("input[name=rate]")
                fast = form.locator("input[name=fast]")
                label = form.locator("input[name=label]")
                await expect(rate).to_have_attribute("type", "number")
                await expect(fast).to_have_attribute("type", "checkbox")
                await expect(fast).not_to_be_checked()
                await expect(label).to_have_attribute("type", "text")
                await expect(label).to_have_attribute("placeholder", 'default: "base"')
                await rate.fill("0.25")
                await fast.check()
                await form.get_by_role("button", name="Call").click()
                await expect(form.locator("pre[data-outcome=ok]")).to_have_text('"tuned"')
                history = live.page.locator("table.call-history tbody tr")
                await expect(history.first).to_contain_text('{"rate":0.25,"fast":true}')
    assert received == [(0.25, True, "base")]
