"""Delivering one sink's queue over HTTP: the asyncio side of notifications.

One :class:`SinkSender` per sink, one task each: it holds the sink's sender lease, reads the
queue (oldest first), waits out the coalescing window of the head, posts one message for the
head and the notifications like it, and removes them from the queue once the receiver
accepted them (or refused them for good). What a message says is decided by
``_notify_format``, when to try again by ``_notify_retry``; this module only moves bytes and
time.

Why nothing else waits for a receiver: the sender is its own task and talks to the broker
only through its :class:`SinkQueue` (the store, read and written off the event loop) and
:meth:`SinkSender.wake`. A receiver that is slow, down or never answers holds up this sink's
messages and nothing else; each request is bounded by the sink's ``timeout_s``.

Delivery is at least once; the idempotency key (the first notification's key) lets a
receiver drop the double that a lost answer, a crash between the POST and the removal, or a
lease moving to another node can cause. A message being retried is sent again unchanged
(same notifications, same count, same dropped count: the same body under the same key).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import random as random_module
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from importlib.metadata import version as package_version
from typing import Final, Protocol

import httpx
import structlog

from ._notify import Notification, QueuedNotification, SinkConfig
from ._notify_format import Group, Request, coalesced, request_for
from ._notify_retry import (
    BODY_EXCERPT_CHARS,
    Delivered,
    Outcome,
    Rejected,
    Retry,
    excerpt,
    outcome_of_answer,
    outcome_of_failure,
)

log = structlog.get_logger("pierhead.notify")

PEEK_LIMIT: Final = 1000
"""How many queued notifications one look at the queue reads: a storm bigger than this is
more than one message, each with its count."""
POLL_S: Final = 1.0
"""How often the queue is looked at without a :meth:`SinkSender.wake` (notifications
committed by other nodes), and how often a lease is renewed or asked for again."""


class SinkQueue(Protocol):
    """A sink's durable queue, as the sender sees it (the store's ``notify_*`` for one sink).

    The sender calls :meth:`lease` before each look at the queue and every ``poll_s`` while it
    waits; the lease's time to live must outlast ``poll_s`` plus the sink's ``timeout_s``.
    """

    async def lease(self) -> bool:
        """Take or renew the right to send this sink's queue; ``False``: another node has it."""
        ...

    async def peek(self, limit: int) -> list[QueuedNotification]:
        """Up to ``limit`` queued notifications, oldest first."""
        ...

    async def remove(self, ids: Sequence[int]) -> bool:
        """Remove delivered (or given up) notifications; ``False``, with nothing removed, when
        the lease was lost meanwhile."""
        ...

    async def dropped(self) -> int:
        """How many of the sink's notifications were dropped so far (the queue was full)."""
        ...


@dataclass(frozen=True, slots=True)
class SenderStats:
    """A sender's counters since it started, for ``stats`` and the log."""

    sent: int = 0
    """Notifications the receiver accepted (a message counts all it stands for)."""
    messages: int = 0
    """Messages the receiver accepted."""
    retries: int = 0
    """Attempts that repeated a failed one."""
    rejected: int = 0
    """Notifications given up because the receiver refused their message for good."""
    failed_attempts: int = 0
    """Attempts that did not deliver: no answer, an answer to try again after, a refusal."""
    last_error: str | None = None
    holds_lease: bool = False


@dataclass(frozen=True, slots=True)
class PostResult:
    """One attempt's result: the status when the receiver answered, else what went wrong."""

    ok: bool
    status: int | None
    error: str | None

    def describe(self) -> str:
        if self.ok:
            return f"OK {self.status}"
        return self.error or f"HTTP {self.status}"


@dataclass(frozen=True, slots=True)
class _Message:
    """A group being delivered, with what its body says about drops (kept for retries, so a
    retry sends the same body)."""

    group: Group
    dropped: int
    dropped_total: int
    """The queue's dropped count when the message was made."""


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    retry_after: str | None
    body: bytes


def http_client(sink: SinkConfig) -> httpx.AsyncClient:
    """The sink's HTTP client: its timeout, TLS verified against the system's certificates
    and the sink's ``ca_file``, redirects not followed (a 3xx is a refusal)."""
    context = ssl.create_default_context()
    if sink.ca_file is not None:
        context.load_verify_locations(cafile=sink.ca_file)
    return httpx.AsyncClient(
        timeout=httpx.Timeout(sink.timeout_s), verify=context, follow_redirects=False
    )


async def _post(client: httpx.AsyncClient, request: Request, timeout_s: float) -> _Answer | str:
    """One POST: the answer (with the start of its body when it is not a success), or why
    there is none. ``timeout_s`` bounds the whole exchange, however slowly a receiver
    trickles its answer."""
    try:
        async with asyncio.timeout(timeout_s):
            async with client.stream(
                "POST", request.url, content=request.body, headers=request.headers
            ) as response:
                body = b""
                if not response.is_success:
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) >= BODY_EXCERPT_CHARS * 4:
                            break
                return _Answer(response.status_code, response.headers.get("retry-after"), body)
    except (TimeoutError, httpx.TimeoutException):
        return f"no answer within {timeout_s:g} s"
    except (httpx.HTTPError, httpx.InvalidURL, ssl.SSLError, OSError) as exc:
        # httpx's messages do not quote the URL, which may be a credential (Slack's is).
        reason = _innermost_message(exc)
        return f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__
    except ValueError as exc:
        # A header the request cannot carry (not ASCII): its message quotes the value.
        return f"{type(exc).__name__} building the request"


def _innermost_message(exc: BaseException) -> str:
    """The message of the deepest cause that has one: an httpx error wrapping a TLS failure
    says nothing itself, the certificate error it wraps says why."""
    message = str(exc)
    cause = exc.__cause__ or exc.__context__
    while cause is not None:
        message = str(cause) or message
        cause = cause.__cause__ or cause.__context__
    return message


class SinkSender:
    """Sends one sink's queue, in order per workspace, until cancelled (see the module)."""

    def __init__(
        self,
        sink: SinkConfig,
        queue: SinkQueue,
        *,
        public_url: str | None,
        poll_s: float = POLL_S,
        clock: Callable[[], float] = time.time,
        random: Callable[[], float] = random_module.random,
    ) -> None:
        self.sink = sink
        self._queue = queue
        self._public_url = public_url
        self._poll_s = poll_s
        self._clock = clock
        self._random = random
        self._version = package_version("pierhead")
        self._client = http_client(sink)
        self._wakeup = asyncio.Event()
        self._stats = SenderStats()
        self._pending: _Message | None = None
        self._failures = 0
        """Failed attempts in a row: the backoff grows with them, whatever message failed."""
        self._dropped_sent: int | None = None
        """The queue's dropped count reported by the last delivered message (or at start)."""
        self._dropped_seen: int | None = None
        self._log = log.bind(sink=sink.name)

    @property
    def stats(self) -> SenderStats:
        return self._stats

    def wake(self) -> None:
        """New notifications of this sink were committed: look at the queue now (a pause
        before a retry or for the coalescing window is not cut short)."""
        self._wakeup.set()

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self._step()
                except Exception as exc:
                    # The store unreachable for a while (a Redis outage): the queue is still
                    # there when it is back, so the sender waits and looks again rather
                    # than end and leave the sink unserved.
                    # A store's message says what is unreachable; any other may quote a
                    # header value or the URL, which can be a credential: its type only.
                    detail = str(exc) if isinstance(exc, ConnectionError) else None
                    self._log.warning("notify_step_failed", error=type(exc).__name__, detail=detail)
                    self._pending = None
                    await asyncio.sleep(self._poll_s)
        finally:
            await self._client.aclose()

    async def _step(self) -> None:
        if not await self._hold_lease():
            await asyncio.sleep(self._poll_s)
            return
        self._wakeup.clear()
        queued = await self._queue.peek(PEEK_LIMIT)
        dropped_total = await self._queue.dropped()
        self._note_dropped(dropped_total)
        message = self._message(queued, dropped_total)
        if message is None:
            await self._idle()
            return
        if message is not self._pending:
            due_in = message.group.first.at.timestamp() + self.sink.coalesce_s - self._clock()
            if due_in > 0:
                # Capped: a head stamped in the future by a node whose clock is ahead must
                # not wait longer than the window.
                await self._pause(min(due_in, self.sink.coalesce_s))
                return  # look again: the window may have brought more like the head
        # Looking at the queue may have taken a while: the lease must still hold, with more
        # than a request's time left (renewed when a third of it has gone), when the POST goes.
        if not await self._hold_lease():
            return
        await self._deliver(message)

    async def _hold_lease(self) -> bool:
        held = await self._queue.lease()
        if held != self._stats.holds_lease:
            self._log.info("notify_lease_taken" if held else "notify_lease_lost")
            self._stats = replace(self._stats, holds_lease=held)
        if not held:
            # Another node sends now; a message of ours may be sent by it meanwhile.
            self._pending = None
        return held

    def _note_dropped(self, total: int) -> None:
        if self._dropped_sent is None:
            self._dropped_sent = total
        if self._dropped_seen is not None and total > self._dropped_seen:
            self._log.warning("notify_dropped", dropped=total - self._dropped_seen, total=total)
        self._dropped_seen = total

    def _message(self, queued: list[QueuedNotification], dropped_total: int) -> _Message | None:
        """The message being retried while all it stands for is still at the head of the
        queue, else the next one."""
        pending = self._pending
        if pending is not None and queued and queued[0].id == pending.group.ids[0]:
            present = {entry.id for entry in queued}
            if all(id_ in present for id_ in pending.group.ids):
                return pending
        self._pending = None
        group = coalesced(queued, window_s=self.sink.coalesce_s)
        if group is None:
            return None
        assert self._dropped_sent is not None
        return _Message(group, max(dropped_total - self._dropped_sent, 0), dropped_total)

    async def _idle(self) -> None:
        """Until :meth:`wake` or the next poll."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._poll_s):
                await self._wakeup.wait()

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds`` (not cut short by :meth:`wake`), renewing the lease every poll;
        returns early when the lease is lost."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (remaining := deadline - loop.time()) > 0:
            await asyncio.sleep(min(remaining, self._poll_s))
            if loop.time() < deadline and not await self._hold_lease():
                return

    async def _deliver(self, message: _Message) -> None:
        group = message.group
        request = request_for(
            self.sink,
            group,
            dropped=message.dropped,
            public_url=self._public_url,
            version=self._version,
            now=self._clock(),
        )
        retry = message is self._pending
        answer = await _post(self._client, request, self.sink.timeout_s)
        attempt = self._failures + 1
        outcome: Outcome
        if isinstance(answer, str):
            outcome = outcome_of_failure(
                answer, attempt=attempt, retry_max_s=self.sink.retry_max_s, random=self._random()
            )
        else:
            outcome = outcome_of_answer(
                answer.status,
                retry_after=answer.retry_after,
                body=answer.body,
                attempt=attempt,
                retry_max_s=self.sink.retry_max_s,
                random=self._random(),
                now=datetime.datetime.fromtimestamp(self._clock(), datetime.UTC),
            )
        stats = self._stats
        if retry:
            stats = replace(stats, retries=stats.retries + 1)
        if isinstance(outcome, Retry):
            self._failures += 1
            self._pending = message
            self._stats = replace(
                stats, failed_attempts=stats.failed_attempts + 1, last_error=outcome.error
            )
            self._log.warning(
                "notify_retry",
                key=group.first.key,
                error=outcome.error,
                attempt=attempt,
                delay_s=round(outcome.delay_s, 3),
            )
            await self._pause(outcome.delay_s)
            return
        self._failures = 0
        self._pending = None
        if isinstance(outcome, Delivered):
            self._dropped_sent = message.dropped_total
            self._stats = replace(stats, sent=stats.sent + group.count, messages=stats.messages + 1)
            self._log.debug(
                "notify_sent", key=group.first.key, count=group.count, status=outcome.status
            )
        else:
            assert isinstance(outcome, Rejected)
            error = f"HTTP {outcome.status}"
            self._stats = replace(
                stats,
                rejected=stats.rejected + group.count,
                failed_attempts=stats.failed_attempts + 1,
                last_error=error,
            )
            self._log.error(
                "notify_rejected",
                key=group.first.key,
                count=group.count,
                status=outcome.status,
                body=outcome.body,
            )
        if not await self._queue.remove(group.ids):
            # Another node holds the lease now and will send these again, under the same
            # key: a receiver that keeps keys drops the double.
            self._log.info("notify_remove_lost_lease", key=group.first.key)


async def post_once(
    sink: SinkConfig, notification: Notification, *, public_url: str | None
) -> PostResult:
    """One attempt to deliver ``notification`` to ``sink``, no retry (``pierhead notify
    test``): the status, or what went wrong."""
    request = request_for(
        sink,
        Group(ids=(0,), first=notification),
        dropped=0,
        public_url=public_url,
        version=package_version("pierhead"),
        now=time.time(),
    )
    async with http_client(sink) as client:
        answer = await _post(client, request, sink.timeout_s)
    if isinstance(answer, str):
        return PostResult(ok=False, status=None, error=answer)
    if 200 <= answer.status < 300:
        return PostResult(ok=True, status=answer.status, error=None)
    text = excerpt(answer.body)
    error = f"HTTP {answer.status}: {text}" if text else f"HTTP {answer.status}"
    return PostResult(ok=False, status=answer.status, error=error)
