"""The notifications file (``pierhead serve --notify FILE``): what it turns into, and the
one-line errors that name the file and the exact key of a mistake, never a secret."""

from __future__ import annotations

import argparse
import hashlib
import hmac
import re
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest
import trustme

from broker import _cli
from broker._config import BrokerConfig
from broker._notify import AdviceRule, FinalStatus, NotifyConfig, SinkConfig
from broker._notify_config import (
    _ADVICE_KEYS,
    _FINISHED_KEYS,
    _SINK_KEYS,
    _TOP_KEYS,
    LISTED_TRIGGERS,
    NotifyConfigError,
    check_public_url,
    load_notify_config,
    parse_notify_config,
)
from broker.testing import broker_process
from tests.support import ROOT, pierhead

EXAMPLE = ROOT / "examples" / "notify.toml"
ENVIRON = {"PIERHEAD_WEBHOOK_SECRET": "example-secret"}

SINK = """
[[sink]]
name = "ops"
kind = "webhook"
url = "https://receiver.example/hook"
triggers = ["event"]
"""
"""A sink with only the required keys."""


def parse(
    text: str, *, public_url: str | None = None, directory: Path | None = None
) -> NotifyConfig:
    return parse_notify_config(
        text, source="notify.toml", public_url=public_url, directory=directory, environ={}
    )


def error(text: str, *, directory: Path | None = None) -> str:
    """The message of the error that ``text`` is; one line."""
    with pytest.raises(NotifyConfigError) as caught:
        parse(text, directory=directory)
    message = str(caught.value)
    assert "\n" not in message
    return message


# What a file turns into -----------------------------------------------------------------------


def test_the_example_file_loads_as_documented() -> None:
    config = load_notify_config(EXAMPLE, environ=ENVIRON)
    assert config.public_url == "https://pierhead.example.com"
    assert config.stall_after_s == 600.0
    assert config.finished == FinalStatus(key="state", values=("succeeded", "failed"))
    assert [rule.pattern.pattern for rule in config.advice] == [
        "No space left on device",
        "(?i)connection (refused|reset)",
    ]
    assert config.advice[1].pattern.search("psycopg: Connection Refused on :5432")
    slack, webhook = config.sinks
    assert slack == SinkConfig(
        name="deploy-slack",
        kind="slack",
        url="https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
        triggers=frozenset({"caught", "released", "event", "mutex", "expired", "finished"}),
        workspaces=("deploy-*",),
        min_severity="warning",
    )
    assert webhook == SinkConfig(
        name="oncall",
        kind="webhook",
        url="https://alerts.example.com/hooks/pierhead",
        # "recovered" comes with "stalled" without being listed.
        triggers=frozenset({"event", "expired", "stalled", "recovered"}),
        min_severity="error",
        secret="example-secret",
        headers={"X-Team": "ops"},
        coalesce_s=5.0,
        max_queued=10_000,
        timeout_s=10.0,
        retry_max_s=300.0,
    )
    assert config.sink("oncall") is webhook


def test_a_file_with_one_bare_sink_takes_every_default() -> None:
    config = parse(SINK)
    assert config == NotifyConfig(
        sinks=(
            SinkConfig(
                name="ops",
                kind="webhook",
                url="https://receiver.example/hook",
                triggers=frozenset({"event"}),
            ),
        )
    )
    assert config.stall_after_s is None
    assert config.queue_delay_s == 0.25
    assert config.finished.matches("state", "anything")
    assert config.sinks[0].workspaces == ("*",)
    assert config.sinks[0].min_severity == "error"
    assert config.sinks[0].coalesce_s == 2.0


def test_every_key_of_a_sink_is_read() -> None:
    config = parse(
        'stall_after = 30.5\nqueue_delay = 1.5\n[finished]\nkey = "phase"\n'
        '[[advice]]\npattern = "OOM"\nadvice = "Ask for more memory."\n'
        "[[sink]]\n"
        'name = "a.b_c-1"\nkind = "webhook"\nurl = "http://127.0.0.1:9/x?y=1"\n'
        'triggers = ["caught", "stalled"]\nworkspaces = ["deploy-*", "train-[ab]?"]\n'
        'min_severity = "info"\ncoalesce = 0\nmax_queued = 1\ntimeout = 0.5\n'
        'retry_max = 1\nheaders = { Authorization = "Bearer t", User-Agent = "acme/1" }\n'
        'secret = "k"\n'
    )
    assert config.stall_after_s == 30.5
    assert config.queue_delay_s == 1.5
    assert config.finished == FinalStatus(key="phase")
    assert config.advice[0].advice == "Ask for more memory."
    assert config.sinks[0] == SinkConfig(
        name="a.b_c-1",
        kind="webhook",
        url="http://127.0.0.1:9/x?y=1",
        triggers=frozenset({"caught", "stalled", "recovered"}),
        workspaces=("deploy-*", "train-[ab]?"),
        min_severity="info",
        secret="k",
        headers={"Authorization": "Bearer t", "User-Agent": "acme/1"},
        coalesce_s=0.0,
        max_queued=1,
        timeout_s=0.5,
        retry_max_s=1.0,
    )


def test_advice_rules_keep_their_order_and_search_the_message() -> None:
    config = parse(
        '[[advice]]\npattern = "disk"\nadvice = "first"\n'
        '[[advice]]\npattern = "^No space"\nadvice = "second"\n' + SINK
    )
    assert [(rule.pattern.pattern, rule.advice) for rule in config.advice] == [
        ("disk", "first"),
        ("^No space", "second"),
    ]
    assert isinstance(config.advice[0], AdviceRule)
    assert config.advice[0].pattern.search("write failed: disk quota")


def test_secret_env_is_read_from_the_environment_at_load() -> None:
    text = SINK + 'secret_env = "HOOK_SECRET"\n'
    config = parse_notify_config(text, source="n.toml", environ={"HOOK_SECRET": "from-env"})
    assert config.sinks[0].secret == "from-env"


def test_the_public_url_flag_wins_over_the_file() -> None:
    text = 'public_url = "https://file.example/"\n' + SINK
    assert parse(text).public_url == "https://file.example"
    assert parse(text, public_url="https://flag.example/ph/").public_url == (
        "https://flag.example/ph"
    )
    assert parse(SINK).public_url is None


def test_a_relative_ca_file_is_relative_to_the_notify_file(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    trustme.CA().cert_pem.write_to_path(str(tmp_path / "conf" / "ca.pem"))
    (tmp_path / "conf" / "notify.toml").write_text(SINK + 'ca_file = "ca.pem"\n')
    config = load_notify_config(tmp_path / "conf" / "notify.toml")
    assert config.sinks[0].ca_file == tmp_path / "conf" / "ca.pem"


# What a mistake says --------------------------------------------------------------------------


def sink(**keys: str) -> str:
    """The bare sink with ``keys`` (TOML values) added or replaced."""
    lines = [line for line in SINK.strip().splitlines() if line.split(" = ")[0] not in keys]
    return "\n".join(lines + [f"{key} = {value}" for key, value in keys.items()]) + "\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[sink]\n", "notify.toml: is not valid TOML: "),
        ("", "notify.toml: sink: no sink: add at least one [[sink]] table"),
        ("stall_afer = 60\n" + SINK, "notify.toml: stall_afer: unknown key (did you mean"),
        ("[sink]\nname = 'x'\n", "notify.toml: sink: expected tables written [[sink]], got a"),
        ("stall_after = 0\n" + SINK, "notify.toml: stall_after: 0 is not more than 0"),
        ("stall_after = '10m'\n" + SINK, "notify.toml: stall_after: expected a number of sec"),
        ("stall_after = nan\n" + SINK, "notify.toml: stall_after: nan is not more than 0"),
        ("stall_after = 60\n" + SINK, 'notify.toml: stall_after: no sink lists the "stalled"'),
        ("queue_delay = -1\n" + SINK, "notify.toml: queue_delay: -1 is not at least 0"),
        ("queue_delay = 61\n" + SINK, "notify.toml: queue_delay: 61 is more than the most, 60"),
        ("public_url = 'ftp://x'\n" + SINK, "notify.toml: public_url: must be an http:// or"),
        ("public_url = 'https://x/#a'\n" + SINK, "notify.toml: public_url: must have no query"),
        ("finished = 'state'\n" + SINK, "notify.toml: finished: expected a table, got a string"),
        ("[finished]\nkey = ''\n" + SINK, "notify.toml: finished.key: must not be empty"),
        ("[finished]\nvalues = [1]\n" + SINK, "notify.toml: finished.values[1]: expected a str"),
        ("[finished]\nvalue = ['ok']\n" + SINK, "notify.toml: finished.value: unknown key (did"),
        (
            "[[advice]]\npattern = 'x'\nadvice = 'y'\n[[advice]]\npattern = 'a(b'\nadvice = 'c'\n"
            + SINK,
            "notify.toml: advice[2].pattern: 'a(b' is not a valid regular expression: missing ),",
        ),
        ("[[advice]]\npattern = 'x'\n" + SINK, "notify.toml: advice[1].advice: is missing"),
        ("[[advice]]\npattern = 'x'\nadvice = ' '\n" + SINK, "notify.toml: advice[1].advice: mu"),
        (sink(trigers="['event']"), "notify.toml: sink[1].trigers: unknown key (did you mean tri"),
        (SINK + sink(url="'ftp://h/x'"), "notify.toml: sink[2].url: must be an http:// or https"),
        (sink(url="'https:///x'"), "notify.toml: sink[1].url: must name a host (http://HOST/...)"),
        (sink(url="'http://h:99999/'"), "notify.toml: sink[1].url: is not a valid URL (is the p"),
        (sink(url="'http://h/a b'"), "notify.toml: sink[1].url: must be an http:// or https://"),
        (sink(name="'a b'"), "notify.toml: sink[1].name: 'a b' is not 1 to 64 of A-Z a-z 0-9 _"),
        (sink(name="'" + "a" * 65 + "'"), "notify.toml: sink[1].name: 'aaaaaaaa"),
        (SINK + SINK, "notify.toml: sink[2].name: 'ops' names an earlier sink too"),
        (sink(kind="'email'"), "notify.toml: sink[1].kind: 'email' is not one of slack, webhook"),
        (sink(kind="1"), "notify.toml: sink[1].kind: expected a string, got an integer"),
        (sink(triggers="[]"), "notify.toml: sink[1].triggers: is empty: list some of caught,"),
        (sink(triggers="'event'"), "notify.toml: sink[1].triggers: expected an array of strings"),
        (sink(triggers="['error']"), "notify.toml: sink[1].triggers: 'error' is not one of caug"),
        (
            sink(triggers="['recovered']"),
            'notify.toml: sink[1].triggers: "recovered" is not listed: a sink with "stalled" gets',
        ),
        (
            sink(triggers="['stalled']"),
            'notify.toml: sink[1].triggers: "stalled" needs the top-level stall_after (seconds)',
        ),
        ("[[sink]]\nname = 'x'\n", "notify.toml: sink[1].kind: is missing"),
        (sink(workspaces="[]"), "notify.toml: sink[1].workspaces: is empty: no workspace would"),
        (
            sink(workspaces="['ok', 'deploy prod']"),
            "notify.toml: sink[1].workspaces[2]: 'deploy prod' is not a workspace pattern",
        ),
        (sink(min_severity="'fatal'"), "notify.toml: sink[1].min_severity: 'fatal' is not one of"),
        (sink(coalesce="-1"), "notify.toml: sink[1].coalesce: -1 is not at least 0"),
        (sink(coalesce="inf"), "notify.toml: sink[1].coalesce: inf is not at least 0"),
        (sink(coalesce="true"), "notify.toml: sink[1].coalesce: expected a number of seconds, g"),
        (sink(max_queued="0"), "notify.toml: sink[1].max_queued: 0 is less than 1"),
        (sink(max_queued="1.5"), "notify.toml: sink[1].max_queued: expected an integer, got a n"),
        (sink(timeout="0"), "notify.toml: sink[1].timeout: 0 is not more than 0"),
        (sink(retry_max="-5"), "notify.toml: sink[1].retry_max: -5 is not more than 0"),
        (sink(headers="'X: y'"), "notify.toml: sink[1].headers: expected a table, got a string"),
        (
            sink(headers="{ 'Idempotency-Key' = 'k' }"),
            "notify.toml: sink[1].headers.Idempotency-Key: is set by pierhead itself",
        ),
        (
            sink(headers="{ 'x-pierhead-signature' = 'k' }"),
            "notify.toml: sink[1].headers.x-pierhead-signature: is set by pierhead itself",
        ),
        (
            sink(headers="{ 'X Team' = 'k' }"),
            'notify.toml: sink[1].headers."X Team": is not a valid HTTP header name',
        ),
        (sink(headers="{ X-N = 1 }"), "notify.toml: sink[1].headers.X-N: expected a string, got"),
        (
            sink(headers="{ X-Key = 'sécret' }"),
            "notify.toml: sink[1].headers.X-Key: the value must be ASCII",
        ),
        (
            sink(headers="{ X-A = 'a', x-a = 'b' }"),
            "notify.toml: sink[1].headers.x-a: is given twice (header names ignore case)",
        ),
        (sink(ca_file="'/nonexistent/ca.pem'"), "notify.toml: sink[1].ca_file: /nonexistent/c"),
        (sink(secret="''"), "notify.toml: sink[1].secret: must not be empty"),
        (sink(secret="1"), "notify.toml: sink[1].secret: expected a string, got an integer"),
        (
            sink(secret="'a'", secret_env="'B'"),
            "notify.toml: sink[1].secret_env: give secret or secret_env, not both",
        ),
        (
            sink(secret_env="'NOT_SET_HERE'"),
            "notify.toml: sink[1].secret_env: the environment variable NOT_SET_HERE is not set",
        ),
        (
            sink(kind="'slack'", secret_env="'S'"),
            "notify.toml: sink[1].secret_env: only a webhook sink signs its requests",
        ),
    ],
)
def test_a_mistake_names_the_file_and_the_key(text: str, message: str) -> None:
    assert error(text).startswith(message)


def test_a_ca_file_that_holds_no_certificate_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    message = error(sink(ca_file="'ca.pem'"), directory=tmp_path)
    assert message.startswith(
        f"notify.toml: sink[1].ca_file: cannot load certificates from {tmp_path}/ca.pem"
    )


def test_a_file_that_cannot_be_read_says_so(tmp_path: Path) -> None:
    with pytest.raises(
        NotifyConfigError, match=re.escape(f"{tmp_path}/nope.toml: cannot read it: No such file")
    ):
        load_notify_config(tmp_path / "nope.toml")
    (tmp_path / "latin1.toml").write_bytes(b"# caf\xe9\n")
    with pytest.raises(NotifyConfigError, match=re.escape("latin1.toml: is not UTF-8 text")):
        load_notify_config(tmp_path / "latin1.toml")


def test_secrets_are_never_in_an_error_or_a_repr() -> None:
    secret = "s3cr3t-value"
    leaks = [
        error(sink(kind="'slack'", secret=f"'{secret}'")),
        error(sink(url=f"'ftp://hooks.example/{secret}'")),
        error(sink(url=f"'https://hooks.example/{secret} x'")),
        error(sink(headers=f'{{ Authorization = "Bearer {secret}\\n" }}')),
    ]
    for message in leaks:
        assert secret not in message
    config = parse(
        sink(
            url=f"'https://hooks.example/{secret}'",
            secret=f"'{secret}'",
            headers=f"{{ Authorization = 'Bearer {secret}' }}",
        )
    )
    assert config.sinks[0].secret == secret
    assert secret not in repr(config)
    assert secret not in repr(BrokerConfig(notify=config))


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://ops.example", "must be an http:// or https:// URL"),
        ("ops.example", "must be an http:// or https:// URL"),
        ("https://", "must name a host"),
        ("https://ops.example/?a=1", "must have no query"),
    ],
)
def test_a_public_url_must_be_http(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"--public-url {url}: {problem}")):
        check_public_url(url)


# pierhead serve --notify, --public-url ---------------------------------------------------------


class _RecordingServer:
    """Stands in for BrokerServer: keeps the config ``pierhead serve`` made, serves nothing."""

    configs: ClassVar[list[BrokerConfig]] = []

    def __init__(self, config: BrokerConfig) -> None:
        self.configs.append(config)

    async def serve_until_signalled(self) -> None:
        return None


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[BrokerConfig]:
    """``run_serve`` on a command line, with its config recorded instead of served."""
    monkeypatch.setattr(_cli, "BrokerServer", _RecordingServer)
    monkeypatch.setattr(_cli, "configure_logging", lambda *_: None)
    monkeypatch.setenv("PIERHEAD_WEBHOOK_SECRET", "from-env")
    _RecordingServer.configs = []
    return _RecordingServer.configs


def run_serve(tmp_path: Path, *options: str) -> int:
    parser = argparse.ArgumentParser()
    _cli.add_serve_command(parser.add_subparsers())
    return _cli.run_serve(parser.parse_args(["serve", "--data", str(tmp_path / "data"), *options]))


def test_serve_puts_the_notify_file_and_public_url_on_its_config(
    serve: list[BrokerConfig], tmp_path: Path
) -> None:
    assert run_serve(tmp_path, "--notify", str(EXAMPLE)) == 0
    assert run_serve(tmp_path, "--notify", str(EXAMPLE), "--public-url", "http://ph:8080/") == 0
    assert run_serve(tmp_path, "--public-url", "https://ph.example") == 0
    assert run_serve(tmp_path) == 0
    from_file, from_flag, flag_alone, neither = serve
    assert from_file.notify == load_notify_config(
        EXAMPLE, environ={"PIERHEAD_WEBHOOK_SECRET": "from-env"}
    )
    assert from_file.public_url == "https://pierhead.example.com"
    assert from_flag.notify is not None
    assert from_flag.notify.public_url == from_flag.public_url == "http://ph:8080"
    assert flag_alone.notify is None
    assert flag_alone.public_url == "https://ph.example"
    assert neither.notify is None
    assert neither.public_url is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ["--notify", "missing.toml"],
            "pierhead serve: missing.toml: cannot read it: No such file or directory",
        ),
        (
            ["--notify", "bad.toml"],
            "pierhead serve: bad.toml: sink[1].url: must be an http:// or https:// URL",
        ),
        (
            ["--notify", "typo.toml"],
            "pierhead serve: typo.toml: sink[1].trigers: unknown key (did you mean triggers?)",
        ),
        (
            ["--public-url", "ftp://ph.example"],
            "pierhead serve: --public-url ftp://ph.example: must be an http:// or https:// URL",
        ),
        (
            ["--notify", "good.toml", "--public-url", "ph.example"],
            "pierhead serve: --public-url ph.example: must be an http:// or https:// URL",
        ),
    ],
)
@pytest.mark.asyncio
async def test_an_unusable_notify_file_is_one_line_and_exit_2(
    tmp_path: Path, options: list[str], message: str
) -> None:
    (tmp_path / "good.toml").write_text(SINK)
    (tmp_path / "bad.toml").write_text(sink(url="'ftp://hooks.example/x'"))
    (tmp_path / "typo.toml").write_text(sink(trigers="['event']"))
    code, _, stderr = await pierhead("serve", "--port", "0", *options, cwd=tmp_path)
    assert code == 2
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines() == [message]
    assert not (tmp_path / "pierhead-data").exists()  # nothing was made on the way out


@pytest.mark.asyncio
async def test_a_broker_starts_with_a_notify_file(tmp_path: Path) -> None:
    (tmp_path / "notify.toml").write_text(SINK)
    async with broker_process(
        tmp_path / "data",
        "--notify",
        str(tmp_path / "notify.toml"),
        "--public-url",
        "https://ph.example",
    ) as broker:
        assert broker.port > 0


# The documentation ----------------------------------------------------------------------------

OPERATIONS = ROOT / "docs" / "operations.md"


def notifications_section() -> str:
    doc = OPERATIONS.read_text()
    start = doc.index("\n## Notifications\n")
    return doc[start : doc.index("\n## ", start + 1)]


def fenced_blocks(markdown: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", markdown, flags=re.DOTALL | re.MULTILINE)


def test_operations_doc_shows_the_example_file_verbatim() -> None:
    assert EXAMPLE.read_text() in fenced_blocks(notifications_section(), "toml")


def test_operations_doc_documents_every_key_of_the_file() -> None:
    section = notifications_section()
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    for key in _TOP_KEYS:
        # A table is documented as `[key]` or `[[key]]`, alone or before its own keys.
        names = (f"`{key}`", f"`[{key}]`", f"`[[{key}]]`")
        assert any(row.startswith(f"| {name} ") for row in rows for name in names), key
    for key in (*_FINISHED_KEYS, *_ADVICE_KEYS, *_SINK_KEYS):
        assert any(f"`{key}` |" in row for row in rows), key
    for trigger in LISTED_TRIGGERS:
        assert f"`{trigger}`" in section, trigger
    for flag in ("--notify FILE", "--public-url"):
        assert f"| `{flag}` |" in OPERATIONS.read_text(), flag


def test_the_signature_check_in_the_docs_accepts_only_signed_recent_requests() -> None:
    (snippet,) = [
        block for block in fenced_blocks(notifications_section(), "python") if "hmac" in block
    ]
    namespace: dict[str, Any] = {}
    exec(compile(snippet, "docs/operations.md", "exec"), namespace)
    is_genuine = namespace["is_genuine"]
    body = b'{"id":"ops:deploy:1:42:event","trigger":"event"}'

    def signed(secret: str, timestamp: int, signed_body: bytes = body) -> dict[str, str]:
        mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + signed_body, hashlib.sha256)
        return {
            "X-Pierhead-Timestamp": str(timestamp),
            "X-Pierhead-Signature": f"sha256={mac.hexdigest()}",
        }

    now = int(time.time())
    assert is_genuine("k", signed("k", now), body)
    assert not is_genuine("k", signed("other", now), body)
    assert not is_genuine("k", signed("k", now, b"{}"), body)
    assert not is_genuine("k", signed("k", now - 3600), body)  # a replay an hour later
    assert not is_genuine("k", {**signed("k", now), "X-Pierhead-Timestamp": "²"}, body)
    assert not is_genuine("k", {**signed("k", now), "X-Pierhead-Signature": "sha256=é"}, body)
    assert not is_genuine("k", {}, body)
