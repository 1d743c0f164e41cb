"""Every exception the SDK raises for bad input derives from PierheadError and says what is
wrong in words a caller can act on."""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import schema
import sdk
from broker.testing import running_broker
from sdk._outbox import Ticket

pytestmark = pytest.mark.asyncio

NOWHERE = "ws://127.0.0.1:9"  # discard port: nothing listens, the worker keeps retrying


def check(
    raised: BaseException, expected: type[sdk.PierheadError], message: str
) -> sdk.PierheadError:
    assert isinstance(raised, sdk.PierheadError), f"{type(raised).__name__}: {raised}"
    assert isinstance(raised, expected), f"{type(raised).__name__}: {raised}"
    assert re.search(message, str(raised)), f"{str(raised)!r} does not say {message!r}"
    return raised


async def raised_by(call: Callable[[], Awaitable[Any] | Any]) -> BaseException:
    try:
        result = call()
        if asyncio.iscoroutine(result):
            await result
    except Exception as exc:
        return exc
    raise AssertionError("no exception")


async def test_bad_worker_settings(tmp_path: Path) -> None:
    cases: list[tuple[Callable[[], Any], type[sdk.PierheadError], str]] = [
        (lambda: sdk.Worker(NOWHERE, "bad name!"), sdk.InvalidArgumentError, r"workspace"),
        (lambda: sdk.Worker(NOWHERE, "w", run_id="a b"), sdk.InvalidArgumentError, r"run_id"),
        (
            lambda: sdk.Worker(NOWHERE, "w", spool=tmp_path / "s.db"),
            sdk.InvalidArgumentError,
            r"spool needs a run_id",
        ),
        (
            lambda: sdk.Worker(NOWHERE, "w", outbox_policy="nope"),  # type: ignore[arg-type]
            sdk.InvalidArgumentError,
            r"policy must be one of",
        ),
        (
            lambda: sdk.Worker(NOWHERE, "w", outbox_max_events=0),
            sdk.InvalidArgumentError,
            r"max_events must be",
        ),
        (
            lambda: sdk.Worker(NOWHERE, "w", reconnect_initial_s=0),
            sdk.InvalidArgumentError,
            r"backoff needs 0 < initial_s",
        ),
        (
            lambda: sdk.Worker(
                NOWHERE, "w", details=schema.WorkspaceDetails(host_pattern="h" * 5000)
            ),
            sdk.InvalidArgumentError,
            r"invalid workspace details.*host_pattern",
        ),
    ]
    for call, expected, message in cases:
        check(await raised_by(call), expected, message)


async def test_bad_events_and_calls_on_a_worker() -> None:
    worker = sdk.Worker(NOWHERE, "w", reconnect_max_s=0.5)
    too_long = check(
        await raised_by(lambda: worker.event("x" * 70_000)),
        sdk.InvalidArgumentError,
        r"invalid event \(event\).*length <= 65536.*message",
    )
    # The code the broker answers the same event with.
    assert isinstance(too_long, sdk.InvalidArgumentError)
    assert too_long.code is schema.ErrorCode.TOO_LARGE
    assert isinstance(too_long, schema.SchemaError)

    cases: list[tuple[Callable[[], Any], type[sdk.PierheadError], str]] = [
        (lambda: worker.scalar("loss", math.nan), sdk.InvalidArgumentError, r"finite number"),
        (lambda: worker.scalar("loss", math.inf), sdk.InvalidArgumentError, r"finite number"),
        (
            lambda: worker.progress("hosts", 1, total=math.nan),
            sdk.InvalidArgumentError,
            r"total must be a finite number",
        ),
        (lambda: worker.scalar("", 1.0), sdk.InvalidArgumentError, r"invalid event \(scalar\)"),
        (
            lambda: worker.custom("c", {1: object()}),
            sdk.InvalidArgumentError,
            r"invalid custom event 'c'.*no JSON form",
        ),
        (
            lambda: worker.hyperparameters({"lr": object()}),
            sdk.InvalidArgumentError,
            r"invalid event \(hyperparameters\)",
        ),
        (
            lambda: worker.event("m", severity="nope"),  # type: ignore[arg-type]
            sdk.InvalidArgumentError,
            r"severity",
        ),
        (
            lambda: worker.publish("not a payload"),  # type: ignore[arg-type]
            sdk.InvalidArgumentError,
            r"schema payload",
        ),
        (
            lambda: worker.publish_nowait(schema.Scalar(name="loss", value=math.nan)),
            sdk.InvalidArgumentError,
            r"finite number",
        ),
        (lambda: worker.wait_acked(Ticket(99)), sdk.InvalidArgumentError, r"never issued"),
        (
            lambda: worker.post_details(schema.WorkspaceDetails(ui_group="g" * 5000)),
            sdk.InvalidArgumentError,
            r"ui_group",
        ),
        (lambda: worker.mutex(timeout=0).__aenter__(), sdk.InvalidArgumentError, r"timeout"),
        (lambda: worker.mutex(timeout=-1).__aenter__(), sdk.InvalidArgumentError, r"timeout"),
    ]
    for call, expected, message in cases:
        check(await raised_by(call), expected, message)

    async with worker:
        check(await raised_by(worker.start), sdk.UsageError, r"already started")
        check(
            await raised_by(lambda: worker.action("late")(lambda: None)),
            sdk.UsageError,
            r"before the worker is started",
        )
        await worker.event("never stored: nothing listens")
        timeout = check(
            await raised_by(lambda: worker.flush(timeout=0.05)),
            sdk.PierheadTimeoutError,
            r"not acknowledged within 0.05 s",
        )
        assert isinstance(timeout, TimeoutError)
        await worker.close(timeout=0)
    check(await raised_by(lambda: worker.event("closed")), sdk.ClosedError, r"closed")


async def test_bad_requests_on_a_watcher_are_refused_before_sending() -> None:
    async with running_broker() as broker, asyncio.timeout(60):
        async with sdk.Watcher(broker.url) as watcher:
            await watcher.connected()
            cases: list[tuple[Callable[[], Any], str]] = [
                (lambda: watcher.catch("bad!"), r"invalid catch request.*workspace"),
                (lambda: watcher.catch("w", reason="r" * 5000), r"invalid catch request"),
                (lambda: watcher.release("bad!"), r"invalid release request"),
                (lambda: watcher.workspaces("a%b"), r"invalid list request"),
                (lambda: watcher.break_mutex("bad!"), r"invalid mutex_break request"),
                (lambda: watcher.delete_workspace("bad!"), r"invalid delete_workspace request"),
            ]
            for call, message in cases:
                check(await raised_by(call), sdk.InvalidArgumentError, message)
            assert await watcher.workspaces("*") == []
