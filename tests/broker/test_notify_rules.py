"""Which committed events make which notifications, for which sinks: the trigger rules."""

from __future__ import annotations

import datetime
import re

from broker._notify import AdviceRule, FinalStatus, NotifyConfig, SinkConfig, Trigger
from broker._notify_rules import _TRIGGERS_OF, MAX_SUMMARY, NotifyRules
from schema import (
    EventMsg,
    LogRecord,
    Payload,
    Presence,
    Scalar,
    SemaphoresChange,
    Status,
    WorkspaceEvent,
)
from schema._fold import _PLAIN as PLAIN_PAYLOADS

T0 = datetime.datetime(2026, 12, 5, 12, 0, tzinfo=datetime.UTC)


def sink(name: str, *triggers: Trigger, **options: object) -> SinkConfig:
    return SinkConfig(
        name=name,
        kind="webhook",
        url="http://127.0.0.1:9/hook",
        triggers=frozenset(triggers),
        **options,  # type: ignore[arg-type]
    )


def envelope(
    offset: int, payload: Payload, run_id: str | None = "r1", *, workspace: str = "deploy.prod"
) -> EventMsg:
    """An event as committed; ``run_id`` None for one the broker made."""
    return EventMsg(
        workspace=workspace,
        offset=offset,
        create_time=T0,
        received_time=T0 + datetime.timedelta(seconds=offset),
        payload=payload,
        run_id=run_id,
        seq=offset if run_id else None,
    )


def epoch_3(_: str) -> int:
    return 3


def test_no_trigger_looks_at_plain_data() -> None:
    # The broker hands the rules only the events the fold does not pass over as plain data
    # (schema.fold_events' changes): a trigger on a plain payload would never fire.
    assert set(_TRIGGERS_OF).isdisjoint(PLAIN_PAYLOADS)
    assert {LogRecord, Scalar} <= PLAIN_PAYLOADS


def test_a_severe_event_notifies_the_sinks_that_match_with_its_advice() -> None:
    config = NotifyConfig(
        sinks=(
            sink("ops", "event", workspaces=("deploy.*",)),
            sink("all", "event", min_severity="warning"),
            sink("ml", "event", workspaces=("train.*",)),
        ),
        advice=(
            AdviceRule(re.compile("No space left"), "Clean /var/tmp."),
            AdviceRule(re.compile("space"), "not this one: the first match wins"),
        ),
    )
    rules = NotifyRules(config)
    events = [
        envelope(1, Scalar(name="loss", value=0.5)),
        envelope(2, WorkspaceEvent(message="disk: No space left on device", severity="error")),
        envelope(3, WorkspaceEvent(message="slow mirror", severity="warning")),
        envelope(4, WorkspaceEvent(message="all good", severity="info")),
    ]
    made = rules.derive(events, epoch_3)
    assert [(n.sink, n.offset) for n in made] == [("ops", 2), ("all", 2), ("all", 3)]
    first = made[0]
    assert first.key == "ops:deploy.prod:3:2:event"
    assert (first.trigger, first.workspace, first.epoch, first.severity) == (
        "event",
        "deploy.prod",
        3,
        "error",
    )
    assert first.summary == "disk: No space left on device"
    assert first.advice == "Clean /var/tmp."
    assert first.run_id == "r1"
    assert first.at == events[1].received_time
    assert first.event == events[1]
    assert made[2].advice is None
    # A storm of one workspace's errors shares one coalescing value; warnings have their own.
    assert made[0].coalesce != made[2].coalesce
    again = rules.derive([envelope(9, WorkspaceEvent(message="x", severity="error"))], epoch_3)
    assert again[0].coalesce == made[0].coalesce
    assert again[0].key != made[0].key


def test_catch_release_and_mutex_changes_say_who_and_why() -> None:
    rules = NotifyRules(NotifyConfig(sinks=(sink("ops", "caught", "released", "mutex"),)))
    events = [
        envelope(1, SemaphoresChange(caught=True, by="alice", reason="maintenance"), run_id=None),
        envelope(2, SemaphoresChange(caught=False, by="bob"), run_id=None),
        envelope(
            3,
            SemaphoresChange(has_mutex=True, holder="r1", fence=4, mutex_change="granted"),
            run_id=None,
        ),
        envelope(4, SemaphoresChange(fence=4, mutex_change="broken", mutex_by="carol"), None),
        envelope(5, SemaphoresChange(fence=5, mutex_change="expired", mutex_by="r1"), None),
        envelope(6, SemaphoresChange(fence=5, mutex_change="released", mutex_by="r1"), None),
        envelope(7, SemaphoresChange(fence=6, mutex_change="expired"), run_id=None),
    ]
    made = rules.derive(events, epoch_3)
    assert [(n.trigger, n.offset, n.summary) for n in made] == [
        ("caught", 1, "caught by alice: maintenance"),
        ("released", 2, "released by bob"),
        ("mutex", 4, "mutex broken by carol (fence 4)"),
        ("mutex", 5, "mutex lost: run r1's lease expired (fence 5)"),
        # From a broker that named no run on an expiry.
        ("mutex", 7, "mutex lost: its holder's lease expired (fence 6)"),
    ]
    assert made[3].run_id == "r1"
    assert (made[0].who, made[0].reason) == ("alice", "maintenance")
    # A lost lease is never counted in with a broken one.
    assert made[2].coalesce != made[3].coalesce
    assert made[1].who == "bob"


def test_a_sink_hears_only_its_own_triggers() -> None:
    rules = NotifyRules(NotifyConfig(sinks=(sink("ops", "released"),)))
    caught = envelope(1, SemaphoresChange(caught=True, by="alice"), run_id=None)
    error = envelope(2, WorkspaceEvent(message="boom", severity="error"))
    assert rules.derive([caught, error], epoch_3) == []
    assert WorkspaceEvent not in rules.payloads


def test_expiry_without_a_final_status_is_notified_and_with_one_is_not() -> None:
    config = NotifyConfig(
        sinks=(sink("ops", "expired", "finished"),),
        finished=FinalStatus(key="state", values=("succeeded", "failed")),
    )
    rules = NotifyRules(config)
    made = rules.derive(
        [
            envelope(1, Status(key="state", value="running"), run_id="a"),
            envelope(2, Status(key="state", value="failed"), run_id="b"),
            envelope(3, Presence(run_id="a", state="disconnected"), run_id=None),
            envelope(4, Presence(run_id="a", state="expired"), run_id=None),
            envelope(5, Presence(run_id="b", state="expired"), run_id=None),
        ],
        epoch_3,
    )
    assert [(n.trigger, n.run_id, n.offset) for n in made] == [
        ("finished", "b", 2),
        ("expired", "a", 4),
    ]
    assert made[0].summary == "run b finished: state = failed"
    assert made[1].summary == "run a disconnected and expired without a final status"
    # The memory of b's final status went with its expiry: a later run b starts afresh.
    again = rules.derive([envelope(9, Presence(run_id="b", state="expired"), None)], epoch_3)
    assert [n.trigger for n in again] == ["expired"]


def test_a_final_status_published_before_a_restart_is_remembered() -> None:
    rules = NotifyRules(NotifyConfig(sinks=(sink("ops", "expired"),)))
    rules.finished_before([("deploy.prod", "a")])
    made = rules.derive([envelope(4, Presence(run_id="a", state="expired"), None)], epoch_3)
    assert made == []


def test_a_final_status_is_remembered_for_expiry_even_by_a_sink_without_finished() -> None:
    rules = NotifyRules(NotifyConfig(sinks=(sink("ops", "expired"),)))
    done = envelope(1, Status(key="state", value="anything"), run_id="a")
    assert rules.derive([done], epoch_3) == []
    made = rules.derive([envelope(2, Presence(run_id="a", state="expired"), None)], epoch_3)
    assert made == []


def test_stalls_and_recoveries_have_keys_of_their_own() -> None:
    rules = NotifyRules(NotifyConfig(sinks=(sink("ops", "stalled", "recovered"), sink("x"))))
    stalled = rules.stalled("deploy.prod", 3, "r1", since_offset=7, silent_s=600.0, at=T0)
    recovered = rules.recovered("deploy.prod", 3, "r1", offset=12, at=T0)
    assert [(n.sink, n.trigger, n.key) for n in stalled + recovered] == [
        ("ops", "stalled", "ops:deploy.prod:3:r1@7:stalled"),
        ("ops", "recovered", "ops:deploy.prod:3:r1@12:recovered"),
    ]
    assert stalled[0].summary == "run r1 is connected but has sent nothing for 10 min"
    assert stalled[0].offset is None
    assert recovered[0].offset == 12  # the event that ended the silence
    assert rules.watches_stalls("deploy.prod")


def test_a_long_message_is_cut_in_the_summary_but_whole_in_the_event() -> None:
    rules = NotifyRules(NotifyConfig(sinks=(sink("ops", "event"),)))
    message = "x" * 2000
    made = rules.derive([envelope(1, WorkspaceEvent(message=message, severity="error"))], epoch_3)
    assert len(made[0].summary) == MAX_SUMMARY
    assert made[0].event is not None
    assert isinstance(made[0].event.payload, WorkspaceEvent)
    assert made[0].event.payload.message == message


def test_a_failed_run_is_an_error_and_never_counted_in_with_successes() -> None:
    rules = NotifyRules(NotifyConfig(sinks=(sink("ops", "finished"),)))
    made = rules.derive(
        [
            envelope(1, Status(key="state", value="succeeded"), run_id="a"),
            envelope(2, Status(key="state", value="FAILED"), run_id="b"),
            envelope(3, Status(key="state", value="succeeded"), run_id="c"),
        ],
        epoch_3,
    )
    assert [(n.run_id, n.severity) for n in made] == [
        ("a", "success"),
        ("b", "error"),
        ("c", "success"),
    ]
    assert made[0].coalesce == made[2].coalesce != made[1].coalesce


def test_final_statuses_are_remembered_only_for_a_sink_that_hears_of_expiries() -> None:
    forgetful = NotifyRules(NotifyConfig(sinks=(sink("ops", "finished"),)))
    remembering = NotifyRules(NotifyConfig(sinks=(sink("ops", "expired"),)))
    for rules in (forgetful, remembering):
        rules.finished_before([("old", "r0")])
        for run in range(100):
            rules.derive([envelope(run + 1, Status(key="state", value="ok"), f"r{run}")], epoch_3)
    assert len(forgetful._finished) == 0
    assert len(remembering._finished) == 101
    remembering.forget_workspace("deploy.prod")
    assert remembering._finished == {("old", "r0")}


def test_a_short_stall_is_told_in_seconds() -> None:
    rules = NotifyRules(NotifyConfig(sinks=(sink("ops", "stalled"),)))
    (note,) = rules.stalled("ws", 1, "r", since_offset=1, silent_s=45.2, at=T0)
    assert note.summary == "run r is connected but has sent nothing for 45 s"
