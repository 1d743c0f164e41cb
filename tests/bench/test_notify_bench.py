"""``notify-ingest``, run with tiny counts: its structure is checked, never its timings; and its
pure helpers, the flood's error events and the receivers it posts to.

The measurement starts real brokers (with and without ``--notify``), real receivers and the
client processes; the module's fixture checks that every process is gone afterwards.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest

import bench.notify
import schema
from bench import _receiver
from bench.__main__ import BENCHMARKS
from bench._peers import ERROR_EVENT, LOG_EVENT, Publisher
from bench._procs import ROOT
from bench.notify import (
    ERROR_EVERY,
    MAX_QUEUED,
    NAMES,
    SINK,
    NotifyIngestMeasurement,
    SinkFigures,
    errors_in,
    measure,
    notify_file,
    report,
    settled,
    turn,
)
from broker._notify import SinkConfig
from broker._notify_config import parse_notify_config

REPEATS = 2
EVENTS = 300
WARM = 100
BOUND = 3


# Pure helpers ---------------------------------------------------------------------------


def test_the_notify_file_is_one_webhook_sink_posting_errors() -> None:
    config = parse_notify_config(
        notify_file("http://127.0.0.1:9/hook", max_queued=7), source="bench"
    )
    (sink,) = config.sinks
    assert sink.name == SINK
    assert sink.kind == "webhook"
    assert sink.url == "http://127.0.0.1:9/hook"
    assert sink.triggers == frozenset({"event"})
    assert sink.min_severity == "error"
    assert sink.max_queued == 7


def test_the_queue_bound_is_the_default_one() -> None:
    (default,) = (f.default for f in dataclasses.fields(SinkConfig) if f.name == "max_queued")
    assert default == MAX_QUEUED


@pytest.mark.parametrize(
    ("first", "count", "errors"),
    [(1, 99, 0), (1, 100, 1), (1, 5_100, 51), (100, 1, 1), (101, 100, 1), (150, 100, 1)],
)
def test_errors_in_counts_the_multiples_of_every(first: int, count: int, errors: int) -> None:
    assert errors_in(first, count) == errors


def test_turn_moves_each_variant_to_the_front_in_turn() -> None:
    assert turn(("baseline", "dead", "live"), 0) == ["baseline", "dead", "live"]
    assert turn(("baseline", "dead", "live"), 1) == ["dead", "live", "baseline"]
    assert turn(("baseline", "dead", "live"), 5) == ["live", "baseline", "dead"]
    assert turn(("baseline", "dead"), 3) == ["dead", "baseline"]


def test_sink_figures_read_the_sinks_counters_and_default_to_zero() -> None:
    counters = {f"notify.{SINK}.queued": 4, f"notify.{SINK}.dropped": 9, "notify.x.sent": 3}
    assert SinkFigures.of(counters) == SinkFigures(queued=4, dropped=9, sent=0, failed_attempts=0)


def test_a_dead_sink_is_settled_once_queued_and_dropped_cover_what_was_published() -> None:
    done = settled("dead", 10)
    assert not done(SinkFigures(queued=3, dropped=6, sent=0, failed_attempts=0))
    assert done(SinkFigures(queued=3, dropped=7, sent=0, failed_attempts=0))


def test_a_live_sink_is_settled_once_all_is_delivered_or_dropped_and_none_queued() -> None:
    done = settled("live", 10)
    assert not done(SinkFigures(queued=0, dropped=2, sent=7, failed_attempts=0))
    # Answered by the receiver, not yet removed from the queue.
    assert not done(SinkFigures(queued=4, dropped=2, sent=8, failed_attempts=0))
    assert done(SinkFigures(queued=0, dropped=2, sent=8, failed_attempts=0))


# The flood's error events -----------------------------------------------------------------


def _publisher(error_every: int) -> Publisher:
    # Only the building of the events is exercised: no socket is touched.
    return Publisher(cast(Any, None), {"codec": "json", "error_every": error_every}, None)


def test_a_flood_sends_an_error_at_each_multiple_of_error_every() -> None:
    publisher = _publisher(ERROR_EVERY)
    publisher.seq = 151
    events = publisher._logs(100)
    assert [i for i, e in enumerate(events) if e is ERROR_EVENT] == [49]  # seq 200
    assert all(e is LOG_EVENT for e in events if e is not ERROR_EVENT)
    publisher.seq = 1
    assert [i for i, e in enumerate(publisher._logs(250)) if e is ERROR_EVENT] == [99, 199]


def test_a_flood_without_error_every_sends_log_records_only() -> None:
    assert _publisher(0)._logs(300) == [LOG_EVENT] * 300


def test_the_error_event_sets_off_an_error_sinks_event_trigger() -> None:
    payload = ERROR_EVENT.payload
    assert isinstance(payload, schema.WorkspaceEvent)
    assert payload.severity == "error"


# The receivers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "length"),
    [
        (b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n", 12),
        (b"POST /hook HTTP/1.1\r\ncontent-length:3\r\n\r\n", 3),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0),
    ],
)
def test_content_length_reads_the_head(head: bytes, length: int) -> None:
    assert _receiver.content_length(head) == length


@pytest.fixture
def receiver(request: pytest.FixtureRequest) -> Iterator[tuple[subprocess.Popen[str], int]]:
    with subprocess.Popen(
        [sys.executable, "-m", "bench._receiver", request.param],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None
        assert process.stdin is not None
        port = json.loads(process.stdout.readline())["port"]
        yield process, port
        process.stdin.close()  # the receiver stops when its stdin closes
        assert process.wait(timeout=10) == 0


def _report(process: subprocess.Popen[str]) -> dict[str, Any]:
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write("report\n")
    process.stdin.flush()
    message: dict[str, Any] = json.loads(process.stdout.readline())
    assert message["kind"] == "report"
    return message


REQUEST = b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"


@pytest.mark.parametrize("receiver", ["live"], indirect=True)
def test_the_live_receiver_answers_200_on_a_kept_alive_connection(
    receiver: tuple[subprocess.Popen[str], int],
) -> None:
    process, port = receiver
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        for _ in range(2):
            conn.sendall(REQUEST)
            assert conn.recv(4096) == _receiver.ANSWER
    assert _report(process) | {"kind": ""} == {"kind": "", "connections": 1, "requests": 2}


@pytest.mark.parametrize("receiver", ["dead"], indirect=True)
def test_the_dead_receiver_accepts_and_holds_the_connection_without_a_byte(
    receiver: tuple[subprocess.Popen[str], int],
) -> None:
    process, port = receiver
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(REQUEST)
        # The kernel completes the handshake before the receiver's loop accepts: ask until
        # it has counted the connection (a report is a round trip, not a sleep).
        deadline = time.monotonic() + 10
        while (connections := _report(process)["connections"]) == 0:
            assert time.monotonic() < deadline, "the receiver never accepted the connection"
        assert connections == 1
        conn.setblocking(False)
        # Open (a closed connection reads b"") and silent (nothing to read).
        with pytest.raises(BlockingIOError):
            conn.recv(1)
    assert _report(process)["requests"] == 0


# The measurement --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def measured() -> NotifyIngestMeasurement:
    return measure(events=EVENTS, warm=WARM, repeats=REPEATS, max_queued=BOUND)


def test_every_variant_is_measured_in_each_repeat(measured: NotifyIngestMeasurement) -> None:
    assert [v.kind for v in measured.variants] == ["baseline", "dead", "live"]
    for variant in measured.variants:
        assert len(variant.samples) == len(variant.broker_cpu_us) == len(variant.sink) == REPEATS
        assert all(sample.rate > 0 for sample in variant.samples)
    assert measured.errors_per_repeat == errors_in(1, EVENTS + WARM) == 4


def test_the_dead_sinks_queue_stays_full_and_drops_the_rest(
    measured: NotifyIngestMeasurement,
) -> None:
    dead = measured.variant("dead")
    for repeat, figures in enumerate(dead.sink, start=1):
        published = BOUND + measured.errors_per_repeat * repeat
        assert figures.queued == BOUND
        assert figures.dropped == published - BOUND
        assert figures.sent == 0
    connections, requests = measured.receivers["dead"]
    assert connections >= 1
    assert requests == 0


def test_the_live_sink_delivers_and_the_baseline_has_no_sink(
    measured: NotifyIngestMeasurement,
) -> None:
    live = measured.variant("live")
    final = live.sink[-1]
    assert final.queued == 0
    assert final.sent + final.dropped >= BOUND + measured.errors_per_repeat * REPEATS
    assert measured.receivers["live"][1] >= 1
    assert measured.variant("baseline").sink == (SinkFigures(0, 0, 0, 0),) * REPEATS
    assert "baseline" not in measured.receivers


def test_the_report_judges_the_dead_sink_against_the_baseline(
    measured: NotifyIngestMeasurement,
) -> None:
    result = report(measured)
    assert result.name == "notify-ingest"
    assert [row[0] for row in result.rows] == [NAMES["baseline"], NAMES["dead"], NAMES["live"]]
    assert all(len(row) == len(result.header) for row in result.rows)
    ratio = result.header.index("median vs no --notify")
    assert result.rows[0][ratio] == "1.00x"
    assert result.rows[0][result.header.index("queued")] == "n/a"
    assert result.rows[1][result.header.index("queued")] == str(BOUND)
    (goal,) = result.goals
    assert NAMES["dead"] in goal.description
    assert ">= 0.95x" in goal.description
    assert BENCHMARKS["notify-ingest"] is bench.notify.run
