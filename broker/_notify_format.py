"""What a sink's next message is and how it looks on the wire: pure functions, no I/O.

:func:`coalesced` picks the next message from a snapshot of a sink's queue; :func:`request_for`
turns it into the bytes and headers of one POST, for Slack (Block Kit) or a generic webhook
(JSON, signed). :func:`verify_signature` is the receiver's side of the webhook signature,
kept next to the code that signs so the two cannot drift (docs/operations.md shows it).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from schema import EventMsg

from ._notify import Notification, QueuedNotification, SinkConfig, Trigger

SIGNATURE_HEADER: Final = "X-Pierhead-Signature"
TIMESTAMP_HEADER: Final = "X-Pierhead-Timestamp"
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
SIGNATURE_TOLERANCE_S: Final = 300.0
"""How far a signature's timestamp may be from the receiver's clock before it is refused
as a replay (or a clock that is wrong)."""

_SLACK_TEXT_MAX: Final = 3000
"""Slack's limit on a section's text (and a sensible one for the fallback ``text``)."""
_SLACK_FIELD_MAX: Final = 2000
"""Slack's limit on one field of a section."""

_JSON: Final = msgspec.json.Encoder()


# Coalescing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Group:
    """The notifications one message stands for: ``first`` is what it shows, the others are
    counted ("and N more like it"). ``ids`` name them all for removal from the queue."""

    ids: tuple[int, ...]
    first: Notification

    @property
    def count(self) -> int:
        return len(self.ids)


def coalesced(
    queued: Sequence[QueuedNotification], *, window_s: float | None = None
) -> Group | None:
    """The next message to send from a snapshot of a sink's queue (oldest first), or ``None``
    when the queue is empty.

    The head goes out with every later notification of its workspace with the same
    ``coalesce`` value, up to the first one of its workspace that differs: a message never
    carries a notification past an earlier one of the same workspace that is still waiting,
    so each workspace's notifications reach the receiver in order. Other workspaces'
    notifications in between are passed over (they keep their place for later messages).
    With ``window_s``, the group also ends at the first notification of the workspace made
    more than ``window_s`` after the head: a storm is one message, a day of errors is not.
    """
    if not queued:
        return None
    head = queued[0]
    first = head.notification
    until = None if window_s is None else first.at + datetime.timedelta(seconds=window_s)
    ids = [head.id]
    for entry in queued[1:]:
        notification = entry.notification
        if notification.workspace != first.workspace:
            continue
        if notification.coalesce != first.coalesce:
            break
        if until is not None and notification.at > until:
            break
        ids.append(entry.id)
    return Group(ids=tuple(ids), first=first)


# Request ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    """One POST to a sink: the body exactly as sent and every header."""

    url: str = field(repr=False)
    """May be a credential (a Slack webhook's is): kept out of the repr, as the headers."""
    body: bytes
    headers: dict[str, str] = field(repr=False)


def request_for(
    sink: SinkConfig,
    group: Group,
    *,
    dropped: int,
    public_url: str | None,
    version: str,
    now: float,
) -> Request:
    """The POST that delivers ``group`` to ``sink``.

    ``dropped``: how many of the sink's notifications were dropped (queue full) since the
    last message; ``now``: Unix time, for the signature's timestamp.
    """
    if sink.kind == "slack":
        body = _JSON.encode(slack_payload(group, dropped=dropped, public_url=public_url))
    else:
        body = _JSON.encode(webhook_body(group, dropped=dropped, public_url=public_url))
    return Request(
        url=sink.url,
        body=body,
        headers=request_headers(sink, group.first, body, version=version, now=now),
    )


def request_headers(
    sink: SinkConfig, first: Notification, body: bytes, *, version: str, now: float
) -> dict[str, str]:
    """Content type, user agent, the sink's own headers, the idempotency key and, for a
    webhook with a secret, the timestamp and signature.

    The sink's headers cannot replace the idempotency key or the signature: those are what
    a receiver relies on to refuse doubles and forgeries.
    """
    headers = {"Content-Type": "application/json", "User-Agent": f"pierhead/{version}"}
    protected = {IDEMPOTENCY_HEADER.lower(), SIGNATURE_HEADER.lower(), TIMESTAMP_HEADER.lower()}
    for name, value in sink.headers.items():
        if name.lower() in protected:
            continue
        for existing in [h for h in headers if h.lower() == name.lower()]:
            del headers[existing]
        headers[name] = value
    headers[IDEMPOTENCY_HEADER] = first.key
    if sink.kind == "webhook" and sink.secret is not None:
        timestamp = str(int(now))
        headers[TIMESTAMP_HEADER] = timestamp
        headers[SIGNATURE_HEADER] = signature(sink.secret, timestamp, body)
    return headers


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=`` and the hex HMAC-SHA256 of ``{timestamp}.`` followed by the body."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify_signature(
    secret: str,
    timestamp: str,
    body: bytes,
    header: str,
    now: float,
    tolerance_s: float = SIGNATURE_TOLERANCE_S,
) -> bool:
    """Whether a webhook request is genuine and fresh: ``header`` is the
    ``X-Pierhead-Signature`` value, ``timestamp`` the ``X-Pierhead-Timestamp`` value, ``body``
    the raw request body and ``now`` the receiver's Unix time.

    A timestamp more than ``tolerance_s`` from ``now`` is refused, so a captured request
    cannot be replayed later; the comparison takes the same time whatever the header holds.
    """
    if not timestamp.isascii() or not timestamp.isdigit():
        return False
    if abs(now - int(timestamp)) > tolerance_s:
        return False
    expected = signature(secret, timestamp, body).encode()
    return hmac.compare_digest(expected, header.encode("utf-8", "replace"))


def dashboard_url(public_url: str | None, workspace: str, offset: int | None) -> str | None:
    """The dashboard's page of the workspace, at ``offset`` when there is one."""
    if public_url is None:
        return None
    url = f"{public_url.rstrip('/')}/w/{urllib.parse.quote(workspace, safe='')}"
    return url if offset is None else f"{url}?at={offset}"


# Generic webhook ----------------------------------------------------------------------------


class WebhookBody(msgspec.Struct, frozen=True, kw_only=True):
    """The JSON body of a generic webhook: every key is always present (``null`` when the
    notification has no such value). ``event`` is the event's envelope exactly as the
    broker sends it to watchers."""

    id: str
    trigger: Trigger
    workspace: str
    epoch: int
    offset: int | None
    at: datetime.datetime
    summary: str
    run_id: str | None
    who: str | None
    reason: str | None
    severity: str
    advice: str | None
    count: int
    dropped: int
    url: str | None
    event: EventMsg | None


def webhook_body(group: Group, *, dropped: int, public_url: str | None) -> WebhookBody:
    first = group.first
    return WebhookBody(
        id=first.key,
        trigger=first.trigger,
        workspace=first.workspace,
        epoch=first.epoch,
        offset=first.offset,
        at=_utc(first.at),
        summary=first.summary,
        run_id=first.run_id,
        who=first.who,
        reason=first.reason,
        severity=first.severity,
        advice=first.advice,
        count=group.count,
        dropped=dropped,
        url=dashboard_url(public_url, first.workspace, first.offset),
        event=first.event,
    )


def _utc(at: datetime.datetime) -> datetime.datetime:
    """``at`` in UTC (encoded with a ``Z``); a naive time is taken as UTC already."""
    if at.tzinfo is None:
        return at.replace(tzinfo=datetime.UTC)
    return at.astimezone(datetime.UTC)


# Slack --------------------------------------------------------------------------------------


def slack_escape(text: str) -> str:
    """Text from users made inert for Slack's ``mrkdwn``: ``<!channel>``, ``<@U123>`` and
    ``<https://evil|click>`` show as typed instead of pinging people or hiding a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _escaped_within(text: str, limit: int) -> str:
    """``text`` escaped, cut (with an ellipsis) so that the escaped form fits ``limit``; the
    cut is made before escaping, so it never splits an ``&amp;``."""
    escaped = slack_escape(text)
    if len(escaped) <= limit:
        return escaped
    length = 0
    for index, char in enumerate(text):
        length += len(slack_escape(char))
        if length > limit - 1:
            return slack_escape(text[:index]) + "…"
    return escaped  # pragma: no cover - the loop returns before the end of an over-long text


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


def slack_payload(group: Group, *, dropped: int, public_url: str | None) -> dict[str, Any]:
    """A Slack incoming-webhook message (Block Kit): the workspace and what happened, who,
    why, the run and the severity, the advice, how many more like it, what was dropped, and
    the dashboard link. ``text`` is the fallback shown in notifications and by clients that
    do not render blocks. Every text that comes from users is escaped."""
    first = group.first
    headline = f"*{slack_escape(first.workspace)}*: "
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": _mrkdwn(
                headline + _escaped_within(first.summary, _SLACK_TEXT_MAX - len(headline))
            ),
        }
    ]
    fields = [
        _mrkdwn(f"*{label}*\n{_escaped_within(value, _SLACK_FIELD_MAX - len(label) - 3)}")
        for label, value in (
            ("Who", first.who),
            ("Reason", first.reason),
            ("Run", first.run_id),
            ("Severity", _shown_severity(first)),
        )
        if value is not None
    ]
    if fields:
        blocks.append({"type": "section", "fields": fields})
    if first.advice is not None:
        advice = "*Advice*: "
        blocks.append(
            {
                "type": "section",
                "text": _mrkdwn(
                    advice + _escaped_within(first.advice, _SLACK_TEXT_MAX - len(advice))
                ),
            }
        )
    context: list[str] = []
    if group.count > 1:
        context.append(f"and {group.count - 1} more like it")
    if dropped > 0:
        context.append(f"{dropped} notifications dropped while this sink was unreachable")
    url = dashboard_url(public_url, first.workspace, first.offset)
    if url is not None:
        context.append(f"<{url}|Open in the dashboard>")
    if context:
        blocks.append({"type": "context", "elements": [_mrkdwn(text) for text in context]})
    fallback = f"{first.workspace}: {first.summary}"
    return {"text": _escaped_within(fallback, _SLACK_TEXT_MAX), "blocks": blocks}


def _shown_severity(notification: Notification) -> str | None:
    """The severity, where it says something: on an event's notification, or when it is
    above the default."""
    if notification.trigger == "event" or notification.severity != "info":
        return notification.severity
    return None


__all__ = [
    "Group",
    "Request",
    "WebhookBody",
    "coalesced",
    "dashboard_url",
    "request_for",
    "request_headers",
    "signature",
    "slack_escape",
    "slack_payload",
    "verify_signature",
    "webhook_body",
]
