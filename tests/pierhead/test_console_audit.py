"""The console's event tail and ``pierhead tail`` tell who changed the mutex and who called
which action, from the stream's own attribution."""

from __future__ import annotations

import datetime

import schema
from pierhead._cli_ops import EventLines
from pierhead._console_view import ConsoleModel, render_text
from schema import ActionFailure, CallRecord, EventMsg, Payload, SemaphoresChange

T0 = datetime.datetime(2026, 3, 1, 12, 0, 0, tzinfo=datetime.UTC)
GRACE = T0 + datetime.timedelta(seconds=30)

MUTEX_STORY: list[Payload] = [
    SemaphoresChange(has_mutex=True, holder="r-1", fence=1, mutex_change="granted", mutex_by="r-1"),
    SemaphoresChange(
        has_mutex=True,
        holder="r-1",
        fence=1,
        mutex_change="holder_left",
        mutex_by="r-1",
        grace_until=GRACE,
    ),
    SemaphoresChange(
        has_mutex=True, holder="r-1", fence=1, mutex_change="holder_back", mutex_by="r-1"
    ),
    SemaphoresChange(fence=1, mutex_change="broken", mutex_by="alice"),
    SemaphoresChange(has_mutex=True, holder="r-2", fence=2, mutex_change="granted", mutex_by="r-2"),
    SemaphoresChange(fence=2, mutex_change="expired"),
    SemaphoresChange(fence=2, caught=True, by="bob", reason="look"),
    CallRecord(
        call=3,
        action="skip_host",
        run_id="r-2",
        outcome="ok",
        caller="carol",
        args={"host": "db-5", "force": True},
    ),
    CallRecord(
        call=4,
        action="skip_host",
        run_id="r-2",
        outcome="failed",
        caller="carol",
        args={"host": "db-9"},
        error=ActionFailure(type="KeyError", message="'db-9'"),
    ),
    CallRecord(call=5, action="drain", run_id="r-2", outcome="timeout"),
]

EXPECTED = [
    ("mutex granted to r-1 (fence 1)", "info"),
    ("mutex holder r-1 left; the lease ends at 12:00:30", "warning"),
    ("mutex holder r-1 is back", "info"),
    ("mutex of r-1 broken by alice (fence 1)", "warning"),
    ("mutex granted to r-2 (fence 2)", "info"),
    ("mutex of r-2 expired (fence 2)", "warning"),
    ("caught by bob: look", "warning"),
    ('call skip_host(host="db-5", force=true) of r-2 by carol: ok', "success"),
    ("call skip_host(host=\"db-9\") of r-2 by carol: failed (KeyError: 'db-9')", "error"),
    ("call drain() of r-2: timeout", "warning"),
]


def events() -> list[EventMsg]:
    return [
        EventMsg(workspace="job", offset=offset, create_time=T0, received_time=T0, payload=p)
        for offset, p in enumerate(MUTEX_STORY, start=1)
    ]


def test_the_console_tail_names_mutex_changes_and_calls() -> None:
    model = ConsoleModel("*")
    model.update_states({"job": schema.new_workspace_state("job", epoch=1, created=T0)})
    model.set_connection("connected")
    for event in events():
        model.deliver(event)
    assert [(line.text, line.severity) for line in model.tail] == EXPECTED
    assert "call skip_host" in render_text(model, 160, T0)


def test_pierhead_tail_lines_name_mutex_changes_and_calls() -> None:
    lines = EventLines(as_json=False)
    described = [lines.describe(event) for event in events()]
    assert described == [
        f"12:00:00 #{offset:<6} {'' if text.startswith('call ') else 'semaphores '}{text}"
        for offset, (text, _) in enumerate(EXPECTED, start=1)
    ]
