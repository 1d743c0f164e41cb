"""Helpers of the workspace page's live tests: read the log view's rows as the page draws them,
and the states the page shows, for comparison with the store and the Python fold."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from playwright.async_api import Browser, Page, Route, expect

from schema import EventMsg, WorkspaceState
from sdk import Watcher
from tests.dashboard.live import TOKEN_KEY, LivePage, PageProblems, http_base
from tests.dashboard.workspace_fixture import ACTIONS_STUB, actions_module_missing
from tests.support import WAIT_S

ROW_PX = 20
"""The log view's line height (app/views/log.js ROW_PX)."""


@asynccontextmanager
async def workspace_dashboard(
    browser: Browser, broker_url: str, path: str, *, token: str | None = None
) -> AsyncIterator[LivePage]:
    """``tests.dashboard.live.dashboard`` for the workspace page: the same fresh context,
    token and problem watch, and the runs engineer's app/views/actions.js stubbed while the
    tree has none (the page would otherwise log its 404)."""
    context = await browser.new_context()
    context.set_default_timeout(WAIT_S * 1000)
    try:
        if token is not None:
            await context.add_init_script(
                f"window.sessionStorage.setItem({json.dumps(TOKEN_KEY)}, {json.dumps(token)});"
            )
        if actions_module_missing():

            async def stub(route: Route) -> None:
                await route.fulfill(status=200, body=ACTIONS_STUB, content_type="text/javascript")

            await context.route("**/app/views/actions.js", stub)
        page = await context.new_page()
        problems = PageProblems()
        problems.watch(page)
        live = LivePage(page, http_base(broker_url), problems)
        await live.goto(path)
        yield live
    finally:
        await context.close()
    problems.assert_none()


async def stored_events(watcher: Watcher, workspace: str) -> list[EventMsg]:
    """Every stored event of ``workspace``, oldest first, as the broker's history has them."""
    return [event async for event in watcher.history(workspace, after=0)]


async def drawn_log_rows(page: Page) -> list[str]:
    """Every row of the log view's window, top to bottom, as the page draws them: the offset of
    an event row, ``gap:A-B`` of a gap row. The list is virtualised, so it is scrolled through
    and each step waits for the rows at that position to be drawn."""
    summary = page.locator("[data-testid=log-summary]")
    count = int(await summary.get_attribute("data-count") or "0")
    scroll = page.locator("[data-testid=log-scroll]")
    drawn: dict[int, str] = {}
    index = 0
    while index < count:
        await scroll.evaluate("(element, top) => { element.scrollTop = top; }", index * ROW_PX)
        await page.locator(f"[data-testid=log-scroll] [data-index='{index}']").wait_for()
        rows: list[list[Any]] = await page.locator(
            "[data-testid=log-scroll] .log-row"
        ).evaluate_all(
            "rows => rows.map(row => [Number(row.dataset.index),"
            " row.dataset.offset ?? `gap:${row.dataset.gap}`])"
        )
        drawn.update((position, label) for position, label in rows)
        index = max(drawn) + 1
    assert sorted(drawn) == list(range(count)), "the window changed while it was read"
    return [drawn[position] for position in range(count)]


async def shown_past_state(page: Page, offset: int) -> dict[str, Any]:
    """The state time travel shows at ``offset``, once rebuilt, as JSON."""
    past = page.locator(f"[data-testid=past-state][data-offset='{offset}']")
    await expect(past).to_be_visible()
    text = await past.locator("[data-testid=state-json]").text_content()
    shown: dict[str, Any] = json.loads(text or "null")
    return shown


async def as_page_state(page: Page, state: WorkspaceState) -> dict[str, Any]:
    """A state of the Python fold in the page's form: its wire JSON through app/fold.js's
    stateFromWire, which fills in the defaults the wire omits."""
    wire = json.loads(msgspec.json.encode(state))
    normal: dict[str, Any] = await page.evaluate(
        "async (wire) => (await import('/app/fold.js')).stateFromWire(wire)", wire
    )
    return normal
