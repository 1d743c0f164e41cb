"""``pierhead notify test FILE``, run as a process against real receivers on loopback."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from broker._notify_format import verify_signature
from tests.notify_receiver import Answer, NotifyReceiver
from tests.support import pierhead

pytestmark = pytest.mark.asyncio


def sink_table(name: str, kind: str, url: str, extra: str = "") -> str:
    lines = [f'name = "{name}"', f'kind = "{kind}"', f'url = "{url}"', 'triggers = ["event"]']
    return "\n".join(["[[sink]]", *lines, extra, ""])


async def test_every_sink_gets_one_sample_and_every_result_is_printed(tmp_path: Path) -> None:
    async with NotifyReceiver() as hooks, NotifyReceiver() as chat:
        file = tmp_path / "notify.toml"
        file.write_text(
            sink_table("hooks", "webhook", hooks.url, 'secret = "s3cret"')
            + sink_table("chat", "slack", chat.url)
        )
        code, out, err = await pierhead("notify", "test", str(file))
        assert (code, err) == (0, "")
        assert out.splitlines() == ["hooks: OK 200", "chat: OK 200"]
        [webhook] = hooks.requests
        assert verify_signature(
            "s3cret",
            webhook.headers["x-pierhead-timestamp"],
            webhook.body,
            webhook.headers["x-pierhead-signature"],
            now=time.time(),
        )
        body = webhook.json()
        assert (body["trigger"], body["count"], body["event"]) == ("event", 1, None)
        assert "test notification" in body["summary"]
        assert body["id"] == webhook.headers["idempotency-key"]
        [slack] = chat.requests
        assert "test notification" in slack.json()["text"]
        assert slack.headers["idempotency-key"] != webhook.headers["idempotency-key"]


async def test_a_sink_that_refuses_or_is_down_fails_the_check(tmp_path: Path) -> None:
    async with NotifyReceiver() as good, NotifyReceiver() as refusing, NotifyReceiver() as down:
        refusing.answer(Answer(404, body=b"no such hook"))
        await down.stop()
        file = tmp_path / "notify.toml"
        file.write_text(
            sink_table("good", "webhook", good.url)
            + sink_table("refusing", "webhook", refusing.url)
            + sink_table("down", "slack", down.url, "timeout = 5")
        )
        code, out, err = await pierhead("notify", "test", str(file))
        assert (code, err) == (1, "")
        good_line, refused_line, down_line = out.splitlines()
        assert good_line == "good: OK 200"
        assert refused_line == "refusing: HTTP 404: no such hook"
        assert down_line.startswith("down: ConnectError")
        assert len(good.requests) == len(refusing.requests) == 1


async def test_a_file_that_cannot_be_used_is_a_usage_error(tmp_path: Path) -> None:
    file = tmp_path / "notify.toml"
    file.write_text(
        '[[sink]]\nname = "hooks"\nkind = "webhook"\nurl = "http://127.0.0.1:1/"\n'
        'trigers = ["event"]\n'
    )
    code, out, err = await pierhead("notify", "test", str(file))
    assert (code, out) == (2, "")
    [line] = err.splitlines()
    assert line.startswith(f"pierhead notify test: {file}: sink[1].trigers")
    code, out, err = await pierhead("notify", "test", str(tmp_path / "missing.toml"))
    assert (code, out) == (2, "")
    missing = tmp_path / "missing.toml"
    assert err.splitlines() == [
        f"pierhead notify test: {missing}: cannot read it: No such file or directory"
    ]
