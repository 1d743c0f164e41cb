"""``--url`` and ``PIERHEAD_URL`` with several brokers' addresses, separated by commas: each
checked before anything is sent, tried in turn, and every one named when none answers.

The brokers here are independent (each its own store): what is tested is the command's failover,
not what the brokers share.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

import sdk
from broker.testing import broker_process, running_broker
from tests.support import Tail, pierhead, subscribed

pytestmark = pytest.mark.asyncio

REFUSED = "connection refused (nothing listens there)"


@pytest.fixture
def dead_urls() -> Iterator[list[str]]:
    """Two addresses where connections are refused: ports bound, never listening, held by the
    test so nothing else can take them."""
    with socket.socket() as one, socket.socket() as two:
        one.bind(("127.0.0.1", 0))
        two.bind(("127.0.0.1", 0))
        yield [f"ws://127.0.0.1:{s.getsockname()[1]}" for s in (one, two)]


async def test_pierhead_url_with_a_dead_broker_first_reaches_the_next(
    dead_urls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_broker() as broker, sdk.Worker(broker.url, "job", run_id="r") as worker:
        await worker.post_event("stored")
        monkeypatch.setenv("PIERHEAD_URL", f"{dead_urls[0]} , {broker.url}")
        code, out, err = await pierhead("ls", "--json")
        assert (code, err) == (0, "")
        assert [json.loads(line)["name"] for line in out.splitlines()] == ["job"]
        code, out, err = await pierhead("catch", "job")
        assert (code, out, err) == (0, "ok\n", "")
        assert worker.caught
        # --url takes the same list, and wins over the environment.
        monkeypatch.setenv("PIERHEAD_URL", dead_urls[1])
        code, out, err = await pierhead("release", "job", "--url", f"{dead_urls[0]},{broker.url}")
        assert (code, out, err) == (0, "ok\n", "")
        code, out, _ = await pierhead(
            "watch", "--once", "--json", "--url", f"{dead_urls[0]},{broker.url}"
        )
        assert code == 0
        assert [json.loads(line)["name"] for line in out.splitlines()] == ["job"]


async def test_cannot_reach_names_every_address_and_why(dead_urls: list[str]) -> None:
    for command in (["ls"], ["tail", "w"], ["watch", "--once"]):
        code, out, err = await pierhead(*command, "--url", ",".join(dead_urls))
        assert (code, out) == (3, ""), command
        first, second = dead_urls
        assert err == (
            f"pierhead: cannot reach the broker at {first}: {REFUSED}; nor at {second}: {REFUSED}\n"
        ), command


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ws://127.0.0.1:9,http://127.0.0.1:9", "invalid --url 'http://127.0.0.1:9': "),
        ("ws://127.0.0.1:9, not a url", "invalid --url 'not a url': "),
        (
            "ws://127.0.0.1:9,,ws://127.0.0.1:10",
            "invalid --url 'ws://127.0.0.1:9,,ws://127.0.0.1:10': an empty address between commas",
        ),
        ("ws://127.0.0.1:9,", "invalid --url 'ws://127.0.0.1:9,': an empty address between commas"),
    ],
)
async def test_a_bad_address_in_the_list_is_a_usage_error_naming_it(
    url: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = await pierhead("ls", "--url", url)
    assert (code, out) == (2, "")
    assert err.splitlines()[-1].startswith(f"pierhead ls: error: {message}"), err
    monkeypatch.setenv("PIERHEAD_URL", url)
    code, out, err = await pierhead("catch", "job")
    assert (code, out) == (2, "")
    assert err.splitlines()[-1].startswith(f"pierhead catch: error: {message}"), err


async def test_tail_follows_on_to_the_next_address_when_its_broker_is_killed(
    tmp_path: Path,
) -> None:
    async with broker_process(tmp_path / "a") as first, broker_process(tmp_path / "b") as second:
        async with sdk.Worker(first.url, "job", run_id="r1") as job:
            await job.post_event("on the first")
        tail = await Tail.start("job", "--url", f"{first.url},{second.url}")
        try:
            await tail.until_message("on the first")
            await subscribed(first.url)  # the history is printed; now it follows
            first.kill()
            await first.wait()
            await subscribed(second.url)  # the tail is back, on the second broker
            async with sdk.Worker(second.url, "job", run_id="r2") as job:
                await job.post_event("on the second")
            await tail.until_message("on the second")
            assert tail.process.returncode is None
        finally:
            _, stderr = await tail.stop()
    assert "pierhead: connection lost, reconnecting…" in stderr, (stderr, tail.events)
    messages = [e["payload"]["message"] for e in tail.events if "message" in e["payload"]]
    assert messages == ["on the first", "on the second"]


async def test_the_help_names_the_list_form() -> None:
    code, out, _ = await pierhead("ls", "--help")
    assert code == 0
    assert "several separated by commas" in " ".join(out.split())
