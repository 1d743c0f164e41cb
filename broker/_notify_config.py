"""The notifications settings file of ``pierhead serve --notify FILE`` (TOML).

Every key is documented in docs/operations.md, "Notifications"; examples/notify.toml is a
complete file. The parser is strict on purpose: an unknown key, a value of the wrong type or
out of range is a :class:`NotifyConfigError` naming the file and the exact key
(``notify.toml: sink[2].url: ...``), because a misspelt key silently left at its default
could switch a trigger off and nobody would notice until the alert that never came.

Secrets (a webhook's ``secret``, a header's value, a sink's URL: a Slack webhook URL is its
own credential) are never quoted in an error.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import ssl
import tomllib
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Final, NoReturn, cast, get_args

from schema import Severity

from ._notify import (
    QUEUE_DELAY_MOST_S,
    QUEUE_DELAY_S,
    SEVERITY_RANK,
    TRIGGERS,
    AdviceRule,
    FinalStatus,
    NotifyConfig,
    SinkConfig,
    SinkKind,
    Trigger,
)
from ._tokens import TokenError, check_scope

SINK_NAME: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")
SINK_KINDS: Final[tuple[SinkKind, ...]] = get_args(SinkKind)
LISTED_TRIGGERS: Final[tuple[Trigger, ...]] = tuple(t for t in TRIGGERS if t != "recovered")
"""The triggers a sink lists; ``recovered`` comes with ``stalled``, never on its own (a
recovery nobody was told the run stalled for would be noise)."""
RESERVED_HEADERS: Final = frozenset(
    {
        "content-type",
        "content-length",
        "transfer-encoding",
        "host",
        "idempotency-key",
        "x-pierhead-timestamp",
        "x-pierhead-signature",
    }
)
"""Headers a sink's ``headers`` may not set: the ones a receiver relies on (the idempotency
key, the signature and its timestamp), the body's type (always JSON), and the ones the HTTP
client computes. ``User-Agent`` may be replaced."""
_HEADER_NAME: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")

_TOP_KEYS: Final = ("public_url", "stall_after", "queue_delay", "finished", "advice", "sink")
_FINISHED_KEYS: Final = ("key", "values")
_ADVICE_KEYS: Final = ("pattern", "advice")
_SINK_KEYS: Final = (
    "name",
    "kind",
    "url",
    "triggers",
    "workspaces",
    "min_severity",
    "coalesce",
    "max_queued",
    "timeout",
    "retry_max",
    "headers",
    "ca_file",
    "secret",
    "secret_env",
)


_SINK_DEFAULTS: Final = SinkConfig(name="-", kind="webhook", url="", triggers=frozenset())


class NotifyConfigError(ValueError):
    """A notifications file that cannot be used; the message names the file and the key."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        super().__init__(f"{source}: {key}: {problem}" if key else f"{source}: {problem}")
        self.source = source
        self.key = key
        self.problem = problem


def load_notify_config(
    path: Path,
    *,
    public_url: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> NotifyConfig:
    """The settings in the file ``path``; ``public_url`` (``--public-url``), when given,
    wins over the file's. A relative ``ca_file`` is relative to the file's directory."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise NotifyConfigError(str(path), "", f"cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise NotifyConfigError(str(path), "", "is not UTF-8 text") from None
    return parse_notify_config(
        text, source=str(path), public_url=public_url, directory=path.parent, environ=environ
    )


def parse_notify_config(
    text: str,
    *,
    source: str,
    public_url: str | None = None,
    directory: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> NotifyConfig:
    """The settings in ``text``, a notifications file named ``source`` in errors.

    ``directory`` anchors a relative ``ca_file`` (the current directory when ``None``);
    ``environ`` is where ``secret_env`` is looked up (``os.environ`` when ``None``).
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's messages give the line and column, never the text that is there.
        raise NotifyConfigError(source, "", f"is not valid TOML: {exc}") from None
    return _Parser(source, directory or Path(), os.environ if environ is None else environ).config(
        document, public_url
    )


def check_public_url(url: str) -> str:
    """``url`` as the dashboard's public address (``--public-url``): http(s), a host, no query
    or fragment; a ValueError says why not. Returned without a trailing ``/`` (links append
    their path to it)."""
    problem = _public_url_problem(url)
    if problem is not None:
        raise ValueError(f"--public-url {url}: {problem}")
    return url.rstrip("/")


def _public_url_problem(url: str) -> str | None:
    problem = _url_problem(url)
    if problem is None:
        parts = urllib.parse.urlsplit(url)
        if parts.query or parts.fragment:
            problem = "must have no query (?...) and no fragment (#...)"
    return problem


def _url_problem(url: str) -> str | None:
    """Why ``url`` is no http(s) URL of a host, in words that do not quote it (a Slack
    webhook URL is a secret); ``None`` when it is one."""
    if not url or any(c.isspace() or not c.isprintable() for c in url):
        return "must be an http:// or https:// URL, without spaces"
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is no number in 0..65535
    except ValueError:
        return "is not a valid URL (is the port a number from 0 to 65535?)"
    if parts.scheme not in ("http", "https"):
        return "must be an http:// or https:// URL"
    if not parts.hostname:
        return "must name a host (http://HOST/...)"
    return None


class _Parser:
    """One pass over a decoded document; each method checks one table and says where."""

    def __init__(self, source: str, directory: Path, environ: Mapping[str, str]) -> None:
        self.source = source
        self.directory = directory
        self.environ = environ

    def fail(self, key: str, problem: str) -> NoReturn:
        raise NotifyConfigError(self.source, key, problem)

    def config(self, document: dict[str, object], public_url: str | None) -> NotifyConfig:
        self.known_keys(document, _TOP_KEYS, "")
        if public_url is not None:
            public_url = check_public_url(public_url)
        elif "public_url" in document:
            public_url = self.string(document, "public_url", "")
            if (problem := _public_url_problem(public_url)) is not None:
                self.fail("public_url", problem)
            public_url = public_url.rstrip("/")
        stall_after = None
        if "stall_after" in document:
            stall_after = self.seconds(document, "stall_after", "", positive=True)
        queue_delay = QUEUE_DELAY_S
        if "queue_delay" in document:
            queue_delay = self.seconds(
                document, "queue_delay", "", positive=False, most=QUEUE_DELAY_MOST_S
            )
        finished = FinalStatus()
        if "finished" in document:
            finished = self.finished(self.table(document["finished"], "finished"))
        advice = tuple(
            self.advice_rule(rule, f"advice[{n}]")
            for n, rule in enumerate(self.tables(document, "advice"), start=1)
        )
        sinks = tuple(
            self.sink(sink, f"sink[{n}]", stall_after)
            for n, sink in enumerate(self.tables(document, "sink"), start=1)
        )
        if not sinks:
            self.fail("sink", "no sink: add at least one [[sink]] table")
        if stall_after is not None and not any("stalled" in s.triggers for s in sinks):
            # Stalls would be looked for and told to nobody: most likely a trigger forgotten.
            self.fail("stall_after", 'no sink lists the "stalled" trigger')
        seen: set[str] = set()
        for n, sink_config in enumerate(sinks, start=1):
            if sink_config.name in seen:
                self.fail(f"sink[{n}].name", f"{sink_config.name!r} names an earlier sink too")
            seen.add(sink_config.name)
        return NotifyConfig(
            sinks=sinks,
            stall_after_s=stall_after,
            queue_delay_s=queue_delay,
            finished=finished,
            advice=advice,
            public_url=public_url,
        )

    def finished(self, table: dict[str, object]) -> FinalStatus:
        self.known_keys(table, _FINISHED_KEYS, "finished")
        key = FinalStatus().key
        if "key" in table:
            key = self.string(table, "key", "finished")
            if not key:
                self.fail("finished.key", "must not be empty")
        values: tuple[str, ...] = ()
        if "values" in table:
            values = self.strings(table, "values", "finished")
        return FinalStatus(key=key, values=values)

    def advice_rule(self, table: dict[str, object], where: str) -> AdviceRule:
        self.known_keys(table, _ADVICE_KEYS, where)
        pattern = self.string(table, "pattern", where, required=True)
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            self.fail(f"{where}.pattern", f"{pattern!r} is not a valid regular expression: {exc}")
        advice = self.string(table, "advice", where, required=True)
        if not advice.strip():
            self.fail(f"{where}.advice", "must not be empty")
        return AdviceRule(pattern=compiled, advice=advice)

    def sink(self, table: dict[str, object], where: str, stall_after: float | None) -> SinkConfig:
        self.known_keys(table, _SINK_KEYS, where)
        name = self.string(table, "name", where, required=True)
        if not SINK_NAME.fullmatch(name):
            self.fail(f"{where}.name", f"{name!r} is not 1 to 64 of A-Z a-z 0-9 _ . -")
        kind = cast(SinkKind, self.choice(table, "kind", where, SINK_KINDS, required=True))
        url = self.string(table, "url", where, required=True)
        if (problem := _url_problem(url)) is not None:
            self.fail(f"{where}.url", problem)
        triggers = self.triggers(table, where, stall_after)
        workspaces = _SINK_DEFAULTS.workspaces
        if "workspaces" in table:
            workspaces = self.strings(table, "workspaces", where)
            if not workspaces:
                self.fail(f"{where}.workspaces", 'is empty: no workspace would be heard ("*": all)')
            for n, pattern in enumerate(workspaces, start=1):
                try:
                    check_scope(pattern)
                except TokenError as exc:
                    self.fail(f"{where}.workspaces[{n}]", str(exc))
        defaults = _SINK_DEFAULTS
        min_severity = defaults.min_severity
        if "min_severity" in table:
            min_severity = cast(
                Severity, self.choice(table, "min_severity", where, tuple(SEVERITY_RANK))
            )
        coalesce = defaults.coalesce_s
        if "coalesce" in table:
            coalesce = self.seconds(table, "coalesce", where, positive=False)
        max_queued = defaults.max_queued
        if "max_queued" in table:
            max_queued = self.integer(table, "max_queued", where, least=1)
        timeout = defaults.timeout_s
        if "timeout" in table:
            timeout = self.seconds(table, "timeout", where, positive=True)
        retry_max = defaults.retry_max_s
        if "retry_max" in table:
            retry_max = self.seconds(table, "retry_max", where, positive=True)
        headers: dict[str, str] = {}
        if "headers" in table:
            headers = self.headers(self.table(table["headers"], f"{where}.headers"), where)
        ca_file = None
        if "ca_file" in table:
            ca_file = self.ca_file(self.string(table, "ca_file", where), f"{where}.ca_file")
        return SinkConfig(
            name=name,
            kind=kind,
            url=url,
            triggers=triggers,
            workspaces=workspaces,
            min_severity=min_severity,
            secret=self.secret(table, where, kind),
            headers=headers,
            coalesce_s=coalesce,
            max_queued=max_queued,
            timeout_s=timeout,
            retry_max_s=retry_max,
            ca_file=ca_file,
        )

    def triggers(
        self, table: dict[str, object], where: str, stall_after: float | None
    ) -> frozenset[Trigger]:
        key = f"{where}.triggers"
        names = self.strings(table, "triggers", where, required=True)
        if not names:
            self.fail(key, f"is empty: list some of {', '.join(LISTED_TRIGGERS)}")
        for name in names:
            if name == "recovered":
                self.fail(key, '"recovered" is not listed: a sink with "stalled" gets it')
            if name not in LISTED_TRIGGERS:
                self.fail(key, f"{name!r} is not one of {', '.join(LISTED_TRIGGERS)}")
        triggers = frozenset(cast(Trigger, name) for name in names)
        if "stalled" in triggers:
            if stall_after is None:
                self.fail(key, '"stalled" needs the top-level stall_after (seconds)')
            triggers |= {"recovered"}
        return triggers

    def headers(self, table: dict[str, object], where: str) -> dict[str, str]:
        headers: dict[str, str] = {}
        seen: set[str] = set()
        for name, value in table.items():
            key = f"{where}.headers.{_toml_key(name)}"
            if not _HEADER_NAME.fullmatch(name):
                self.fail(key, "is not a valid HTTP header name")
            if name.lower() in RESERVED_HEADERS:
                self.fail(key, "is set by pierhead itself and cannot be replaced")
            if name.lower() in seen:
                self.fail(key, "is given twice (header names ignore case)")
            seen.add(name.lower())
            if not isinstance(value, str):
                self.fail(key, f"expected a string, got {_kind(value)}")
            # The value may be a credential: say what is wrong with it, never quote it.
            if any(c in value for c in "\r\n\0"):
                self.fail(key, "the value must be one line (no CR, LF or NUL)")
            if not value.isascii():
                self.fail(key, "the value must be ASCII (HTTP headers carry no other text)")
            headers[name] = value
        return headers

    def secret(self, table: dict[str, object], where: str, kind: SinkKind) -> str | None:
        given = [key for key in ("secret", "secret_env") if key in table]
        if not given:
            return None
        if kind != "webhook":
            self.fail(f"{where}.{given[0]}", "only a webhook sink signs its requests")
        if len(given) == 2:
            self.fail(f"{where}.secret_env", "give secret or secret_env, not both")
        if given[0] == "secret":
            if not isinstance(table["secret"], str):
                self.fail(f"{where}.secret", f"expected a string, got {_kind(table['secret'])}")
            secret = table["secret"]
            if not secret:
                self.fail(f"{where}.secret", "must not be empty")
            return secret
        variable = self.string(table, "secret_env", where)
        secret = self.environ.get(variable, "")
        if not secret:
            self.fail(
                f"{where}.secret_env", f"the environment variable {variable} is not set or empty"
            )
        return secret

    def ca_file(self, text: str, key: str) -> Path:
        path = self.directory / Path(text).expanduser()
        if not path.is_file():
            self.fail(key, f"{path} is not a file")
        try:
            ssl.create_default_context().load_verify_locations(cafile=path)
        except (ssl.SSLError, OSError) as exc:
            self.fail(key, f"cannot load certificates from {path}: {exc}")
        return path

    # The values' types --------------------------------------------------------------------

    def known_keys(self, table: dict[str, object], known: tuple[str, ...], where: str) -> None:
        for key in table:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(known)}"
                self.fail(_join(where, _toml_key(key)), f"unknown key ({hint})")

    def table(self, value: object, key: str) -> dict[str, object]:
        if not isinstance(value, dict):
            self.fail(key, f"expected a table, got {_kind(value)}")
        return cast(dict[str, object], value)

    def tables(self, document: dict[str, object], key: str) -> list[dict[str, object]]:
        value = document.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            self.fail(key, f"expected tables written [[{key}]], got {_kind(value)}")
        return cast(list[dict[str, object]], value)

    def string(
        self, table: dict[str, object], key: str, where: str, *, required: bool = False
    ) -> str:
        if key not in table:
            if required:
                self.fail(_join(where, key), "is missing")
            return ""
        value = table[key]
        if not isinstance(value, str):
            self.fail(_join(where, key), f"expected a string, got {_kind(value)}")
        return value

    def strings(
        self, table: dict[str, object], key: str, where: str, *, required: bool = False
    ) -> tuple[str, ...]:
        if key not in table:
            if required:
                self.fail(_join(where, key), "is missing")
            return ()
        value = table[key]
        if not isinstance(value, list):
            self.fail(_join(where, key), f"expected an array of strings, got {_kind(value)}")
        for n, item in enumerate(value, start=1):
            if not isinstance(item, str):
                self.fail(f"{_join(where, key)}[{n}]", f"expected a string, got {_kind(item)}")
        return tuple(cast(list[str], value))

    def choice(
        self,
        table: dict[str, object],
        key: str,
        where: str,
        choices: tuple[str, ...],
        *,
        required: bool = False,
    ) -> str:
        value = self.string(table, key, where, required=required)
        if value not in choices:
            self.fail(_join(where, key), f"{value!r} is not one of {', '.join(choices)}")
        return value

    def seconds(
        self,
        table: dict[str, object],
        key: str,
        where: str,
        *,
        positive: bool,
        most: float = math.inf,
    ) -> float:
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(_join(where, key), f"expected a number of seconds, got {_kind(value)}")
        if not math.isfinite(value) or value < 0 or (positive and value == 0):
            self.fail(
                _join(where, key), f"{value} is not {'more than' if positive else 'at least'} 0"
            )
        if value > most:
            self.fail(_join(where, key), f"{value} is more than the most, {most:g}")
        return float(value)

    def integer(self, table: dict[str, object], key: str, where: str, *, least: int) -> int:
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(_join(where, key), f"expected an integer, got {_kind(value)}")
        if value < least:
            self.fail(_join(where, key), f"{value} is less than {least}")
        return value


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _toml_key(key: str) -> str:
    """``key`` as it would be written in the file (quoted unless it is a bare key)."""
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key)


def _kind(value: object) -> str:
    """The TOML type of ``value``, in words (an error names the type, never the value)."""
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }
    return names.get(type(value), f"a {type(value).__name__}")
