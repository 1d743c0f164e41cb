"""docs/sdk.md says what the code does: what history yields, and the options it names."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import sdk

GUIDE = (Path(__file__).parents[2] / "docs" / "sdk.md").read_text()


def test_history_is_described_as_yielding_events_as_it_does() -> None:
    assert inspect.isasyncgenfunction(sdk.Watcher.history)
    (described,) = re.findall(r"`history\(workspace,[^`]*`\)? \(([^)]*)\)", GUIDE)
    assert "iterator over events" in " ".join(described.split())
    assert "pages" not in described.split("fetches")[0]


def test_the_options_the_guide_relies_on_are_named_in_it() -> None:
    worker = inspect.signature(sdk.Worker).parameters
    watcher = inspect.signature(sdk.Watcher).parameters
    subscribe = inspect.signature(sdk.Watcher.subscribe).parameters
    for name, parameters in (
        ("outbox_policy", worker),
        ("outbox_max_events", worker),
        ("close_timeout_s", worker),
        ("subscription_buffer", watcher),
        ("request_timeout_s", watcher),
        ("overflow", subscribe),
    ):
        assert name in parameters, name
        assert f"`{name}" in GUIDE, name
