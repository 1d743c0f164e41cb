"""The names ``sdk`` exports are its contract."""

from __future__ import annotations

import types

import sdk
import sdk.sync

EXPECTED = [
    "ActionFailedError", "AuthenticationError", "BadCallError", "BrokerRefusedError",
    "ClosedError", "ConnectionLostError", "ConnectionState", "Delivery", "EventTooLargeError",
    "ForbiddenError", "InvalidArgumentError", "Lease", "LeaseLostError", "Missed",
    "OutboxFullError", "OutboxPolicy", "Overflow", "PierheadError", "PierheadTimeoutError",
    "ReplacedError", "Subscription", "UsageError", "Watcher", "Worker",
]  # fmt: skip


def test_exported_names_are_pinned_and_sorted() -> None:
    assert sdk.__all__ == EXPECTED
    assert sorted(EXPECTED) == EXPECTED


def test_every_public_attribute_is_exported() -> None:
    public = {
        name
        for name, value in vars(sdk).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(sdk.__all__)


def test_errors_share_one_base() -> None:
    for name in sdk.__all__:
        value = getattr(sdk, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, sdk.PierheadError), name


def test_the_sync_facade_mirrors_the_clients() -> None:
    assert {"Worker", "Watcher"} <= set(vars(sdk.sync))
    for name in ("publish", "scalar", "flush", "checkpoint", "mutex", "post_event", "action"):
        assert callable(getattr(sdk.sync.Worker, name)), name
