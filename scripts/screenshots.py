"""The README's dashboard screenshots, made from ``pierhead demo`` (``nox -s screenshots``).

Starts ``pierhead demo --json`` (it prints ``dashboard at URL`` on stderr), opens the fleet view
and the training run's page in headless Chromium, waits until they show the demo's real
content (rows, charts with points, the action form: DOM state, never a fixed delay), and writes
``docs/images/fleet.png`` and ``docs/images/run.png``. Chromium is ``$PIERHEAD_CHROMIUM``, else
one on PATH, else Playwright's own, as for the tests.
"""

from __future__ import annotations

import argparse
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Final

from playwright.sync_api import Page, ViewportSize, sync_playwright

ROOT: Final = Path(__file__).resolve().parent.parent
IMAGES: Final = ROOT / "docs" / "images"
DASHBOARD_LINE: Final = re.compile(r"dashboard at (\S+)")
STARTUP_TIMEOUT_S: Final = 30.0
CONTENT_TIMEOUT_S: Final = 60.0
"""The demo's training run draws ten steps a second: a chart worth showing takes seconds."""
VIEWPORT: Final = ViewportSize(width=1280, height=300)
"""Each image is the whole page (``full_page``): the viewport only sets its least height."""
CHROMIUM_NAMES: Final = ("chromium", "chromium-browser")

TRAIN_WORKSPACE: Final = "train-resnet"
TRAIN_RUN: Final = "train-1"
LOSS_POINTS: Final = 80
"""Steps on the loss chart before the run page is taken: a curve, not a dot."""
HARDWARE_SAMPLES: Final = 4

FLEET_READY: Final = """
() => {
  const rows = [...document.querySelectorAll("tr[data-workspace]")];
  const named = (name) => rows.find((row) => row.dataset.workspace === name);
  const deploy = named("deploy-web"), train = named("train-resnet");
  // The demo's deploy fails on one host and catches itself: then every lane has a story.
  return deploy !== undefined && train !== undefined
    && deploy.dataset.lane === "attention"
    && deploy.querySelector("[data-testid=progress]") !== null
    && train.querySelector("[data-testid=last-event]")?.textContent.trim() !== "";
}
"""

RUN_READY: Final = """
([lossPoints, hardwareSamples]) => {
  const charts = [...document.querySelectorAll("figure.run-chart")];
  const chart = (name) => charts.find((f) => f.dataset.chart === name);
  const points = (name) => chart(name)?.uplot?.data?.[0]?.length ?? 0;
  const hardware = charts.filter((f) => !["loss", "lr"].includes(f.dataset.chart));
  return points("loss") >= lossPoints && points("lr") >= lossPoints
    && hardware.length > 0
    && hardware.every((f) => (f.uplot?.data?.[0]?.length ?? 0) >= hardwareSamples)
    && document.querySelector("form.action-form[data-action=set_lr]") !== null;
}
"""


def chromium_executable() -> str | None:
    configured = os.environ.get("PIERHEAD_CHROMIUM")
    if configured:
        return configured
    return next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)


def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


@contextmanager
def demo() -> Iterator[str]:
    """``pierhead demo`` running; yields its dashboard's URL; stopped on exit."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pierhead", "demo", "--json"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert process.stderr is not None
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_pump, args=(process.stderr, lines), daemon=True).start()
    try:
        seen: list[str] = []
        while True:
            try:
                line = lines.get(timeout=STARTUP_TIMEOUT_S)
            except queue.Empty:
                raise RuntimeError(f"pierhead demo printed no dashboard URL: {seen}") from None
            if line is None:
                raise RuntimeError(f"pierhead demo exited before its dashboard URL: {seen}")
            seen.append(line.rstrip())
            found = DASHBOARD_LINE.search(line)
            if found is not None:
                yield found.group(1)
                return
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def shoot(page: Page, url: str, ready: str, target: Path, arg: object = None) -> None:
    page.goto(url)
    page.wait_for_function(ready, arg=arg, timeout=CONTENT_TIMEOUT_S * 1000)
    # uPlot paints new data on the next frame: two frames, and the canvases hold it.
    page.evaluate(
        "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"
    )
    page.screenshot(path=str(target), full_page=True)
    sys.stdout.write(f"screenshots: wrote {target}\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/screenshots.py", description=__doc__)
    parser.add_argument("--out", type=Path, default=IMAGES, help="folder for the PNGs")
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    page_errors: list[str] = []
    with demo() as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_executable(), headless=True)
        try:
            context = browser.new_context(viewport=VIEWPORT, color_scheme="light")
            page = context.new_page()
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            base = base.rstrip("/")
            shoot(page, f"{base}/", FLEET_READY, out / "fleet.png")
            shoot(
                page,
                f"{base}/w/{TRAIN_WORKSPACE}/runs?runs={TRAIN_RUN}",
                RUN_READY,
                out / "run.png",
                [LOSS_POINTS, HARDWARE_SAMPLES],
            )
        finally:
            browser.close()
    if page_errors:
        sys.stderr.write("screenshots: the page failed:\n  " + "\n  ".join(page_errors) + "\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
