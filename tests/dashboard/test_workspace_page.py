"""The workspace page on fixture data (an in-memory connection, tests/dashboard/js/
fake_broker.js): buttons follow the stream and the roles, Break is confirmed, refusals are
shown, the grace countdown, the timeline, the audit, and the embedded actions panel."""

from __future__ import annotations

from playwright.sync_api import Browser, expect

from tests.dashboard.workspace_fixture import fixture_page

WORKER = "host7:4121:2026-01-01"


def test_catch_asks_a_reason_and_stays_pending_until_the_stream_shows_it(
    browser: Browser,
) -> None:
    with fixture_page(browser, scenario="basic") as (page, problems):
        panel = page.get_by_test_id("semaphores")
        expect(panel).to_have_attribute("data-caught", "false")
        page.evaluate("fake.echo = false")
        panel.get_by_test_id("catch").click()
        panel.get_by_test_id("catch-reason").fill("db-3 again")
        panel.get_by_test_id("catch-confirm").click()
        expect(panel.get_by_test_id("pending")).to_have_text("catch pending…")
        assert page.evaluate("fake.requests.at(-1)") == {
            "type": "catch",
            "workspace": "deploy-prod",
            "reason": "db-3 again",
        }
        page.evaluate(
            """(holder) => fake.append("deploy-prod", [{payload: {kind: "semaphores",
               caught: true, has_mutex: true, holder, fence: 1, by: "carol",
               reason: "db-3 again"}}])""",
            WORKER,
        )
        expect(panel.get_by_test_id("release")).to_be_enabled()
        expect(panel.get_by_test_id("by")).to_have_text("carol")
        expect(panel).to_have_attribute("data-caught", "true")
        problems.assert_none()


def test_a_refused_request_is_shown_and_the_button_comes_back(browser: Browser) -> None:
    with fixture_page(browser, scenario="basic") as (page, problems):
        page.evaluate("fake.refusal = 'forbidden'")
        panel = page.get_by_test_id("semaphores")
        panel.get_by_test_id("catch").click()
        panel.get_by_test_id("catch-confirm").click()
        expect(panel.get_by_test_id("semaphores-error")).to_contain_text("catch refused: forbidden")
        expect(panel.get_by_test_id("catch")).to_be_enabled()
        problems.assert_none()


def test_without_the_roles_the_buttons_are_disabled_with_the_reason(browser: Browser) -> None:
    with fixture_page(browser, scenario="basic", roles="watcher") as (page, problems):
        semaphores = page.get_by_test_id("semaphores")
        expect(semaphores.get_by_test_id("catch")).to_be_disabled()
        expect(semaphores.get_by_test_id("semaphores-why")).to_contain_text(
            "needs the operator role"
        )
        mutex = page.get_by_test_id("mutex")
        expect(mutex.get_by_test_id("break")).to_be_disabled()
        expect(mutex.get_by_test_id("mutex-why")).to_contain_text("needs the admin role")
        problems.assert_none()


def test_break_is_confirmed_and_the_panel_follows_the_stream(browser: Browser) -> None:
    with fixture_page(browser, scenario="basic") as (page, problems):
        mutex = page.get_by_test_id("mutex")
        expect(mutex.get_by_test_id("holder")).to_have_text(WORKER)
        expect(mutex.get_by_test_id("fence")).to_have_text("1")
        mutex.get_by_test_id("break").click()
        assert page.evaluate("fake.requests.length") == 0
        expect(mutex.get_by_role("alertdialog")).to_contain_text(f"held by {WORKER}")
        mutex.get_by_test_id("break-confirm").click()
        expect(mutex.get_by_test_id("holder")).to_have_text("free")
        assert page.evaluate("fake.requests") == [
            {"type": "mutex_break", "workspace": "deploy-prod"}
        ]
        audit = page.get_by_test_id("audit")
        expect(audit.locator("tr[data-what='mutex freed']")).to_have_count(1)
        problems.assert_none()


def test_the_grace_countdown_shows_once_the_holder_left(browser: Browser) -> None:
    with fixture_page(browser, scenario="basic") as (page, problems):
        mutex = page.get_by_test_id("mutex")
        expect(mutex.get_by_test_id("grace")).to_have_count(0)
        page.evaluate(
            """(run_id) => fake.append("deploy-prod", [{payload: {kind: "presence", run_id,
               state: "disconnected"}}, {payload: {kind: "semaphores", has_mutex: true,
               holder: run_id, fence: 1, mutex_change: "holder_left", mutex_by: run_id,
               grace_until: new Date(Date.now() + 600000).toISOString()}}])""",
            WORKER,
        )
        expect(mutex.get_by_test_id("grace")).to_contain_text("its worker left: freed in about")
        problems.assert_none()


def test_the_timeline_the_audit_and_the_actions_panel(browser: Browser) -> None:
    with fixture_page(browser, scenario="basic") as (page, problems):
        timeline = page.get_by_test_id("timeline")
        expect(timeline.locator("li")).to_have_count(7)
        expect(timeline.locator("li").first).to_have_attribute("data-kind", "status")
        audit = page.get_by_test_id("audit")
        expect(audit.locator("tbody tr")).to_have_count(3)
        caught = audit.locator("tr[data-what=caught]")
        expect(caught.get_by_test_id("who")).to_have_text("alice")
        expect(caught).to_contain_text("db-3 looks odd")
        expect(audit.locator("tr[data-what=released]").get_by_test_id("who")).to_have_text("bob")
        expect(page.get_by_test_id("actions")).to_contain_text("actions of deploy-prod")
        problems.assert_none()


def test_an_offset_in_the_audit_shows_the_state_right_after_it(browser: Browser) -> None:
    with fixture_page(browser, scenario="basic") as (page, problems):
        caught = page.get_by_test_id("audit").locator("tr[data-what=caught]")
        caught.get_by_role("button").click()
        past = page.locator("[data-testid=past-state][data-offset='5']")
        expect(past.get_by_test_id("state-semaphores")).to_contain_text("caught by alice")
        expect(past.get_by_test_id("state-status")).to_have_text("")
        page.get_by_test_id("live").click()
        expect(page.get_by_test_id("past-state")).to_have_count(0)
        problems.assert_none()
