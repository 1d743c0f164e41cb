"""The dashboard benchmark: its figures from the page's counts, its goals and its reports, and
one tiny run of each measurement in a real Chromium against a real broker, whose structure is
checked, never its timings."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

import bench.dashboard as dash
from bench._dashboard_worker import due_events
from bench._report import Report
from broker._dashboard import static_root

# Figures ----------------------------------------------------------------------------------------


def test_histogram_percentile_is_the_nearest_rank() -> None:
    buckets = [[10, 98], [300, 1], [40, 1]]
    assert dash.histogram_percentile(buckets, 50) == 10.0
    assert dash.histogram_percentile(buckets, 99) == 40.0
    assert dash.histogram_percentile(buckets, 100) == 300.0


def test_histogram_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no samples"):
        dash.histogram_percentile([[5, 0]], 99)


def test_a_long_task_marks_the_frame_interval_it_started_in() -> None:
    frames = [0.0, 16.0, 32.0, 120.0, 136.0]
    # Two tasks between the frames at 32 and 120 make one late frame; one before the first
    # frame counts against it; one after the last frame is in no interval yet.
    long_tasks = [[40.0, 60.0], [60.0, 55.0], [-5.0, 51.0], [140.0, 70.0]]
    assert dash.frames_with_long_tasks(frames, long_tasks) == 2
    assert dash.frames_with_long_tasks(frames, []) == 0


def test_the_paced_worker_sends_what_is_due_and_never_more_than_its_total() -> None:
    assert due_events(0.0, 10_000, 0, 100) == 1
    assert due_events(0.005, 10_000, 1, 100_000) == 50
    assert due_events(0.005, 10_000, 51, 100_000) == 0
    assert due_events(60.0, 10_000, 99, 100) == 1


def test_the_live_run_opens_the_run_views_when_the_build_has_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert dash.dashboard_view("w")[0] == f"/w/w/runs?runs={dash.RUN_ID}"
    monkeypatch.setattr(dash, "has_view", lambda name: name == "workspace.js")
    assert dash.dashboard_view("w")[0] == "/w/w"
    monkeypatch.setattr(dash, "has_view", lambda name: False)
    assert dash.dashboard_view("w")[0] == "/"


class FakeRoute:
    """What the baseline's route handler touches of a Playwright route."""

    def __init__(self, url: str) -> None:
        self.request = type("Request", (), {"url": url})()
        self.answer: dict[str, Any] = {}

    def fulfill(self, **answer: Any) -> None:
        self.answer = answer


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/__bench__/count.html", 200),
        ("/__bench__/count.js?x=1", 200),
        ("/__bench__/../dashboard.py", 404),
        ("/__bench__/missing.js", 404),
    ],
)
def test_the_baseline_page_is_served_from_its_folder_only(path: str, status: int) -> None:
    route = FakeRoute(f"http://127.0.0.1:1{path}")
    dash._route_baseline(route)
    assert route.answer["status"] == status
    if status == 200:
        assert "Content-Security-Policy" in route.answer["headers"]


# Reports ----------------------------------------------------------------------------------------


def _sample(**changes: Any) -> dash.LiveSample:
    sample = dash.LiveSample(
        published=1000,
        drawn_in_time=1000,
        drawn=1000,
        latency_ms=((40, 990), (200, 10)),
        frames=600,
        long_task_frames=0,
        long_tasks=0,
        heap_start_mb=10.0,
        heap_end_mb=12.0,
        browser_cpu=0.5,
        worker_cpu=0.1,
        broker_cpu=None,
        wall_s=1.0,
        worker_rate=10_000.0,
        newest_on_screen=True,
    )
    return dataclasses.replace(sample, **changes)


def _live(*dashboard: dash.LiveSample) -> dash.LiveMeasurement:
    return dash.LiveMeasurement(
        view="the run views (/w/<ws>/runs)",
        rate=dash.RATE,
        seconds=1.0,
        repeats=len(dashboard),
        dashboard=dash.LiveVariant("dashboard: the run views", "dashboard", dashboard),
        baseline=dash.LiveVariant(
            "baseline", "baseline", tuple(_sample() for _ in range(len(dashboard)))
        ),
        broker_warnings=0,
        load_average=None,
    )


def _verdicts(report: Report) -> list[bool]:
    return [goal.passed for goal in report.goals]


def _check_table(report: Report) -> None:
    assert all(len(row) == len(report.header) for row in report.rows)


def test_a_page_that_keeps_up_meets_every_goal() -> None:
    report = dash.live_report(_live(_sample(), _sample()))
    _check_table(report)
    assert report.name == "dashboard-live"
    assert _verdicts(report) == [True, True, True, True]
    assert any("2 of 2 repeats" in note for note in report.notes)


@pytest.mark.parametrize(
    ("changes", "missed"),
    [
        ({"drawn_in_time": 989}, 0),
        ({"latency_ms": ((40, 980), (251, 20))}, 1),
        ({"long_task_frames": 6}, 2),
        ({"heap_end_mb": 110.0}, 3),
    ],
)
def test_each_goal_is_missed_past_its_bound(changes: dict[str, Any], missed: int) -> None:
    verdicts = _verdicts(dash.live_report(_live(_sample(**changes))))
    assert verdicts == [index != missed for index in range(4)]


def test_the_first_paint_goal_is_missed_when_the_page_cannot_be_measured() -> None:
    result = dash.FirstPaintMeasurement(
        stored=10,
        fill_rate=1.0,
        repeats=2,
        page_ms=None,
        newest_rows=(),
        baseline_ms=(100.0, 120.0),
        broker_warnings=0,
        load_average=None,
    )
    report = dash.first_paint_report(result)
    _check_table(report)
    assert len(report.rows) == 1
    assert not report.passed
    assert "not measured" in report.goals[0].measured


@pytest.mark.parametrize(
    ("page_ms", "passed"), [((900.0, 999.0, 2000.0), True), ((1000.0,), False)]
)
def test_the_first_paint_goal_is_judged_on_the_median(
    page_ms: tuple[float, ...], passed: bool
) -> None:
    result = dash.FirstPaintMeasurement(
        stored=10,
        fill_rate=1.0,
        repeats=len(page_ms),
        page_ms=page_ms,
        newest_rows=(10,) * len(page_ms),
        baseline_ms=(100.0,) * len(page_ms),
        broker_warnings=0,
        load_average=None,
    )
    report = dash.first_paint_report(result)
    _check_table(report)
    assert report.passed is passed
    assert any("10" in note for note in report.notes if "Highest offset" in note)


# Real runs, tiny --------------------------------------------------------------------------------


def test_a_live_run_draws_every_event_the_worker_published() -> None:
    result = dash.measure_live(seconds=0.5, repeats=1)
    for variant in (result.dashboard, result.baseline):
        (sample,) = variant.samples
        assert sample.published == dash.RATE // 2
        assert sample.drawn == sample.published
        assert sum(count for _, count in sample.latency_ms) == sample.drawn
        assert sample.frames > 0
    assert result.dashboard.samples[0].newest_on_screen is True
    _check_table(dash.live_report(result))


def test_a_first_paint_shows_the_newest_stored_rows() -> None:
    result = dash.measure_first_paint(stored=3000, repeats=1)
    assert result.page_ms is not None
    assert len(result.page_ms) == len(result.baseline_ms) == 1
    (newest,) = result.newest_rows
    # The log view opens on the tail: its first rows are from the newest page of history.
    assert newest is not None
    assert newest > 2000
    _check_table(dash.first_paint_report(result))


def test_the_baseline_page_is_not_part_of_the_broker() -> None:
    assert not Path(str(static_root())).joinpath("__bench__").exists()
    assert (dash.BASELINE_DIR / "count.js").is_file()


def test_the_baseline_says_where_its_latency_goes() -> None:
    stages = {"toBrokerMs": ((10, 98), (30, 2)), "toPageMs": ((20, 98), (60, 2))}
    result = _live(_sample())
    baseline = dataclasses.replace(
        result.baseline, samples=(_sample(stages_ms=stages, latency_ms=((50, 98), (70, 2))),)
    )
    notes = dash.live_report(dataclasses.replace(result, baseline=baseline)).notes
    (note,) = [note for note in notes if note.startswith("Where the baseline's latency goes")]
    assert "to the broker (its `received_time`) p50 10 (10..10), p99 30 (30..30)" in note
    assert "to the page (the frame's arrival) p50 20 (20..20), p99 60 (60..60)" in note
    assert note.endswith("to the screen p50 50 (50..50), p99 70 (70..70)")
    assert not any("Where" in note for note in dash.live_report(result).notes)
