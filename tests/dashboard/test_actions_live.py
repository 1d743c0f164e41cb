"""The actions panel against a real broker, real SDK workers and a real Chromium: a form per
declared action calls the worker and shows its result; a failing or badly called action shows
the failure; the workspace's calls are listed; a form is disabled with its reason when the worker is
offline or the token may not call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Locator, Page, expect

from broker._tokens import SqliteTokenStore
from broker.testing import running_broker
from sdk import BadCallError, Watcher, Worker
from tests.dashboard.live import LivePage, chromium, dashboard

WORKSPACE = "train-actions"
PAGE = f"/w/{WORKSPACE}/runs?runs=run-a"


def training_worker(url: str, settings: dict[str, float], token: str | None = None) -> Worker:
    """A worker offering set_lr as examples/training_worker.py does."""
    worker = Worker(url, WORKSPACE, run_id="run-a", token=token)

    @worker.action("set_lr", description="change the learning rate from the next step on")
    def set_lr(value: float) -> dict[str, float]:
        if not 0 < value < 10:
            raise ValueError(f"learning rate {value} is out of range")
        old, settings["lr"] = settings["lr"], value
        return {"old": old, "new": value}

    return worker


def action_form(page: Page) -> Locator:
    return page.locator("form.action-form[data-action=set_lr][data-run=run-a]")


async def call(form: Locator, value: str) -> None:
    await form.locator("input[name=value]").fill(value)
    await form.get_by_role("button", name="Call").click()


@asynccontextmanager
async def actions_page(url: str, token: str | None = None) -> AsyncIterator[LivePage]:
    async with chromium() as browser, dashboard(browser, url, PAGE, token=token) as live:
        yield live


@pytest.mark.asyncio
async def test_an_action_form_calls_the_worker_and_shows_its_result() -> None:
    settings = {"lr": 0.1}
    async with running_broker() as broker:
        async with (
            training_worker(broker.url, settings) as worker,
            actions_page(broker.url) as live,
        ):
            await worker.connected()
            form = action_form(live.page)
            await expect(form.locator(".action-description")).to_have_text(
                "change the learning rate from the next step on"
            )
            await call(form, "0.01")
            outcome = form.locator("pre[data-outcome=ok]")
            await expect(outcome).to_have_text('{\n  "old": 0.1,\n  "new": 0.01\n}')
            assert settings == {"lr": 0.01}
            history = live.page.locator("table.call-history tbody tr")
            await expect(history).to_have_count(1)
            await expect(history.first).to_have_attribute("data-outcome", "ok")
            await expect(history.first.locator("td").nth(3)).to_have_text('{"value":0.01}')


@pytest.mark.asyncio
async def test_a_failing_or_badly_called_action_shows_the_failure() -> None:
    settings = {"lr": 0.1}
    async with running_broker() as broker:
        async with (
            training_worker(broker.url, settings) as worker,
            actions_page(broker.url) as live,
        ):
            await worker.connected()
            form = action_form(live.page)
            await call(form, "50")
            failed = form.locator("pre[data-outcome=failed]")
            await expect(failed).to_have_text("ValueError: learning rate 50.0 is out of range")
            noted = await live.page.evaluate(
                "(name) => window.pierhead.store.failures.get(name)?.message", WORKSPACE
            )
            assert noted == (
                "action set_lr of run-a failed: ValueError: learning rate 50.0 is out of range"
            )

            # The form's number input cannot send text; another client's bad call is listed.
            async with Watcher(broker.url) as other:
                with pytest.raises(BadCallError, match="bad arguments for set_lr"):
                    await other.call(WORKSPACE, "run-a", "set_lr", {"value": "fast"})
            assert settings == {"lr": 0.1}
            outcomes = live.page.locator("table.call-history tbody tr")
            await expect(outcomes).to_have_count(2)
            await expect(outcomes.first).to_have_attribute("data-outcome", "bad_call")
            await expect(outcomes.first).to_contain_text("pierhead.bad_call: bad arguments")
            await expect(outcomes.last).to_have_attribute("data-outcome", "failed")


@pytest.mark.asyncio
async def test_the_form_of_a_worker_gone_offline_is_disabled_with_the_reason() -> None:
    settings = {"lr": 0.1}
    # A grace period no test waits out: the run stays listed, offline, for the assertions.
    async with running_broker(mutex_grace_s=3600) as broker, actions_page(broker.url) as live:
        async with training_worker(broker.url, settings) as worker:
            await worker.connected()
            form = action_form(live.page)
            await expect(form.get_by_role("button", name="Call")).to_be_enabled()
        await expect(form.locator(".action-refusal")).to_have_text(
            "the worker that offers it is offline"
        )
        await expect(form.get_by_role("button", name="Call")).to_be_disabled()


@pytest.mark.asyncio
async def test_a_token_without_the_operator_role_sees_the_form_disabled(tmp_path: Path) -> None:
    tokens = SqliteTokenStore(tmp_path)
    _, worker_token = tokens.create("trainer", ["worker"])
    _, watcher_token = tokens.create("viewer", ["watcher"])
    tokens.close()
    settings = {"lr": 0.1}
    async with running_broker(tmp_path, auth="token") as broker:
        async with (
            training_worker(broker.url, settings, token=worker_token) as worker,
            actions_page(broker.url, token=watcher_token) as live,
        ):
            await worker.connected()
            form = action_form(live.page)
            await expect(form.locator(".action-refusal")).to_have_text(
                "your token lacks the operator role, which calling an action needs"
            )
            await expect(form.get_by_role("button", name="Call")).to_be_disabled()
            await expect(form.locator("input[name=value]")).to_be_disabled()


HOSTILE = '<img src=x onerror="window.__hacked=1">'


@pytest.mark.asyncio
async def test_action_descriptions_results_and_failures_render_as_text() -> None:
    async with running_broker() as broker:
        worker = Worker(broker.url, WORKSPACE, run_id="run-a")

        @worker.action("echo", description=HOSTILE)
        def echo(text: str) -> str:
            if text.startswith("fail"):
                raise RuntimeError(HOSTILE)
            return text

        async with worker, actions_page(broker.url) as live:
            await worker.connected()
            page = live.page
            dialogs: list[str] = []
            page.on("dialog", lambda dialog: dialogs.append(dialog.message))
            form = page.locator("form.action-form[data-action=echo]")
            await expect(form.locator(".action-description")).to_have_text(HOSTILE)
            await form.locator("input[name=text]").fill(HOSTILE)
            await form.get_by_role("button", name="Call").click()
            await expect(form.locator("pre[data-outcome=ok]")).to_have_text(
                '"<img src=x onerror=\\"window.__hacked=1\\">"'
            )
            await form.locator("input[name=text]").fill("fail")
            await form.get_by_role("button", name="Call").click()
            await expect(form.locator("pre[data-outcome=failed]")).to_have_text(
                f"RuntimeError: {HOSTILE}"
            )
            assert await page.locator(".actions-panel img, .actions-panel script").count() == 0
            assert await page.evaluate("() => window.__hacked === undefined")
            assert dialogs == []
