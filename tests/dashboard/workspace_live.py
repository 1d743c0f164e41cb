"""Helpers of the workspace page's live tests: read the log view's rows as the page draws them,
and the states the page shows, for comparison with the store and the Python fold."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from playwright.async_api import Page, expect

from schema import EventMsg, WorkspaceState
from sdk import Watcher
from tests.dashboard.workspace_fixture import ROW_PX


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
