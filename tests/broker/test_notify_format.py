"""The next message of a sink's queue and its exact wire form (pure: no sockets)."""

from __future__ import annotations

import datetime
import json
from typing import Any

from broker._notify import Notification, QueuedNotification, SinkConfig, SinkKind
from broker._notify_format import (
    Group,
    coalesced,
    dashboard_url,
    request_for,
    signature,
    slack_payload,
    verify_signature,
)
from schema import JSON_CODEC, EventMsg, WorkspaceEvent

AT = datetime.datetime(2025, 3, 4, 5, 6, 7, 890000, tzinfo=datetime.UTC)
NOW = 1_750_000_000.0


def notification(
    key: str, *, workspace: str = "deploy", coalesce: str = "c", **fields: Any
) -> Notification:
    values: dict[str, Any] = {
        "sink": "hooks",
        "trigger": "event",
        "epoch": 1,
        "at": AT,
        "summary": f"summary of {key}",
    }
    values.update(fields)
    return Notification(key=key, workspace=workspace, coalesce=coalesce, **values)


def queue(*notifications: Notification) -> list[QueuedNotification]:
    return [
        QueuedNotification(id=index + 1, notification=n) for index, n in enumerate(notifications)
    ]


def sink(kind: SinkKind = "webhook", **fields: Any) -> SinkConfig:
    return SinkConfig(
        name="hooks",
        kind=kind,
        url="http://127.0.0.1:1/hook",
        triggers=frozenset({"event"}),
        **fields,
    )


# Coalescing ---------------------------------------------------------------------------------


def test_an_empty_queue_has_no_message() -> None:
    assert coalesced([]) is None


def test_the_head_takes_every_later_one_like_it_of_its_workspace() -> None:
    group = coalesced(
        queue(
            notification("a1", coalesce="x"),
            notification("a2", coalesce="x"),
            notification("a3", coalesce="x"),
        )
    )
    assert group is not None
    assert group.ids == (1, 2, 3)
    assert group.count == 3
    assert group.first.key == "a1"


def test_a_different_notification_of_the_workspace_ends_the_group() -> None:
    group = coalesced(
        queue(
            notification("a1", coalesce="x"),
            notification("a2", coalesce="x"),
            notification("a3", coalesce="y"),
            notification("a4", coalesce="x"),
        )
    )
    assert group is not None
    # a4 would overtake a3 if it went now.
    assert group.ids == (1, 2)


def test_other_workspaces_in_between_are_passed_over_not_taken() -> None:
    group = coalesced(
        queue(
            notification("a1", coalesce="x"),
            notification("b1", workspace="other", coalesce="y"),
            notification("b2", workspace="other", coalesce="x"),
            notification("a2", coalesce="x"),
        )
    )
    assert group is not None
    assert group.ids == (1, 4)


def test_a_storm_of_a_thousand_is_one_group() -> None:
    storm = queue(*(notification(f"e{i}", coalesce="deploy:error") for i in range(1000)))
    group = coalesced(storm, window_s=2.0)
    assert group is not None
    assert group.count == 1000
    assert group.ids == tuple(range(1, 1001))


def test_the_window_ends_the_group_at_the_first_made_after_it() -> None:
    later = AT + datetime.timedelta(seconds=2.5)
    group = coalesced(
        queue(
            notification("a1"),
            notification("a2", at=AT + datetime.timedelta(seconds=2)),
            notification("a3", at=later),
            notification("a4", at=AT + datetime.timedelta(seconds=1)),
        ),
        window_s=2.0,
    )
    assert group is not None
    assert group.ids == (1, 2)


# Generic webhook ----------------------------------------------------------------------------

EVENT = EventMsg(
    workspace="deploy",
    offset=41,
    create_time=AT,
    received_time=AT,
    payload=WorkspaceEvent(message="disk <full> & more", severity="error"),
    run_id="run-1",
    seq=9,
)


def test_the_webhook_body_has_exactly_its_keys_and_the_event_envelope() -> None:
    first = notification(
        "k1",
        trigger="event",
        offset=41,
        run_id="run-1",
        who="alice",
        reason="maint",
        severity="error",
        advice="free some space",
        event=EVENT,
        at=datetime.datetime(
            2025, 3, 4, 7, 6, 7, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
        ),
    )
    request = request_for(
        sink("webhook"),
        Group(ids=(5, 6, 7), first=first),
        dropped=3,
        public_url="https://dash.example/",
        version="1.2.3",
        now=NOW,
    )
    assert json.loads(request.body) == {
        "id": "k1",
        "trigger": "event",
        "workspace": "deploy",
        "epoch": 1,
        "offset": 41,
        "at": "2025-03-04T05:06:07Z",
        "summary": "summary of k1",
        "run_id": "run-1",
        "who": "alice",
        "reason": "maint",
        "severity": "error",
        "advice": "free some space",
        "count": 3,
        "dropped": 3,
        "url": "https://dash.example/w/deploy?at=41",
        "event": json.loads(JSON_CODEC.encode_event(EVENT)),
    }


def test_absent_values_are_null_in_the_webhook_body() -> None:
    request = request_for(
        sink("webhook"),
        Group(ids=(1,), first=notification("k1", trigger="stalled", severity="warning")),
        dropped=0,
        public_url=None,
        version="1.2.3",
        now=NOW,
    )
    body = json.loads(request.body)
    assert body["offset"] is None
    assert body["at"] == "2025-03-04T05:06:07.890000Z"
    assert [key for key, value in body.items() if value is None] == [
        "offset",
        "run_id",
        "who",
        "reason",
        "advice",
        "url",
        "event",
    ]
    assert body["count"] == 1
    assert body["dropped"] == 0


def test_dashboard_links_quote_the_workspace_and_point_at_the_offset() -> None:
    assert dashboard_url(None, "deploy", 3) is None
    assert dashboard_url("https://d.example", "a b/c", 7) == "https://d.example/w/a%20b%2Fc?at=7"
    assert dashboard_url("https://d.example/", "deploy", None) == "https://d.example/w/deploy"


# Headers and signature ----------------------------------------------------------------------


def test_headers_carry_the_key_the_agent_the_sinks_own_and_a_signature_that_verifies() -> None:
    configured = sink(
        "webhook",
        secret="s3cret",
        headers={"Authorization": "Bearer abc", "idempotency-key": "forged", "user-agent": "mine"},
    )
    request = request_for(
        configured,
        Group(ids=(1,), first=notification("key-1")),
        dropped=0,
        public_url=None,
        version="1.2.3",
        now=NOW + 0.75,
    )
    assert request.headers == {
        "Content-Type": "application/json",
        "user-agent": "mine",
        "Authorization": "Bearer abc",
        "Idempotency-Key": "key-1",
        "X-Pierhead-Timestamp": str(int(NOW)),
        "X-Pierhead-Signature": signature("s3cret", str(int(NOW)), request.body),
    }
    assert verify_signature(
        "s3cret",
        request.headers["X-Pierhead-Timestamp"],
        request.body,
        request.headers["X-Pierhead-Signature"],
        now=NOW + 10,
    )


def test_the_signature_is_the_hmac_of_timestamp_dot_body() -> None:
    # Computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac key
    assert (
        signature("key", "1700000000", b'{"a":1}')
        == "sha256=a438e398bfafc57e4396bb7fc2304422f0f768e965d073ca313cb52e22e6ad03"
    )


def test_verify_signature_refuses_forgeries_tampering_and_stale_timestamps() -> None:
    body = b'{"id":"k"}'
    good = signature("s3cret", "1000", body)
    assert verify_signature("s3cret", "1000", body, good, now=1000)
    assert verify_signature("s3cret", "1000", body, good, now=1300)
    assert not verify_signature("s3cret", "1000", body, good, now=1301)
    assert not verify_signature("s3cret", "1000", body, good, now=699)
    assert not verify_signature("other", "1000", body, good, now=1000)
    assert not verify_signature("s3cret", "1000", body + b" ", good, now=1000)
    assert not verify_signature("s3cret", "1001", body, good, now=1000)
    assert not verify_signature("s3cret", "1e3", body, good, now=1000)
    assert not verify_signature("s3cret", "1000", body, good.upper() + "é", now=1000)
    assert not verify_signature("s3cret", "1000", body, "", now=1000)


def test_slack_and_unsigned_webhooks_have_no_signature() -> None:
    for configured in (sink("slack", secret="ignored"), sink("webhook")):
        request = request_for(
            configured,
            Group(ids=(1,), first=notification("key-1")),
            dropped=0,
            public_url=None,
            version="1.2.3",
            now=NOW,
        )
        assert request.headers == {
            "Content-Type": "application/json",
            "User-Agent": "pierhead/1.2.3",
            "Idempotency-Key": "key-1",
        }


# Slack --------------------------------------------------------------------------------------


def test_the_slack_message_shows_what_happened_who_why_the_advice_the_count_and_the_link() -> None:
    first = notification(
        "k1",
        trigger="caught",
        summary="deploy caught by alice: maint",
        who="alice",
        reason="maint",
        run_id="run-1",
        offset=12,
        advice="wait for the window",
    )
    payload = slack_payload(
        Group(ids=(1, 2, 3), first=first), dropped=4, public_url="https://d.example"
    )
    assert payload == {
        "text": "deploy: deploy caught by alice: maint",
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "*deploy*: deploy caught by alice: maint"},
            },
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": "*Who*\nalice"},
                    {"type": "mrkdwn", "text": "*Reason*\nmaint"},
                    {"type": "mrkdwn", "text": "*Run*\nrun-1"},
                ],
            },
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "*Advice*: wait for the window"},
            },
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": "and 2 more like it"},
                    {
                        "type": "mrkdwn",
                        "text": "4 notifications dropped while this sink was unreachable",
                    },
                    {
                        "type": "mrkdwn",
                        "text": "<https://d.example/w/deploy?at=12|Open in the dashboard>",
                    },
                ],
            },
        ],
    }


def test_a_single_slack_message_has_no_count_drop_or_link_and_shows_an_events_severity() -> None:
    payload = slack_payload(
        Group(ids=(1,), first=notification("k1", severity="error")), dropped=0, public_url=None
    )
    assert payload["blocks"][1:] == [
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "*Severity*\nerror"}]}
    ]
    assert payload["text"] == "deploy: summary of k1"


def test_user_text_cannot_mention_or_link_in_slack() -> None:
    hostile = "<!channel> & <@U123> <https://evil.example|click>"
    first = notification(
        "k1", summary=hostile, who=hostile, reason=hostile, advice=hostile, run_id="r<1>"
    )
    payload = slack_payload(Group(ids=(1,), first=first), dropped=0, public_url=None)
    escaped = "&lt;!channel&gt; &amp; &lt;@U123&gt; &lt;https://evil.example|click&gt;"
    texts = [payload["text"]]
    for block in payload["blocks"]:
        texts += [block["text"]["text"]] if "text" in block else []
        texts += [field["text"] for field in block.get("fields", [])]
    assert all("<" not in text and ">" not in text for text in texts)
    assert sum(escaped in text for text in texts) == 5  # text, headline, who, reason, advice
    assert "*Run*\nr&lt;1&gt;" in texts


def test_long_slack_texts_are_cut_within_slacks_limits_without_splitting_an_escape() -> None:
    first = notification("k1", summary="&" * 5000, reason="x" * 5000)
    payload = slack_payload(Group(ids=(1,), first=first), dropped=0, public_url=None)
    headline = payload["blocks"][0]["text"]["text"]
    assert len(headline) <= 3000
    assert headline.endswith("&amp;…")
    reason = payload["blocks"][1]["fields"][0]["text"]
    assert len(reason) <= 2000
    assert reason.startswith("*Reason*\nxxx")
    assert len(payload["text"]) <= 3000
