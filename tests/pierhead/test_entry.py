"""The ``pierhead`` entry point: the command's exit code, and 130 for a Ctrl-C that comes while
the command is still loading."""

from __future__ import annotations

import sys

import pytest

from pierhead import _cli, _entry


def test_a_ctrl_c_before_the_command_runs_exits_130_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def interrupted_while_loading(argv: object = None) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(_cli, "main", interrupted_while_loading)
    assert _entry.main() == 130


def test_the_command_s_exit_code_is_the_entry_point_s(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["pierhead", "version"])
    assert _entry.main() == 0
    assert capsys.readouterr().out.startswith("pierhead ")
