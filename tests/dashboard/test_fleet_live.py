"""The fleet view against a real broker, real SDK workers and a real Chromium: lanes and
counts, Catch and Release from the page reaching the worker, roles with a watcher-only token,
a forged frame from the page's console refused, and the login box."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from playwright.async_api import Locator, Page, expect

from broker._tokens import SqliteTokenStore
from broker.testing import running_broker
from sdk import Watcher, Worker
from tests.dashboard.live import chromium, dashboard
from tests.support import WAIT_S


def row(page: Page, workspace: str) -> Locator:
    return page.locator(f"tr[data-workspace='{workspace}']")


async def expect_lane(page: Page, workspace: str, lane: str) -> None:
    await expect(
        page.get_by_test_id(f"lane-{lane}").locator(f"tr[data-workspace='{workspace}']")
    ).to_be_visible()


@pytest.mark.asyncio
async def test_the_fleet_shows_every_workspace_in_its_lane_with_counts() -> None:
    async with running_broker() as broker, chromium() as browser:
        gone = Worker(broker.url, "deploy-gone")
        async with gone:
            await gone.event("started")
            await gone.flush()
        async with (
            Worker(broker.url, "deploy-ok") as healthy,
            Worker(broker.url, "deploy-broken") as broken,
            Worker(broker.url, "deploy-held") as held,
            Watcher(broker.url) as operator,
        ):
            await healthy.progress("hosts", 3, total=12)
            await healthy.event("db-3 done", "success")
            await broken.event("db-9 failed", "error")
            await held.event("waiting")
            await operator.catch("deploy-held", "investigating")
            await held.wait_caught()
            for worker in (healthy, broken, held):
                await worker.flush()

            async with dashboard(browser, broker.url, "/") as live:
                page = live.page
                await expect(page.get_by_test_id("count-attention")).to_have_text("2")
                await expect(page.get_by_test_id("count-active")).to_have_text("1")
                await expect(page.get_by_test_id("count-quiet")).to_have_text("1")
                await expect_lane(page, "deploy-broken", "attention")
                await expect_lane(page, "deploy-held", "attention")
                await expect_lane(page, "deploy-ok", "active")
                await expect_lane(page, "deploy-gone", "quiet")

                ok = row(page, "deploy-ok")
                await expect(ok.get_by_test_id("progress")).to_have_text("hosts 3/12")
                await expect(ok.get_by_test_id("workers")).to_have_text(healthy.run_id)
                await expect(ok.get_by_test_id("last-event")).to_have_attribute(
                    "data-severity", "success"
                )
                await expect(row(page, "deploy-held").get_by_test_id("caught")).to_contain_text(
                    "caught: investigating"
                )
                await expect(
                    row(page, "deploy-broken").get_by_test_id("attention")
                ).to_contain_text("last event is an error")

                # Search is kept in the URL, and the counts follow it.
                await page.get_by_test_id("fleet-search").fill("broken")
                await expect(page).to_have_url(live.base + "/?q=broken")
                await expect(page.get_by_test_id("count-attention")).to_have_text("1")
                await expect(page.get_by_test_id("count-active")).to_have_text("0")
                await live.goto("/?q=deploy-o")
                await expect(page.get_by_test_id("count-active")).to_have_text("1")
                await expect(page.get_by_test_id("count-attention")).to_have_text("0")


@pytest.mark.asyncio
async def test_catch_with_a_reason_from_the_page_reaches_the_worker_and_release_likewise() -> None:
    async with running_broker() as broker, chromium() as browser:
        async with Worker(broker.url, "deploy-prod") as worker:
            await worker.event("started")
            await worker.flush()
            async with dashboard(browser, broker.url, "/") as live:
                page = live.page
                await expect_lane(page, "deploy-prod", "active")
                prod = row(page, "deploy-prod")
                await prod.get_by_test_id("catch").click()
                await prod.get_by_test_id("catch-reason").fill("db-3 looks <b>odd</b>")
                await prod.get_by_test_id("catch-confirm").click()

                await asyncio.wait_for(worker.wait_caught(), WAIT_S)
                assert worker.semaphores.reason == "db-3 looks <b>odd</b>"
                await expect_lane(page, "deploy-prod", "attention")
                await expect(prod.get_by_test_id("caught")).to_contain_text(
                    "caught: db-3 looks <b>odd</b>"
                )
                await expect(prod.get_by_test_id("release")).to_be_enabled()

                await prod.get_by_test_id("release").click()
                await asyncio.wait_for(worker.wait_released(), WAIT_S)
                await expect_lane(page, "deploy-prod", "active")
                await expect(prod.get_by_test_id("catch")).to_be_enabled()


@pytest.mark.asyncio
async def test_the_keys_of_pierhead_watch_select_catch_and_release() -> None:
    async with running_broker() as broker, chromium() as browser:
        async with (
            Worker(broker.url, "train-a") as first,
            Worker(broker.url, "train-b") as second,
        ):
            for worker in (first, second):
                await worker.event("started")
                await worker.flush()
            async with dashboard(browser, broker.url, "/") as live:
                page = live.page
                await expect(page.get_by_test_id("count-active")).to_have_text("2")
                await expect(row(page, "train-a")).to_have_attribute("aria-selected", "true")
                await page.keyboard.press("ArrowDown")
                await expect(row(page, "train-b")).to_have_attribute("aria-selected", "true")
                await page.keyboard.press("c")
                await page.get_by_test_id("catch-reason").fill("from the keys")
                await page.keyboard.press("Enter")
                await asyncio.wait_for(second.wait_caught(), WAIT_S)
                assert not first.semaphores.caught
                await expect_lane(page, "train-b", "attention")
                # The caught row moved up: the selection stays on it.
                await expect(row(page, "train-b")).to_have_attribute("aria-selected", "true")
                await page.keyboard.press("r")
                await asyncio.wait_for(second.wait_released(), WAIT_S)
                await expect_lane(page, "train-b", "active")

                await page.keyboard.press("/")
                await page.keyboard.type("b")
                await expect(page).to_have_url(live.base + "/?q=b")
                await expect(page.get_by_test_id("count-active")).to_have_text("1")
                await page.keyboard.press("Escape")
                await expect(page).to_have_url(live.base + "/")


def make_tokens(data: Path) -> dict[str, str]:
    store = SqliteTokenStore(data)
    try:
        return {
            name: store.create(name, roles, "*")[1]
            for name, roles in [
                ("looker", ["watcher"]),
                ("ops", ["watcher", "operator"]),
                ("ci", ["worker"]),
            ]
        }
    finally:
        store.close()


@pytest.mark.asyncio
async def test_a_watcher_only_token_sees_the_buttons_disabled_and_a_forged_frame_is_refused(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    tokens = make_tokens(data)
    async with running_broker(data, auth="token") as broker, chromium() as browser:
        async with Worker(broker.url, "deploy-prod", token=tokens["ci"]) as worker:
            await worker.event("started")
            await worker.flush()
            async with dashboard(browser, broker.url, "/", token=tokens["looker"]) as live:
                page = live.page
                prod = row(page, "deploy-prod")
                await expect(page.get_by_test_id("roles")).to_have_text("roles: watcher")
                catch = prod.get_by_test_id("catch")
                await expect(catch).to_be_disabled()
                await expect(catch).to_have_attribute(
                    "title", "needs the operator role (this token has: watcher)"
                )
                await expect(prod.get_by_test_id("disabled-reason")).to_have_text(
                    "needs the operator role (this token has: watcher)"
                )

                # A frame forged on the page's own session, and one on a new socket.
                code = await page.evaluate(
                    """() => window.pierhead.connection
                        .request({type: "catch", workspace: "deploy-prod", reason: "forged"})
                        .then(() => "accepted", (error) => error.code)"""
                )
                assert code == "forbidden"
                raw = await page.evaluate(
                    """(token) => new Promise((resolve) => {
                        const socket = new WebSocket(`ws://${location.host}/`);
                        socket.onopen = () => socket.send(JSON.stringify(
                            {type: "hello", protocol: 1, role: "watcher", token}));
                        socket.onmessage = (message) => {
                            const frame = JSON.parse(message.data);
                            if (frame.type === "welcome") {
                                socket.send(JSON.stringify({type: "release", id: 1,
                                    workspace: "deploy-prod"}));
                            } else if (frame.id === 1) {
                                socket.close();
                                resolve(frame.type === "error" ? frame.code : frame.type);
                            }
                        };
                    })""",
                    tokens["looker"],
                )
                assert raw == "forbidden"

                # A refusal through the page's own button path is shown, not swallowed.
                await page.evaluate(
                    """() => window.pierhead.store.catchWorkspace("deploy-prod", "forged")
                        .catch(() => null)"""
                )
                await expect(prod.get_by_test_id("failure")).to_contain_text("forbidden")
                await expect_lane(page, "deploy-prod", "attention")
                assert not worker.semaphores.caught


@pytest.mark.asyncio
async def test_the_login_box_asks_for_a_token_when_the_broker_closes_4001(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    tokens = make_tokens(data)
    async with running_broker(data, auth="token") as broker, chromium() as browser:
        async with dashboard(browser, broker.url, "/") as live:
            page = live.page
            login = page.get_by_test_id("login")
            await expect(login).to_contain_text("4001")
            await expect(page.get_by_test_id("connection-state")).to_have_text("disconnected")
            await login.locator("input[name='token']").fill(tokens["ops"])
            await login.get_by_role("button", name="sign in").click()
            await expect(page.get_by_test_id("connection-state")).to_have_text("connected")
            await expect(page.get_by_test_id("roles")).to_have_text("roles: operator, watcher")
            stored = await page.evaluate("() => sessionStorage.getItem('pierhead.token')")
            assert stored == tokens["ops"]
            assert tokens["ops"] not in page.url
