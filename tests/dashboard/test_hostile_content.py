"""Hostile content on the workspace page: every string a worker controls (event messages, log
lines and loggers, details, status values, the catch reason, client names, action
descriptions) holding `<script>`, `<img onerror=...>` or a `javascript:` URL renders as text,
no script runs (no dialog, no console error), and only http(s) URLs become links, with
rel="noopener noreferrer". On fixture data in the browser harness; test_hostile_content_live.py
does the same with a real worker."""

from __future__ import annotations

from playwright.sync_api import Browser, Dialog, Page, expect

from tests.dashboard.workspace_fixture import fixture_page

SCRIPT = "<script>alert('xss')</script>"
IMAGE = "<img src=x onerror=alert('xss')>"
SCRIPT_URL = "javascript:alert('xss')"


def assert_markup_is_text(page: Page) -> None:
    workspace = page.get_by_test_id("workspace-page")
    expect(workspace.locator("script")).to_have_count(0)
    expect(workspace.locator("img")).to_have_count(0)
    expect(page.locator("a[href^='javascript']")).to_have_count(0)
    expect(page.locator("[onerror]")).to_have_count(0)


def test_markup_from_the_stream_renders_as_text_and_no_script_runs(browser: Browser) -> None:
    dialogs: list[str] = []
    with fixture_page(browser, scenario="hostile") as (page, problems):
        page.on("dialog", lambda dialog: record(dialogs, dialog))
        details = page.get_by_test_id("details").first
        expect(details.locator("dd[data-key=workflow]")).to_have_text(SCRIPT)
        expect(details.locator("dd[data-key=current_host]")).to_have_text(IMAGE)
        expect(details.locator("dd[data-key=deployment_url]")).to_have_text(SCRIPT_URL)
        expect(details.locator("a")).to_have_count(0)
        expect(page.get_by_test_id("reason")).to_have_text(SCRIPT)
        expect(page.get_by_test_id("by")).to_have_text(IMAGE)
        log = page.get_by_test_id("log-scroll")
        expect(log.get_by_text(f"{IMAGE}: {SCRIPT}", exact=True)).to_be_visible()
        expect(log.get_by_text(f"phase = {SCRIPT_URL}", exact=True)).to_be_visible()
        timeline = page.get_by_test_id("timeline")
        expect(timeline.get_by_text(IMAGE, exact=True)).to_be_visible()
        assert_markup_is_text(page)
        problems.assert_none()
    assert dialogs == []


def test_only_http_and_https_urls_become_links_that_open_without_opener(
    browser: Browser,
) -> None:
    with fixture_page(browser, scenario="basic") as (page, problems):
        link = page.get_by_test_id("details").first.locator("a")
        expect(link).to_have_attribute("href", "https://ci.example/build/7")
        expect(link).to_have_attribute("rel", "noopener noreferrer")
        problems.assert_none()


def record(dialogs: list[str], dialog: Dialog) -> None:
    dialogs.append(dialog.message)
    dialog.dismiss()
