"""A sink's sender against a real HTTP receiver on loopback, over an in-memory queue.

The queue is a small in-memory :class:`SinkQueue` (the store's own queue is tested with the
stores); everything between the sender and the receiver is real: httpx, sockets, HTTP/1.1.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import email.utils
import ssl
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import trustme
from structlog.testing import capture_logs

from broker._notify import Notification, QueuedNotification, SinkConfig, SinkKind
from broker._notify_format import verify_signature
from broker._notify_sender import SinkSender, post_once
from tests.notify_receiver import Answer, NotifyReceiver
from tests.support import until

pytestmark = pytest.mark.asyncio


class MemoryQueue:
    """A sink's queue in memory: ids in order, a lease the test can take away, a dropped
    count the test can raise; every look at it is counted."""

    def __init__(self) -> None:
        self.entries: list[QueuedNotification] = []
        self.leased = True
        self.dropped_total = 0
        self.peeks = 0
        self.lease_calls = 0
        self.changed = asyncio.Event()
        self._next_id = 1

    def add(self, *notifications: Notification) -> None:
        for notification in notifications:
            self.entries.append(QueuedNotification(self._next_id, notification))
            self._next_id += 1

    async def lease(self) -> bool:
        self.lease_calls += 1
        self.changed.set()
        return self.leased

    async def peek(self, limit: int) -> list[QueuedNotification]:
        self.peeks += 1
        self.changed.set()
        return self.entries[:limit]

    async def remove(self, ids: Sequence[int]) -> bool:
        if not self.leased:
            return False
        gone = set(ids)
        self.entries = [entry for entry in self.entries if entry.id not in gone]
        self.changed.set()
        return True

    async def dropped(self) -> int:
        return self.dropped_total


def notification(
    key: str, *, workspace: str = "deploy", coalesce: str | None = None, **fields: Any
) -> Notification:
    values: dict[str, Any] = {
        "sink": "hooks",
        "trigger": "event",
        "epoch": 1,
        "at": datetime.datetime.now(datetime.UTC),
        "summary": f"summary of {key}",
        "severity": "error",
    }
    values.update(fields)
    return Notification(key=key, workspace=workspace, coalesce=coalesce or key, **values)


def sink_for(receiver: NotifyReceiver, kind: SinkKind = "webhook", **fields: Any) -> SinkConfig:
    values: dict[str, Any] = {"coalesce_s": 0.0, "timeout_s": 5.0, "retry_max_s": 0.05}
    values.update(fields)
    return SinkConfig(
        name="hooks", kind=kind, url=receiver.url, triggers=frozenset({"event"}), **values
    )


@asynccontextmanager
async def running(sender: SinkSender) -> AsyncIterator[SinkSender]:
    task = asyncio.create_task(sender.run())
    try:
        yield sender
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled(), "the sender ended before it was cancelled"


async def emptied(queue: MemoryQueue) -> None:
    await until(lambda: not queue.entries, "the queue to be emptied", changed=queue.changed)


async def looked_again(queue: MemoryQueue, times: int = 2) -> None:
    """Until the sender has looked at the queue ``times`` more times (so a request it would
    send after what was awaited has had its chance)."""
    target = queue.peeks + times
    await until(
        lambda: queue.peeks >= target,
        "the sender to look at the queue again",
        changed=queue.changed,
    )


async def lease_asked(queue: MemoryQueue, times: int = 1) -> None:
    """Until the sender has asked for (or renewed) the lease ``times`` more times."""
    target = queue.lease_calls + times
    await until(lambda: queue.lease_calls >= target, "a lease request", changed=queue.changed)


def keys(receiver: NotifyReceiver) -> list[str]:
    return [request.headers["idempotency-key"] for request in receiver.requests]


# The exact requests ------------------------------------------------------------------------


async def test_a_webhook_gets_the_json_body_headers_and_a_signature_that_verifies() -> None:
    async with NotifyReceiver() as receiver:
        queue = MemoryQueue()
        queue.add(notification("k1", offset=7, run_id="run-1", who="alice"))
        sink = sink_for(receiver, secret="s3cret", headers={"Authorization": "Bearer abc"})
        sender = SinkSender(sink, queue, public_url="https://dash.example", poll_s=0.02)
        async with running(sender):
            [request] = await receiver.wait_for(1)
            await emptied(queue)
        assert request.method == "POST"
        assert request.path == "/hook"
        assert request.headers["content-type"] == "application/json"
        assert request.headers["user-agent"] == f"pierhead/{version('pierhead')}"
        assert request.headers["idempotency-key"] == "k1"
        assert request.headers["authorization"] == "Bearer abc"
        assert verify_signature(
            "s3cret",
            request.headers["x-pierhead-timestamp"],
            request.body,
            request.headers["x-pierhead-signature"],
            now=time.time(),
        )
        body = request.json()
        assert body["id"] == "k1"
        assert body["url"] == "https://dash.example/w/deploy?at=7"
        assert (body["who"], body["run_id"], body["count"], body["dropped"]) == (
            "alice",
            "run-1",
            1,
            0,
        )
        assert sender.stats.sent == 1
        assert sender.stats.messages == 1


async def test_a_slack_sink_gets_a_block_kit_message_without_a_signature() -> None:
    async with NotifyReceiver() as receiver:
        queue = MemoryQueue()
        queue.add(notification("k1", summary="deploy caught by <!channel>"))
        sender = SinkSender(
            sink_for(receiver, "slack", secret="unused"), queue, public_url=None, poll_s=0.02
        )
        async with running(sender):
            [request] = await receiver.wait_for(1)
        payload = request.json()
        assert payload["text"] == "deploy: deploy caught by &lt;!channel&gt;"
        assert payload["blocks"][0]["text"]["text"] == "*deploy*: deploy caught by &lt;!channel&gt;"
        assert "x-pierhead-signature" not in request.headers
        assert request.headers["idempotency-key"] == "k1"


async def test_one_message_per_group_in_queue_order() -> None:
    async with NotifyReceiver() as receiver:
        queue = MemoryQueue()
        queue.add(
            notification("a1", coalesce="x"),
            notification("b1", workspace="other", coalesce="y"),
            notification("a2", coalesce="x"),
            notification("a3", coalesce="z"),
            notification("b2", workspace="other", coalesce="y"),
            notification("a4", coalesce="x"),
        )
        sender = SinkSender(
            sink_for(receiver, coalesce_s=60.0),
            queue,
            public_url=None,
            clock=lambda: time.time() + 3600,
            poll_s=0.02,
        )
        async with running(sender):
            await emptied(queue)
            await looked_again(queue)
        assert keys(receiver) == ["a1", "b1", "a3", "a4"]
        assert [request.json()["count"] for request in receiver.requests] == [2, 2, 1, 1]
        assert sender.stats.sent == 6
        assert sender.stats.messages == 4


async def test_a_storm_within_the_window_is_one_message_with_its_count() -> None:
    async with NotifyReceiver() as receiver:
        queue = MemoryQueue()
        start = datetime.datetime.now(datetime.UTC)
        # The wall clock as the sender sees it: stopped at the storm's start until the test
        # lets the window end, so no machine is too slow to fill the window in time.
        wall = [start.timestamp()]
        queue.add(notification("e0", coalesce="deploy:error", at=start))
        sink = sink_for(receiver, coalesce_s=0.05)
        sender = SinkSender(sink, queue, public_url=None, clock=lambda: wall[0], poll_s=0.02)
        async with running(sender):
            await looked_again(queue, 1)
            queue.add(
                *(
                    notification(
                        f"e{i}",
                        coalesce="deploy:error",
                        at=start + datetime.timedelta(milliseconds=i / 100),
                    )
                    for i in range(1, 1000)
                )
            )
            sender.wake()
            await looked_again(queue)
            assert receiver.requests == []
            wall[0] += 0.05
            await emptied(queue)
            await looked_again(queue)
        [request] = receiver.requests
        assert request.headers["idempotency-key"] == "e0"
        assert request.json()["count"] == 1000
        assert sender.stats.sent == 1000


async def test_a_head_older_than_the_window_goes_at_once() -> None:
    async with NotifyReceiver() as receiver:
        queue = MemoryQueue()
        queue.add(
            notification(
                "old", at=datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
            )
        )
        sender = SinkSender(
            sink_for(receiver, coalesce_s=3000.0), queue, public_url=None, poll_s=0.02
        )
        async with running(sender):
            await receiver.wait_for(1)
        assert keys(receiver) == ["old"]


async def test_wake_looks_at_the_queue_before_the_next_poll() -> None:
    async with NotifyReceiver() as receiver:
        queue = MemoryQueue()
        sender = SinkSender(sink_for(receiver), queue, public_url=None, poll_s=3600.0)
        async with running(sender):
            await until(lambda: queue.peeks >= 1, changed=queue.changed)
            queue.add(notification("k1"))
            sender.wake()
            await receiver.wait_for(1)
        assert keys(receiver) == ["k1"]


async def test_the_poll_finds_what_other_nodes_committed() -> None:
    async with NotifyReceiver() as receiver:
        queue = MemoryQueue()
        sender = SinkSender(sink_for(receiver), queue, public_url=None, poll_s=0.02)
        async with running(sender):
            await until(lambda: queue.peeks >= 1, changed=queue.changed)
            queue.add(notification("k1"))
            await receiver.wait_for(1)
        assert keys(receiver) == ["k1"]


# Failures and retries ----------------------------------------------------------------------


async def test_a_receiver_down_then_up_gets_every_notification_once_in_order() -> None:
    receiver = NotifyReceiver()
    await receiver.start()
    await receiver.stop()
    try:
        queue = MemoryQueue()
        expected = [f"{workspace}{i}" for i in range(5) for workspace in ("a", "b")]
        queue.add(*(notification(key, workspace=key[0]) for key in expected))
        sender = SinkSender(sink_for(receiver), queue, public_url=None, poll_s=0.02)
        async with running(sender):
            await until(
                lambda: sender.stats.failed_attempts >= 3, "attempts while the receiver is down"
            )
            assert "ConnectError" in (sender.stats.last_error or "")
            await receiver.start()
            await emptied(queue)
            await looked_again(queue)
        assert keys(receiver) == expected
        assert sender.stats.sent == 10
    finally:
        await receiver.stop()


async def test_500_then_200_is_retried_with_the_same_key_and_body() -> None:
    async with NotifyReceiver() as receiver:
        receiver.answer(Answer(500, body=b"oops"))
        queue = MemoryQueue()
        queue.add(notification("k1", coalesce="x"))
        sender = SinkSender(
            sink_for(receiver, secret="s3cret"), queue, public_url=None, poll_s=0.02
        )
        async with running(sender):
            await receiver.wait_for(1)
            # Arrives during the retry: it goes in the next message, the retry is unchanged.
            queue.add(notification("k2", coalesce="x"))
            await emptied(queue)
            await looked_again(queue)
        first, retry, second = receiver.requests
        assert keys(receiver) == ["k1", "k1", "k2"]
        assert retry.body == first.body
        assert first.json()["count"] == second.json()["count"] == 1
        assert verify_signature(
            "s3cret",
            retry.headers["x-pierhead-timestamp"],
            retry.body,
            retry.headers["x-pierhead-signature"],
            now=time.time(),
        )
        stats = sender.stats
        assert (stats.sent, stats.messages, stats.retries, stats.failed_attempts) == (2, 2, 1, 1)
        assert stats.last_error == "HTTP 500"


async def test_429_with_retry_after_pauses_as_the_receiver_asked() -> None:
    async with NotifyReceiver() as receiver:
        # A wall clock 0.25 s before a whole second, and a Retry-After of that second.
        resume = datetime.datetime.now(datetime.UTC).replace(microsecond=0) + datetime.timedelta(
            seconds=5
        )
        clock = resume.timestamp() - 0.25
        receiver.answer(
            Answer(429, {"Retry-After": email.utils.format_datetime(resume, usegmt=True)})
        )
        queue = MemoryQueue()
        queue.add(notification("k1"))
        with capture_logs() as logs:
            sender = SinkSender(
                sink_for(receiver, retry_max_s=30.0),
                queue,
                public_url=None,
                clock=lambda: clock,
                random=lambda: 0.0,
                poll_s=0.02,
            )
            async with running(sender):
                await emptied(queue)
        retries = [entry for entry in logs if entry["event"] == "notify_retry"]
        # The backoff (random 0, attempt 1) would be 1 s: 0.25 s is the receiver's own.
        assert [(entry["error"], entry["delay_s"]) for entry in retries] == [("HTTP 429", 0.25)]
        assert keys(receiver) == ["k1", "k1"]


async def test_wake_does_not_cut_a_retry_pause_short() -> None:
    async with NotifyReceiver() as receiver:
        receiver.answer(Answer(503, {"Retry-After": "30"}))
        queue = MemoryQueue()
        queue.add(notification("k1"))
        sender = SinkSender(
            sink_for(receiver, retry_max_s=60.0), queue, public_url=None, poll_s=0.02
        )
        async with running(sender):
            await receiver.wait_for(1)
            for _ in range(10):
                queue.add(notification(f"more{queue.lease_calls}"))
                sender.wake()
                await lease_asked(queue)
            # Ten lease renewals of the pause later, the receiver still has its 30 s.
            assert keys(receiver) == ["k1"]
            assert sender.stats.failed_attempts == 1


async def test_a_rejected_message_is_removed_counted_and_logged() -> None:
    async with NotifyReceiver() as receiver:
        receiver.answer(Answer(400, body=b"bad " + b"x" * 400))
        queue = MemoryQueue()
        queue.add(notification("k1"), notification("k2"))
        with capture_logs() as logs:
            sender = SinkSender(sink_for(receiver), queue, public_url=None, poll_s=0.02)
            async with running(sender):
                await emptied(queue)
                await looked_again(queue)
        assert keys(receiver) == ["k1", "k2"]
        [rejected] = [entry for entry in logs if entry["event"] == "notify_rejected"]
        assert rejected["log_level"] == "error"
        assert (rejected["sink"], rejected["key"], rejected["status"]) == ("hooks", "k1", 400)
        assert rejected["body"] == "bad " + "x" * 196
        stats = sender.stats
        assert (stats.rejected, stats.sent, stats.failed_attempts, stats.retries) == (1, 1, 1, 0)
        assert stats.last_error == "HTTP 400"


async def test_a_never_answering_receiver_times_out_is_retried_and_holds_up_nothing_else() -> None:
    async with NotifyReceiver() as dead, NotifyReceiver() as alive:
        dead.hold = True
        dead_queue, alive_queue = MemoryQueue(), MemoryQueue()
        dead_queue.add(notification("stuck"))
        stuck = SinkSender(sink_for(dead, timeout_s=0.2), dead_queue, public_url=None, poll_s=0.02)
        healthy = SinkSender(sink_for(alive), alive_queue, public_url=None, poll_s=0.02)
        async with running(stuck), running(healthy):
            await dead.wait_for(1)
            # While a request hangs, the other sink delivers, one message after another.
            for index in range(3):
                alive_queue.add(notification(f"ok{index}"))
                healthy.wake()
                await alive.wait_for(index + 1)
            await dead.wait_for(2)
            assert stuck.stats.last_error == "no answer within 0.2 s"
            assert stuck.stats.failed_attempts >= 1
            assert dead_queue.entries
            dead.release()
            await emptied(dead_queue)
        assert set(keys(dead)) == {"stuck"}
        assert keys(alive) == ["ok0", "ok1", "ok2"]
        assert stuck.stats.sent == 1


async def test_drops_are_reported_in_the_next_message_and_logged() -> None:
    async with NotifyReceiver() as receiver:
        queue = MemoryQueue()
        queue.dropped_total = 5  # dropped before this sender started: in stats already
        with capture_logs() as logs:
            sender = SinkSender(sink_for(receiver), queue, public_url=None, poll_s=0.02)
            async with running(sender):
                await looked_again(queue, 1)
                queue.dropped_total = 12
                queue.add(notification("k1"))
                sender.wake()
                await receiver.wait_for(1)
                queue.add(notification("k2"))
                sender.wake()
                await receiver.wait_for(2)
        assert [request.json()["dropped"] for request in receiver.requests] == [7, 0]
        [dropped] = [entry for entry in logs if entry["event"] == "notify_dropped"]
        assert (dropped["log_level"], dropped["dropped"], dropped["total"]) == ("warning", 7, 12)


async def test_without_the_lease_nothing_is_sent_until_it_is_back() -> None:
    async with NotifyReceiver() as receiver:
        queue = MemoryQueue()
        queue.leased = False
        queue.add(notification("k1"))
        sender = SinkSender(sink_for(receiver), queue, public_url=None, poll_s=0.02)
        async with running(sender):
            await lease_asked(queue, 3)
            assert receiver.requests == []
            assert queue.peeks == 0
            assert not sender.stats.holds_lease
            queue.leased = True
            await emptied(queue)
        assert keys(receiver) == ["k1"]
        assert sender.stats.holds_lease


async def test_a_lease_lost_during_a_retry_pause_stops_the_retry() -> None:
    async with NotifyReceiver() as receiver:
        receiver.answer(Answer(503, {"Retry-After": "30"}))
        queue = MemoryQueue()
        queue.add(notification("k1"))
        sender = SinkSender(
            sink_for(receiver, retry_max_s=60.0), queue, public_url=None, poll_s=0.02
        )
        async with running(sender):
            await receiver.wait_for(1)
            queue.leased = False
            await until(lambda: not sender.stats.holds_lease, changed=queue.changed)
            queue.leased = True
            # The new holder's first look sends at once: the old pause was given up.
            await emptied(queue)
        assert keys(receiver) == ["k1", "k1"]


class FlakyQueue(MemoryQueue):
    """A queue whose store fails the first few looks, as Redis does while it is down."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def peek(self, limit: int) -> list[QueuedNotification]:
        if self.failures:
            self.failures -= 1
            self.changed.set()
            raise ConnectionError("store unreachable")
        return await super().peek(limit)


async def test_a_store_that_fails_for_a_while_does_not_end_the_sender() -> None:
    async with NotifyReceiver() as receiver:
        queue = FlakyQueue(failures=3)
        queue.add(notification("k1"))
        with capture_logs() as logs:
            sender = SinkSender(sink_for(receiver), queue, public_url=None, poll_s=0.02)
            async with running(sender):
                await emptied(queue)
        assert keys(receiver) == ["k1"]
        failures = [entry for entry in logs if entry["event"] == "notify_step_failed"]
        assert len(failures) == 3
        assert (failures[0]["error"], failures[0]["detail"]) == (
            "ConnectionError",
            "store unreachable",
        )


# TLS ---------------------------------------------------------------------------------------


@pytest.fixture
def tls(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return server, ca_file


async def test_tls_is_verified_against_the_sinks_ca_file(tls: tuple[ssl.SSLContext, Path]) -> None:
    server, ca_file = tls
    async with NotifyReceiver(tls=server) as receiver:
        queue = MemoryQueue()
        queue.add(notification("k1"))
        sender = SinkSender(
            sink_for(receiver, ca_file=ca_file), queue, public_url=None, poll_s=0.02
        )
        async with running(sender):
            await emptied(queue)
        assert keys(receiver) == ["k1"]


async def test_a_certificate_nobody_trusts_is_not_sent_to(tls: tuple[ssl.SSLContext, Path]) -> None:
    server, _ = tls
    async with NotifyReceiver(tls=server) as receiver:
        result = await post_once(sink_for(receiver), notification("k1"), public_url=None)
        assert not result.ok
        assert "CERTIFICATE_VERIFY_FAILED" in (result.error or "")
        assert receiver.requests == []


async def test_a_tls_handshake_cut_short_says_why_it_failed() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)  # the TLS hello, which a plain HTTP server may just hang up on
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        async with NotifyReceiver() as receiver:
            sink = dataclasses.replace(sink_for(receiver), url=f"https://127.0.0.1:{port}/hook")
        result = await post_once(sink, notification("k1"), public_url=None)
    assert not result.ok
    error = result.error or ""
    assert error.startswith("ConnectError: ")
    assert len(error) > len("ConnectError: ")
    assert "/hook" not in error


# One attempt (pierhead notify test) --------------------------------------------------------


async def test_post_once_reports_the_status_or_the_error() -> None:
    async with NotifyReceiver() as receiver:
        receiver.answer(Answer(204), Answer(404, body=b"no such hook"))
        sink = sink_for(receiver)
        accepted = await post_once(sink, notification("k1"), public_url=None)
        refused = await post_once(sink, notification("k2"), public_url=None)
        await receiver.stop()
        down = await post_once(sink, notification("k3"), public_url=None)
    assert (accepted.ok, accepted.status, accepted.describe()) == (True, 204, "OK 204")
    assert (refused.ok, refused.status, refused.describe()) == (
        False,
        404,
        "HTTP 404: no such hook",
    )
    assert (down.ok, down.status) == (False, None)
    assert "ConnectError" in down.describe()
    assert keys(receiver) == ["k1", "k2"]
