"""The browser dashboard in headless Chromium: keeping up with a busy worker, and the first paint
of a workspace with a long history.

Two reports:

``dashboard-live``
    A ``pierhead serve`` process, one SDK worker process publishing :data:`RATE` events per
    second (log lines and scalars, alternately) for :data:`SECONDS` seconds to a fresh
    workspace, and a page open on that workspace's run views (``/w/<ws>/runs``; on a build
    without them, the workspace page, else the fleet). The baseline is a page of the same
    origin that only counts frames (``bench/dashboard_baseline/``, routed by the benchmark,
    not served by the broker): it opens the socket, subscribes and counts the events. Both
    pages count "on screen" with the dashboard's own paint meter (``app/meter.js``, see
    docs/dashboard.md): an event is drawn once three frames have been painted after it
    arrived. Figures: events drawn by the end of the worker's flush plus :data:`GRACE_S` over
    events published; p50 and p99 from an event's ``create_time`` (the worker's clock, the
    same machine) to the screen; the share of animation frames whose interval holds a long
    task (over 50 ms, PerformanceObserver ``longtask``); the JS heap after the run against
    before it (after a forced collection each time, CDP ``Runtime.getHeapUsage``); and the
    CPU of the browser's processes, the worker and the broker.
``dashboard-first-paint``
    A store pre-filled with :data:`STORED_EVENTS` log records in one workspace (filled once
    per run by a raw worker in frames of 1,000, then opened by one broker for every repeat).
    A fresh browser context opens ``/w/<ws>`` and the time from navigation to the first row of
    the log view is taken (a MutationObserver installed before the page's scripts). The
    baseline: the counting page's time to its ``subscribed`` reply for the same workspace.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from broker._dashboard import static_root

from ._procs import Child, Fleet
from ._report import Goal, Report, Spread
from ._stats import load_average, load_cell, machine_note
from .broker import STARTUP_TIMEOUT_S, _workspace

# The scenario ---------------------------------------------------------------------------------

RATE: Final = 10_000
"""Events per second from the worker: log lines and scalars, alternately."""
SECONDS: Final = 60.0
REPEATS: Final = 3
QUICK_SECONDS: Final = 4.0
QUICK_REPEATS: Final = 1
TICK_S: Final = 0.01
"""The worker enqueues what is due every tick."""
GRACE_S: Final = 0.5
"""Events count as kept up with when drawn this long after the worker's last one is acked."""
DRAIN_TIMEOUT_S: Final = 30.0
"""How long the page then has to draw every event (a figure, not a goal: a count short of it
after this long is an event the page lost)."""
RUN_ID: Final = "bench-run"
VIEWPORT: Final = {"width": 1280, "height": 900}

STORED_EVENTS: Final = 1_000_000
QUICK_STORED_EVENTS: Final = 100_000
FIRST_PAINT_REPEATS: Final = 5
QUICK_FIRST_PAINT_REPEATS: Final = 2
FIRST_PAINT_TIMEOUT_S: Final = 30.0

# The goals, as issue 13 states them.
KEEP_UP_GOAL: Final = 0.99
P99_GOAL_MS: Final = 250.0
LONG_TASK_FRAMES_GOAL: Final = 0.01
HEAP_GROWTH_GOAL_MB: Final = 100.0
FIRST_PAINT_GOAL_MS: Final = 1000.0

BASELINE_DIR: Final = Path(__file__).resolve().parent / "dashboard_baseline"
BASELINE_PREFIX: Final = "/__bench__/"
CHROMIUM_NAMES: Final = ("chromium", "chromium-browser")
"""What the benchmark launches when ``$PIERHEAD_CHROMIUM`` is unset, as the tests do."""
CHROMIUM_ARGS: Final = ("--disable-features=LocalNetworkAccessChecks",)
"""The baseline page is fulfilled by the benchmark (Playwright routing), so Chromium gives it
no address space and would refuse its socket to the loopback broker; the dashboard's own page
is the broker's answer and is unaffected."""
BROWSER_PROCESS_NAMES: Final = ("chromium", "chrome", "headless_shell")

PageKind = Literal["dashboard", "baseline"]
PAGE_KINDS: Final[tuple[PageKind, ...]] = ("dashboard", "baseline")

# Instrumentation installed before any script of either page: animation frames and long tasks,
# counted only while window.__bench.counting is true.
FRAME_PROBE: Final = """
(() => {
  const bench = { counting: false, frames: [], longTasks: [] };
  window.__bench = bench;
  new PerformanceObserver((list) => {
    if (!bench.counting) return;
    for (const entry of list.getEntries()) bench.longTasks.push([entry.startTime, entry.duration]);
  }).observe({ type: "longtask" });
  const tick = (time) => {
    if (bench.counting) bench.frames.push(time);
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
})();
"""

# The time, from navigation, at which an element matching the selector first exists, and the
# highest data-offset among the matches then.
FIRST_ROW_PROBE: Final = """
((selector) => {
  const look = () => {
    const rows = document.querySelectorAll(selector);
    if (rows.length === 0) return false;
    const offsets = [...rows].map((row) => Number(row.dataset.offset)).filter(Number.isFinite);
    const newest = offsets.length ? Math.max(...offsets) : null;
    window.__benchFirstRow = { ms: performance.now(), newest };
    return true;
  };
  const observer = new MutationObserver(() => { if (look()) observer.disconnect(); });
  observer.observe(document, { childList: true, subtree: true });
})(%s);
"""

LOG_ROW_SELECTOR: Final = ".log-row[data-offset]"

# Pure figures -----------------------------------------------------------------------------------


def histogram_percentile(buckets: Sequence[Sequence[int]], q: float) -> float:
    """Nearest-rank percentile of a histogram given as ``[[value, count], ...]``."""
    ordered = sorted((int(value), int(count)) for value, count in buckets if count > 0)
    total = sum(count for _, count in ordered)
    if total == 0:
        raise ValueError("no samples")
    rank = max(1, math.ceil(q / 100 * total))
    seen = 0
    for value, count in ordered:
        seen += count
        if seen >= rank:
            return float(value)
    raise AssertionError("unreachable: the ranks add up to the total")


def frames_with_long_tasks(frames: Sequence[float], long_tasks: Sequence[Sequence[float]]) -> int:
    """How many frame intervals (from one animation frame to the next) hold the start of a
    long task: a task on the main thread delays the next frame, so it lies in one interval."""
    ordered = sorted(frames)
    # The frame that ends the interval (previous frame, this frame] each task started in; one
    # before the first frame counts against the first, one after the last is in none yet.
    ends = {bisect.bisect_left(ordered, start) for start, _duration in long_tasks}
    return len(ends - {len(ordered)})


# Measurement --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LiveSample:
    """One page through one worker's run."""

    published: int
    drawn_in_time: int
    """Events on screen :data:`GRACE_S` after the worker's flush returned."""
    drawn: int
    """Events on screen at the end, after up to :data:`DRAIN_TIMEOUT_S` more."""
    latency_ms: tuple[tuple[int, int], ...]
    """The paint meter's histogram over the run, ``((ms, count), ...)``."""
    frames: int
    long_task_frames: int
    long_tasks: int
    heap_start_mb: float
    heap_end_mb: float
    browser_cpu: float | None
    """Cores used by the browser's processes over the run."""
    worker_cpu: float
    broker_cpu: float | None
    wall_s: float
    worker_rate: float
    """Events per second the worker enqueued at (its target is :data:`RATE`)."""
    newest_on_screen: bool | None
    """The run views only: the chart of each scalar ends at the last step published."""
    stages_ms: dict[str, tuple[tuple[int, int], ...]] | None = None
    """The baseline only: latency histograms to the broker (``toBrokerMs``: its
    ``received_time``) and to the page (``toPageMs``: the frame's arrival)."""

    @property
    def kept_up(self) -> float:
        return self.drawn_in_time / self.published

    @property
    def long_task_share(self) -> float:
        return self.long_task_frames / max(1, self.frames)

    @property
    def heap_growth_mb(self) -> float:
        return self.heap_end_mb - self.heap_start_mb

    @property
    def p50_ms(self) -> float:
        return histogram_percentile(self.latency_ms, 50)

    @property
    def p99_ms(self) -> float:
        return histogram_percentile(self.latency_ms, 99)


@dataclass(frozen=True, slots=True)
class LiveVariant:
    name: str
    kind: PageKind
    samples: tuple[LiveSample, ...]

    def spread(self, figure: str) -> Spread:
        return Spread.of(float(getattr(sample, figure)) for sample in self.samples)


@dataclass(frozen=True, slots=True)
class LiveMeasurement:
    view: str
    """What the dashboard page showed: the run views, or the page used while they are missing."""
    rate: int
    seconds: float
    repeats: int
    dashboard: LiveVariant
    baseline: LiveVariant
    broker_warnings: int
    load_average: float | None


@dataclass(frozen=True, slots=True)
class FirstPaintMeasurement:
    stored: int
    fill_rate: float
    """Events per second the store was filled at (acknowledged)."""
    repeats: int
    page_ms: tuple[float, ...] | None
    """None when this build has no workspace page."""
    newest_rows: tuple[int | None, ...]
    """The highest offset among the rows of each first paint."""
    baseline_ms: tuple[float, ...]
    broker_warnings: int
    load_average: float | None


def chromium_executable() -> str | None:
    """``$PIERHEAD_CHROMIUM``, else a Chromium on PATH, else None for Playwright's own."""
    configured = os.environ.get("PIERHEAD_CHROMIUM")
    if configured:
        return configured
    return next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)


def has_view(relative: str) -> bool:
    """Whether this build of the dashboard ships ``app/views/<relative>``."""
    return Path(str(static_root())).joinpath("app", "views", relative).is_file()


def dashboard_view(workspace: str) -> tuple[str, str]:
    """The dashboard page the live run opens for ``workspace``, and what it is."""
    if has_view("runs.js"):
        return f"/w/{workspace}/runs?runs={RUN_ID}", "the run views (/w/<ws>/runs)"
    if has_view("workspace.js"):
        return f"/w/{workspace}", "the workspace page (/w/<ws>; no run views in this build)"
    return "/", "the fleet (/; no workspace page or run views in this build)"


def _browser_pids() -> list[int]:
    """The browser's processes: Chromium processes descended from this one."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        pid = int(stat.parent.name)
        names[pid] = text[text.find("(") + 1 : text.rfind(")")]
        parents[pid] = int(text.rpartition(")")[2].split()[1])
    mine = {os.getpid()}
    found = True
    while found:
        found = False
        for pid, parent in parents.items():
            if parent in mine and pid not in mine:
                mine.add(pid)
                found = True
    return [pid for pid in mine if names.get(pid, "").startswith(BROWSER_PROCESS_NAMES)]


def _browser_cpu_s() -> float | None:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    pids = _browser_pids()
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])
    return total / ticks if pids else None


def _delta(before: float | None, after: float | None, wall_s: float) -> float | None:
    return None if before is None or after is None else (after - before) / max(wall_s, 1e-9)


def _route_baseline(route: Any) -> None:
    from broker._dashboard._assets import CONTENT_TYPES, SECURITY_HEADERS

    path = route.request.url.split("://", 1)[1].split("/", 1)[1].split("?", 1)[0]
    name = path.removeprefix(BASELINE_PREFIX.lstrip("/"))
    found = BASELINE_DIR / name
    if "/" in name or not found.is_file():
        route.fulfill(status=404, body="not found", content_type="text/plain")
        return
    route.fulfill(
        status=200,
        body=found.read_bytes(),
        headers={"Content-Type": CONTENT_TYPES[found.suffix], **dict(SECURITY_HEADERS)},
    )


@contextlib.contextmanager
def _chromium() -> Iterator[Any]:
    from playwright.sync_api import Error, sync_playwright

    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(
                executable_path=chromium_executable(),
                headless=True,
                args=list(CHROMIUM_ARGS),
            )
        except Error as exc:
            raise RuntimeError(
                "no Chromium for the dashboard benchmark: install Debian's chromium, set "
                f"PIERHEAD_CHROMIUM, or run `playwright install chromium` ({exc.message})"
            ) from exc
        try:
            yield browser
        finally:
            browser.close()


class _Page:
    """One page in a fresh browser context, with the probes installed and its errors kept."""

    def __init__(self, browser: Any, base: str, *, probes: Sequence[str]) -> None:
        self.context = browser.new_context(viewport=VIEWPORT)
        self.context.set_default_timeout(STARTUP_TIMEOUT_S * 1000)
        for probe in probes:
            self.context.add_init_script(probe)
        self.context.route(f"{base}{BASELINE_PREFIX}*", _route_baseline)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        self.page.on(
            "console",
            lambda message: (
                self.problems.append(f"console: {message.text}")
                if message.type == "error"
                else None
            ),
        )
        self.cdp = self.context.new_cdp_session(self.page)
        self.base = base

    def heap_mb(self) -> float:
        self.cdp.send("HeapProfiler.collectGarbage")
        usage = self.cdp.send("Runtime.getHeapUsage")
        return float(usage["usedSize"]) / 1e6

    def check(self) -> None:
        if self.problems:
            raise RuntimeError("the page failed:\n  " + "\n  ".join(self.problems))

    def close(self) -> None:
        self.context.close()


def _ready_script(kind: PageKind, view: str) -> str:
    if kind == "baseline":
        return "() => window.pierhead?.subscribedAt != null"
    if view.startswith("/w/") and "/runs" in view:
        return (
            "() => window.pierhead?.store?.loaded === true"
            f" && document.querySelector('.run-choice[data-run=\"{RUN_ID}\"]') !== null"
        )
    return "() => window.pierhead?.store?.loaded === true"


NEWEST_ON_CHART: Final = """
(steps) => Object.entries(steps).every(([name, step]) => {
  const figure = [...document.querySelectorAll("figure.run-chart")]
    .find((found) => found.dataset.chart === name);
  const xs = figure?.uplot?.data?.[0];
  return xs !== undefined && xs.length > 0 && xs[xs.length - 1] === step;
})
"""


def _live_sample(
    browser: Any, broker: Child, url: str, base: str, kind: PageKind, *, seconds: float
) -> LiveSample:
    workspace = _workspace(f"dashboard-{kind}")
    path, _ = dashboard_view(workspace)
    if kind == "baseline":
        path = f"{BASELINE_PREFIX}count.html?workspace={workspace}"
    params = {
        "url": url,
        "workspace": workspace,
        "run_id": RUN_ID,
        "rate": RATE,
        "seconds": seconds,
        "tick_s": TICK_S,
        "deadline_s": seconds + DRAIN_TIMEOUT_S + 120,
    }
    with Fleet() as fleet:
        worker = fleet.spawn(
            "dashboard-worker",
            [sys.executable, "-m", "bench._dashboard_worker", "paced", json.dumps(params)],
        )
        worker.expect("ready", STARTUP_TIMEOUT_S)
        page = _Page(browser, base, probes=[FRAME_PROBE])
        try:
            page.page.goto(base + path)
            page.page.wait_for_function(_ready_script(kind, path))
            heap_start = page.heap_mb()
            page.page.evaluate(
                "() => { window.pierhead.meter.reset(); window.pierhead.resetStages?.();"
                " Object.assign(window.__bench, {counting: true, frames: [], longTasks: []}); }"
            )
            cpu = (_browser_cpu_s(), worker.cpu_seconds(), broker.cpu_seconds())
            start = time.monotonic()
            worker.send("go")
            result = worker.expect("result", seconds + DRAIN_TIMEOUT_S + 60)
            page.page.wait_for_timeout(GRACE_S * 1000)
            in_time = page.page.evaluate("() => window.pierhead.meter.read()")
            probe = page.page.evaluate(
                "() => { window.__bench.counting = false;"
                " return {frames: window.__bench.frames, longTasks: window.__bench.longTasks}; }"
            )
            wall_s = time.monotonic() - start
            cpu_after = (_browser_cpu_s(), worker.cpu_seconds(), broker.cpu_seconds())
            published = int(result["events"])
            with contextlib.suppress(Exception):  # a page that never catches up is a figure
                page.page.wait_for_function(
                    f"() => window.pierhead.meter.drawn >= {published}",
                    timeout=DRAIN_TIMEOUT_S * 1000,
                )
            final = page.page.evaluate("() => window.pierhead.meter.read()")
            newest: bool | None = None
            stages = page.page.evaluate("() => window.pierhead.stages?.() ?? null")
            if kind == "dashboard" and "/runs" in path:
                newest = bool(page.page.evaluate(NEWEST_ON_CHART, result["steps"]))
            heap_end = page.heap_mb()
            page.check()
            worker.send("stop")
        finally:
            page.close()
    worker_cpu = _delta(cpu[1], cpu_after[1], wall_s)
    return LiveSample(
        published=published,
        drawn_in_time=int(in_time["drawn"]),
        drawn=int(final["drawn"]),
        latency_ms=tuple((int(ms), int(count)) for ms, count in final["latencyMs"]),
        frames=len(probe["frames"]),
        long_task_frames=frames_with_long_tasks(probe["frames"], probe["longTasks"]),
        long_tasks=len(probe["longTasks"]),
        heap_start_mb=heap_start,
        heap_end_mb=heap_end,
        browser_cpu=_delta(cpu[0], cpu_after[0], wall_s),
        worker_cpu=worker_cpu if worker_cpu is not None else float(result["cpu_s"]) / wall_s,
        broker_cpu=_delta(cpu[2], cpu_after[2], wall_s),
        wall_s=wall_s,
        worker_rate=published * 1e9 / max(1, int(result["send_end_ns"]) - int(result["start_ns"])),
        newest_on_screen=newest,
        stages_ms=None
        if stages is None
        else {
            stage: tuple((int(ms), int(count)) for ms, count in buckets)
            for stage, buckets in stages.items()
        },
    )


def measure_live(*, seconds: float = SECONDS, repeats: int = REPEATS) -> LiveMeasurement:
    """``repeats`` runs of each page, interleaved, each with its own worker and workspace."""
    samples: dict[PageKind, list[LiveSample]] = {"dashboard": [], "baseline": []}
    load = load_average()
    with (
        tempfile.TemporaryDirectory(prefix="pierhead-bench-") as data,
        Fleet() as fleet,
        _chromium() as browser,
    ):
        broker, port = fleet.broker(Path(data), timeout=STARTUP_TIMEOUT_S)
        url, base = f"ws://127.0.0.1:{port}", f"http://127.0.0.1:{port}"
        for _ in range(repeats):
            for kind in PAGE_KINDS:
                samples[kind].append(
                    _live_sample(browser, broker, url, base, kind, seconds=seconds)
                )
        warnings = broker.log_warnings
    _, view = dashboard_view("ws")
    return LiveMeasurement(
        view=view,
        rate=RATE,
        seconds=seconds,
        repeats=repeats,
        dashboard=LiveVariant(
            f"dashboard: {view.split(' (')[0]}", "dashboard", tuple(samples["dashboard"])
        ),
        baseline=LiveVariant(
            "baseline: a page that counts events", "baseline", tuple(samples["baseline"])
        ),
        broker_warnings=warnings,
        load_average=load,
    )


def _fill(url: str, workspace: str, events: int) -> float:
    """Publish ``events`` log records into ``workspace``; the acknowledged rate."""
    deadline_s = STARTUP_TIMEOUT_S + events / 5_000
    params = {
        "url": url,
        "workspace": workspace,
        "run_id": "bench-fill",
        "events": events,
        "deadline_s": deadline_s,
    }
    with Fleet() as fleet:
        filler = fleet.spawn(
            "fill-worker",
            [sys.executable, "-m", "bench._dashboard_worker", "fill", json.dumps(params)],
        )
        filler.expect("ready", STARTUP_TIMEOUT_S)
        filler.send("warm")
        filler.expect("warmed", STARTUP_TIMEOUT_S)
        filler.send("go")
        result = filler.expect("result", deadline_s)
    return events * 1e9 / max(1, int(result["end_ns"]) - int(result["start_ns"]))


def measure_first_paint(
    *, stored: int = STORED_EVENTS, repeats: int = FIRST_PAINT_REPEATS
) -> FirstPaintMeasurement:
    """Fill a store once, then open the workspace page and the baseline ``repeats`` times each,
    interleaved, each in a fresh browser context (nothing cached)."""
    workspace = _workspace("million")
    load = load_average()
    page_ms: list[float] = []
    newest: list[int | None] = []
    baseline_ms: list[float] = []
    with (
        tempfile.TemporaryDirectory(prefix="pierhead-bench-") as data,
        Fleet() as fleet,
        _chromium() as browser,
    ):
        broker, port = fleet.broker(Path(data), timeout=STARTUP_TIMEOUT_S)
        url, base = f"ws://127.0.0.1:{port}", f"http://127.0.0.1:{port}"
        fill_rate = _fill(url, workspace, stored)
        for _ in range(repeats):
            if has_view("workspace.js"):
                probe = FIRST_ROW_PROBE % json.dumps(LOG_ROW_SELECTOR)
                page = _Page(browser, base, probes=[probe])
                try:
                    page.page.goto(f"{base}/w/{workspace}")
                    page.page.wait_for_function(
                        "() => window.__benchFirstRow !== undefined",
                        timeout=FIRST_PAINT_TIMEOUT_S * 1000,
                    )
                    first = page.page.evaluate("() => window.__benchFirstRow")
                    page.check()
                finally:
                    page.close()
                page_ms.append(float(first["ms"]))
                newest.append(None if first["newest"] is None else int(first["newest"]))
            page = _Page(browser, base, probes=[])
            try:
                page.page.goto(f"{base}{BASELINE_PREFIX}count.html?workspace={workspace}")
                page.page.wait_for_function(
                    "() => window.pierhead?.subscribedAt != null",
                    timeout=FIRST_PAINT_TIMEOUT_S * 1000,
                )
                baseline_ms.append(float(page.page.evaluate("() => window.pierhead.subscribedAt")))
                page.check()
            finally:
                page.close()
        warnings = broker.log_warnings
    return FirstPaintMeasurement(
        stored=stored,
        fill_rate=fill_rate,
        repeats=repeats,
        page_ms=tuple(page_ms) if page_ms else None,
        newest_rows=tuple(newest),
        baseline_ms=tuple(baseline_ms),
        broker_warnings=warnings,
        load_average=load,
    )


# Reports ----------------------------------------------------------------------------------------


def _live_row(variant: LiveVariant, baseline: LiveVariant) -> tuple[str, ...]:
    samples = variant.samples
    p99 = variant.spread("p99_ms")
    ratio = p99.median / max(baseline.spread("p99_ms").median, 1.0)
    return (
        variant.name,
        variant.spread("worker_rate").cell(",.0f"),
        variant.spread("kept_up").cell(".4f"),
        Spread.of(sample.drawn / sample.published for sample in samples).cell(".4f"),
        variant.spread("p50_ms").cell(".0f"),
        p99.cell(".0f"),
        f"{ratio:.2f}x",
        Spread.of(100 * sample.long_task_share for sample in samples).cell(".2f"),
        variant.spread("frames").cell(".0f"),
        variant.spread("heap_growth_mb").cell("+.1f"),
        variant.spread("heap_end_mb").cell(".1f"),
        load_cell(sample.browser_cpu for sample in samples),
        load_cell(sample.worker_cpu for sample in samples),
        load_cell(sample.broker_cpu for sample in samples),
    )


STAGES: Final = (
    ("toBrokerMs", "to the broker (its `received_time`)"),
    ("toPageMs", "to the page (the frame's arrival)"),
)


def _stages_note(baseline: LiveVariant) -> list[str]:
    """Where the baseline's latency goes: the pipeline's share, before any page work."""
    stages = [sample.stages_ms for sample in baseline.samples]
    if not all(stages):
        return []

    def cell(key: str, q: float) -> str:
        return Spread.of(histogram_percentile(s[key], q) for s in stages if s).cell(".0f")

    parts = [f"{label} p50 {cell(key, 50)}, p99 {cell(key, 99)}" for key, label in STAGES]
    return [
        "Where the baseline's latency goes, in ms from `create_time`, per repeat: "
        + "; ".join(parts)
        + f"; to the screen p50 {baseline.spread('p50_ms').cell('.0f')},"
        f" p99 {baseline.spread('p99_ms').cell('.0f')}"
    ]


def live_report(result: LiveMeasurement) -> Report:
    dashboard, baseline = result.dashboard, result.baseline
    newest = [s.newest_on_screen for s in dashboard.samples if s.newest_on_screen is not None]
    published = statistics.median(s.published for s in (*dashboard.samples, *baseline.samples))
    notes = (
        f"One SDK worker process publishes {result.rate:,} events/s for {result.seconds:g} s"
        " (a log line and a scalar in turn, the scalars `loss` and `accuracy`) to a fresh"
        " workspace of a `pierhead serve` process; the page is open on it in headless Chromium"
        f" (1280x900). Dashboard page: {result.view}",
        "Baseline: a page of the same origin (routed by the benchmark) that opens the socket,"
        " subscribes to the workspace and counts the events of each frame",
        "On screen: the dashboard's paint meter (`window.pierhead.meter`, app/meter.js) counts"
        " an event once three frames have been painted after it arrived; both pages use it",
        f"kept up: events on screen {GRACE_S:g} s after the worker's last event was"
        " acknowledged, over events published; all drawn: the same after up to"
        f" {DRAIN_TIMEOUT_S:g} s more; latency: from the event's `create_time` to the screen,"
        " p50/p99 of each repeat; long-task frames: animation frames whose interval holds a"
        " long task (> 50 ms); heap: JS heap after a forced collection, at the end against"
        " before the run",
        "CPU columns, in cores over the run: browser = every Chromium process; worker = the SDK"
        " worker process; broker = the `pierhead serve` process",
        *(
            [
                "The newest scalar of each series was on its chart at the end in"
                f" {sum(newest)} of {len(newest)} repeats"
            ]
            if newest
            else []
        ),
        *_stages_note(baseline),
        f"{result.repeats} interleaved repeats per page, each with a fresh workspace and"
        f" worker; events published per repeat: {published:,.0f}",
        machine_note(result.broker_warnings, result.load_average),
    )
    header = (
        "page",
        "worker events/s",
        "kept up",
        "all drawn",
        "p50 ms",
        "p99 ms",
        "p99 vs baseline",
        "long-task frames %",
        "frames",
        "heap growth MB",
        "heap at end MB",
        "browser CPU",
        "worker CPU",
        "broker CPU",
    )
    goals = (
        Goal(
            description=f"events on screen / events published >= {KEEP_UP_GOAL}",
            measured=f"{dashboard.spread('kept_up').median:.4f}"
            f" (baseline {baseline.spread('kept_up').median:.4f})",
            passed=dashboard.spread("kept_up").median >= KEEP_UP_GOAL,
        ),
        Goal(
            description=f"p99 event-to-screen latency <= {P99_GOAL_MS:g} ms",
            measured=f"{dashboard.spread('p99_ms').median:.0f} ms"
            f" (baseline {baseline.spread('p99_ms').median:.0f} ms)",
            passed=dashboard.spread("p99_ms").median <= P99_GOAL_MS,
        ),
        Goal(
            description=f"frames with a long task < {100 * LONG_TASK_FRAMES_GOAL:g}%",
            measured=f"{100 * dashboard.spread('long_task_share').median:.2f}%"
            f" (baseline {100 * baseline.spread('long_task_share').median:.2f}%)",
            passed=dashboard.spread("long_task_share").median < LONG_TASK_FRAMES_GOAL,
        ),
        Goal(
            description=f"JS heap growth over the run < {HEAP_GROWTH_GOAL_MB:g} MB",
            measured=f"{dashboard.spread('heap_growth_mb').max:+.1f} MB at most",
            passed=dashboard.spread("heap_growth_mb").max < HEAP_GROWTH_GOAL_MB,
        ),
    )
    return Report(
        name="dashboard-live",
        title=f"a page open on a worker publishing {result.rate:,} events/s",
        notes=notes,
        header=header,
        rows=(_live_row(dashboard, baseline), _live_row(baseline, baseline)),
        goals=goals,
    )


def first_paint_report(result: FirstPaintMeasurement) -> Report:
    baseline = Spread.of(result.baseline_ms)
    rows: list[tuple[str, ...]] = []
    if result.page_ms is not None:
        page = Spread.of(result.page_ms)
        rows.append(
            (
                "workspace page: first log rows",
                *page.cells(",.0f"),
                f"{page.median / max(baseline.median, 1e-9):.2f}x",
            )
        )
    rows.append(("baseline: counting page's snapshot", *baseline.cells(",.0f"), "1.00x"))
    newest = sorted({offset for offset in result.newest_rows if offset is not None})
    notes = (
        f"One workspace holding {result.stored:,} log records (filled once per run by a raw"
        f" worker in frames of 1,000, acknowledged at {result.fill_rate:,.0f} events/s); one"
        " broker process serves it to every repeat",
        "Each repeat opens the page in a fresh browser context (no cache); time from navigation"
        " to the first row of the log view, seen by a MutationObserver installed before the"
        " page's scripts",
        "Baseline: the counting page's time from navigation to its `subscribed` reply for the"
        " same workspace (the least a page waits for before it can show anything)",
        *(
            [f"Highest offset among the first rows drawn: {', '.join(map(str, newest))}"]
            if newest
            else []
        ),
        f"{result.repeats} interleaved repeats",
        machine_note(result.broker_warnings, result.load_average),
    )
    if result.page_ms is None:
        goal = Goal(
            description=f"first paint of the workspace page < {FIRST_PAINT_GOAL_MS:g} ms",
            measured="not measured: this build has no workspace page (app/views/workspace.js)",
            passed=False,
        )
    else:
        median = statistics.median(result.page_ms)
        goal = Goal(
            description=f"first paint of the workspace page < {FIRST_PAINT_GOAL_MS:g} ms",
            measured=f"{median:,.0f} ms (baseline {baseline.median:,.0f} ms)",
            passed=median < FIRST_PAINT_GOAL_MS,
        )
    return Report(
        name="dashboard-first-paint",
        title=f"the workspace page over {result.stored:,} stored events",
        notes=notes,
        header=("page", "min ms", "median ms", "max ms", "median vs baseline"),
        rows=tuple(rows),
        goals=(goal,),
    )


def run_live(*, quick: bool) -> Report:
    if quick:
        return live_report(measure_live(seconds=QUICK_SECONDS, repeats=QUICK_REPEATS))
    return live_report(measure_live())


def run_first_paint(*, quick: bool) -> Report:
    if quick:
        return first_paint_report(
            measure_first_paint(stored=QUICK_STORED_EVENTS, repeats=QUICK_FIRST_PAINT_REPEATS)
        )
    return first_paint_report(measure_first_paint())
