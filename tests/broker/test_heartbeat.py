"""A peer that answers no ping is given up after ``--heartbeat-timeout``, not twice that."""

from __future__ import annotations

from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

import schema
from broker._config import BrokerConfig
from broker._heartbeat import Heartbeat
from broker.testing import broker_process
from tests.broker.wire import WireClient, watcher_hello, wire_client, worker_hello


def run(heartbeat: Heartbeat, until: float, step: float = 0.125) -> list[tuple[float, str]]:
    """Poll as an event loop would, ``step`` apart; what was due when."""
    beats: list[tuple[float, str]] = []
    now = 0.0
    while now <= until:
        while (due := heartbeat.poll(now)) is not None:
            beats.append((now, due))
            if due == "dead":
                return beats
        now += step
    return beats


def test_a_silent_peer_is_dead_at_the_timeout_after_the_pings_that_fit() -> None:
    assert run(Heartbeat(1.0, 2.5, now=0.0), until=10) == [
        (1.0, "ping"),
        (2.0, "ping"),
        (2.5, "dead"),
    ]


def test_the_defaults_give_a_stalled_peer_up_ten_seconds_after_its_last_pong() -> None:
    defaults = BrokerConfig()
    heartbeat = Heartbeat(defaults.heartbeat_s, defaults.heartbeat_timeout_s, now=0.0)
    assert run(heartbeat, until=3.0) == []
    heartbeat.heard(3.0)  # the last pong, then silence
    assert run(heartbeat, until=60) == [(5.0, "ping"), (10.0, "ping"), (13.0, "dead")]
    assert heartbeat.pings_since_heard == 2


def test_pongs_keep_a_peer_alive_and_a_late_poll_catches_up_in_order() -> None:
    heartbeat = Heartbeat(1.0, 2.5, now=0.0)
    for second in range(1, 20):
        assert heartbeat.poll(float(second)) == "ping"
        heartbeat.heard(second + 0.01)
    assert heartbeat.deadline == pytest.approx(21.51)
    # The event loop wakes late: the pings due meanwhile go first, then "dead", but only once
    # the deadline has passed.
    assert [heartbeat.poll(21.5), heartbeat.poll(21.5), heartbeat.poll(21.5)] == [
        "ping",
        "ping",
        None,
    ]
    assert heartbeat.poll(21.52) == "dead"


@pytest.mark.parametrize(("interval", "timeout"), [(5, 5), (5, 4), (0, 1), (1, float("inf"))])
def test_the_timeout_must_be_longer_than_the_interval(interval: float, timeout: float) -> None:
    with pytest.raises(ValueError, match="longer"):
        Heartbeat(interval, timeout, now=0.0)
    if timeout != float("inf"):
        with pytest.raises(ValueError, match="heartbeat timeout longer"):
            BrokerConfig(heartbeat_s=interval, heartbeat_timeout_s=timeout)


@pytest.mark.asyncio
async def test_a_stalled_worker_is_closed_at_the_heartbeat_timeout(tmp_path: Path) -> None:
    interval, timeout = 1.0, 2.5
    async with (
        broker_process(
            tmp_path / "data", "--heartbeat", str(interval), "--heartbeat-timeout", str(timeout)
        ) as broker,
        wire_client(broker.url, watcher_hello(client="watcher")) as watcher,
    ):
        subscribed = await watcher.request(
            schema.Subscribe(id=watcher.next_id(), pattern="w", from_="earliest")
        )
        assert isinstance(subscribed, schema.Subscribed)
        async with connect(
            broker.url, subprotocols=[Subprotocol(schema.JSON_CODEC.subprotocol)]
        ) as stalled:
            await WireClient(stalled, schema.JSON_CODEC).send(worker_hello("w", "stalled"))
            # From here on this client reads nothing, so answers no ping: a frozen process.
            stalled.transport.pause_reading()
            presence: list[str] = []
            async for frame in watcher.frames_until_closed():
                if isinstance(frame, schema.Events):
                    presence += [
                        e.payload.state
                        for e in frame.events
                        if isinstance(e.payload, schema.Presence)
                    ]
                if "disconnected" in presence:
                    break
            assert presence == ["connected", "disconnected"]
            stalled.transport.abort()  # a frozen client would not take part in a close either
        # Drained and gone, the broker has written all its logs.
        broker.terminate()
        assert await broker.wait() == 0
    closed = {r["client"]: r for r in broker.events("session_closed")}
    assert closed[""]["reason"] == "heartbeat timeout", broker.describe()
    assert closed[""]["heartbeat_timeout_s"] == timeout
    # Pings go out every second from the connection's start, and the session is closed the
    # moment 2.5 s have passed without a pong: two or three pings fit in that silence,
    # wherever it began. (websockets' keepalive pinged, waited the timeout for that one ping's
    # pong, then waited for a closing handshake the frozen peer would never complete.)
    assert closed[""]["unanswered_pings"] in (2, 3), broker.describe()
    # The watcher answered every ping all along: it stayed until the broker drained.
    assert closed["watcher"]["reason"] == "broker draining", broker.describe()
