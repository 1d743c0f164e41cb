"""The search behind the secret scan: what counts as a secret found, and in which logs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from broker._tokens import SqliteTokenStore
from tests.secret_leaks import (
    WINDOW,
    candidates,
    leaked,
    random_part,
    token_id,
    token_shaped,
    without_printed_tokens,
)
from tests.secret_scan import LogSource, child_sources, find_leaks, section_source

UNMADE = "ph_0123456789ab_" + "Q" * 43
"""A string of a token's shape that no store made."""


@pytest.fixture
def secrets(tmp_path: Path) -> dict[str, str]:
    store = SqliteTokenStore(tmp_path)
    try:
        return {name: store.create(name, ["watcher"])[1] for name in ("first", "second")}
    finally:
        store.close()


def test_a_secret_is_found_whole_or_by_a_window_of_its_random_part(
    secrets: dict[str, str],
) -> None:
    first, second = secrets["first"], secrets["second"]
    window = random_part(second)[7 : 7 + WINDOW]
    assert leaked(f'{{"token": "{first}"}}', secrets) == ["first"]
    # Inside a longer run of url-safe characters, as in a base64 blob.
    assert leaked(f"presented xyz{window}xyz and {first}", secrets) == ["first", "second"]
    assert leaked(f"presented {window[:-1]}", secrets) == []
    # The id is no secret: it names the token in logs.
    assert leaked(f"token {token_id(first)} revoked", secrets) == []


def test_a_token_alone_on_its_line_is_printed_on_purpose_not_logged(
    secrets: dict[str, str],
) -> None:
    first = secrets["first"]
    printed = f"# token first: roles watcher\n{first}\n"
    assert leaked(without_printed_tokens(printed), secrets) == []
    logged = f'{{"event": "hello", "token": "{first}"}}\n  {first}  \n'
    assert leaked(without_printed_tokens(logged), secrets) == ["first"]


def test_a_token_shaped_string_is_found_whether_or_not_the_run_made_it(
    secrets: dict[str, str],
) -> None:
    runs = candidates(f"hello {UNMADE}, hello {secrets['first']}; not ph_0123_{'Q' * 43}")
    assert token_shaped(runs) == {"0123456789ab", token_id(secrets["first"])}


def test_leaks_name_the_test_the_log_and_the_token_id_never_the_secret(
    secrets: dict[str, str],
) -> None:
    first, second = secrets["first"], secrets["second"]
    sources = [
        section_source("t.py::test_a", "Captured log call", f"WARNING presented {first}"),
        section_source("t.py::test_b", "Captured stdout call", f'{{"token": "{UNMADE}"}}\n'),
        section_source("t.py::test_c", "Captured stdout call", f"{second}\n"),
        section_source("t.py::test_d", "Captured stderr setup", "nothing to see\n"),
    ]
    leaks = find_leaks([first, second], sources)
    assert [leak.describe() for leak in leaks] == [
        f"t.py::test_a: the secret of token {token_id(first)} in captured log call",
        "t.py::test_b: a token-shaped string, id 0123456789ab in captured stdout call",
    ]
    assert not any(random_part(first)[:WINDOW] in leak.describe() for leak in leaks)


def test_a_child_is_named_by_program_and_subcommand_not_by_its_options(
    tmp_path: Path, secrets: dict[str, str]
) -> None:
    first = secrets["first"]
    argv = ["/venv/bin/python", "-m", "broker", "serve", "--log-level", first]
    header = {"pid": 42, "argv": argv, "test": "t.py::test_serve"}
    log = f"pierhead serve: error: invalid choice: '{first}'\n"
    (tmp_path / "stderr-42-1.log").write_text(json.dumps(header) + "\n" + log)
    (source,) = child_sources(tmp_path)
    assert source == LogSource(
        "t.py::test_serve",
        "the stderr of `pierhead serve` (pid 42)",
        frozenset(candidates(log)),
        len(log.encode()),
        from_child=True,
    )
    (leak,) = find_leaks([first], [source])
    assert first not in leak.describe()
