"""Headless Chromium for the dashboard's tests, driven by Playwright.

The page is served without a server: every request to :data:`ORIGIN` is answered by
``page.route`` from the files on disk (the dashboard's ``static/`` folder at ``/``, the
browser-side tests at ``/__tests__/``, the shared fixtures of tests/schema and tests/sdk at
``/__fixtures__/schema/`` and ``/__fixtures__/sdk/``), with the
security headers the broker sends, so a page that needs inline script fails here
first. Requests to any other origin are refused.

Chromium is Debian's ``chromium`` (or ``$PIERHEAD_CHROMIUM``), else Playwright's own download;
``nox -s tests`` installs one when none is there. A missing browser fails the tests, never
skips them.
"""

from __future__ import annotations

import json
import mimetypes
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from playwright.sync_api import Browser, ConsoleMessage, Error, Page, Route, sync_playwright

from broker._dashboard import static_root
from broker._dashboard._assets import CONTENT_TYPES, SECURITY_HEADERS
from tests.support import ROOT, WAIT_S

ORIGIN: Final = "https://pierhead.test"
"""A fixed fake origin: never resolved, every request to it is answered by the route."""

MOUNTS: Final = {
    "/__tests__/": ROOT / "tests" / "dashboard" / "js",
    "/__fixtures__/schema/": ROOT / "tests" / "schema" / "fixtures",
    "/__fixtures__/sdk/": ROOT / "tests" / "sdk" / "fixtures",
    "/": Path(str(static_root())),
}
"""URL prefixes and the folders they serve, the longest prefix first."""

CHROMIUM_NAMES: Final = ("chromium", "chromium-browser")


def no_chromium(error: Error) -> RuntimeError:
    """What to do when Chromium would not start, with the launcher's reason."""
    return RuntimeError(
        "no Chromium for the dashboard tests: install Debian's chromium "
        "(apt-get install chromium), set PIERHEAD_CHROMIUM, or run "
        f"`playwright install chromium` ({error.message.splitlines()[0]})"
    )


def chromium_executable() -> str | None:
    """The Chromium to launch: ``$PIERHEAD_CHROMIUM``, else one on PATH, else None for
    Playwright's own (``playwright install chromium``)."""
    configured = os.environ.get("PIERHEAD_CHROMIUM")
    if configured:
        return configured
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found is not None:
            return found
    return None


def launch_chromium() -> Iterator[Browser]:
    """A headless Chromium for the whole test session, failing loudly when there is none."""
    executable = chromium_executable()
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=executable, headless=True)
        except Error as exc:
            raise no_chromium(exc) from exc
        try:
            yield browser
        finally:
            browser.close()


def file_for(path: str) -> Path | None:
    """The file a URL path names under one of the mounts, or None (never outside them)."""
    for prefix, folder in MOUNTS.items():
        if path.startswith(prefix):
            relative = path[len(prefix) :] or "index.html"
            candidate = (folder / relative).resolve()
            if candidate.is_relative_to(folder.resolve()) and candidate.is_file():
                return candidate
            return None
    return None


def serve(route: Route) -> None:
    url = route.request.url
    if not url.startswith(ORIGIN + "/"):
        route.abort("blockedbyclient")
        return
    path = url[len(ORIGIN) :].split("?", 1)[0].split("#", 1)[0]
    found = file_for(path)
    if found is None:
        route.fulfill(status=404, body="not found", content_type="text/plain")
        return
    content_type = CONTENT_TYPES.get(found.suffix) or (
        mimetypes.guess_type(found.name)[0] or "application/octet-stream"
    )
    route.fulfill(
        status=200,
        body=found.read_bytes(),
        headers={"Content-Type": content_type, **dict(SECURITY_HEADERS)},
    )


@dataclass
class PageProblems:
    """What went wrong on a page that no assertion asked about: console errors, uncaught
    exceptions and failed or missing requests. A test fails on any of them."""

    messages: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.messages.append(f"page error: {error}"))
        page.on(
            "requestfailed",
            lambda request: self.messages.append(
                f"request failed: {request.url} ({request.failure})"
            ),
        )
        page.on(
            "response",
            lambda response: (
                self.messages.append(f"HTTP {response.status}: {response.url}")
                if response.status >= 400
                else None
            ),
        )

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "assert"):
            self.messages.append(f"console {message.type}: {message.text}")

    def assert_none(self) -> None:
        assert self.messages == [], "problems on the page:\n  " + "\n  ".join(self.messages)


def open_page(browser: Browser) -> tuple[Page, PageProblems]:
    """A page in a fresh context, served from disk on :data:`ORIGIN`, its problems watched."""
    context = browser.new_context(base_url=ORIGIN)
    context.set_default_timeout(WAIT_S * 1000)
    context.route("**/*", serve)
    page = context.new_page()
    problems = PageProblems()
    problems.watch(page)
    return page, problems


@dataclass(frozen=True)
class JsResult:
    """One case of a browser-side test module."""

    name: str
    ok: bool
    detail: str


def run_js_tests(browser: Browser, module: str) -> dict[str, JsResult]:
    """Run a test module of ``tests/dashboard/js`` in the browser; its results by case name.

    The module exports ``run()``, which returns ``[{name, ok, detail}]``; the runner page
    writes them into ``#results`` as JSON once done.
    """
    page, problems = open_page(browser)
    try:
        page.goto(f"/__tests__/runner.html?module={module}")
        results = page.locator("#results[data-state]")
        results.wait_for(state="attached")
        state = results.get_attribute("data-state")
        text = results.text_content() or ""
        problems.assert_none()
        assert state == "done", f"{module} did not finish: {text}"
        cases = [JsResult(**item) for item in json.loads(text)]
    finally:
        page.context.close()
    by_name = {case.name: case for case in cases}
    assert len(by_name) == len(cases), f"{module} names two cases alike"
    return by_name
