"""Who a catch, a release and an action call are attributed to.

With ``--auth token`` the token's name, whatever ``client`` (or run id) the program chose in its
``hello``; with ``--auth none`` the names the programs gave themselves, as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest

import schema
from broker._tokens import SqliteTokenStore
from broker.testing import running_broker
from tests.broker.wire import WireClient, watcher_hello, wire_client, worker_hello

pytestmark = pytest.mark.asyncio

WORKSPACE = "deploy-1"
RUN_ID = "run-1"
ACTION = schema.ActionSpec(name="ping")


async def _attributions(
    worker: WireClient, watcher: WireClient
) -> tuple[str | None, str | None, str, str | None]:
    """``by`` of a watcher's catch, of its release, ``caller`` of its call, ``by`` of the
    worker's own catch, as the worker sees them."""
    reply = await watcher.request(schema.Catch(id=watcher.next_id(), workspace=WORKSPACE))
    assert isinstance(reply, schema.Ok), reply
    caught_by = (await worker.expect(schema.SemaphoresPush)).by

    reply = await watcher.request(schema.Release(id=watcher.next_id(), workspace=WORKSPACE))
    assert isinstance(reply, schema.Ok), reply
    released_by = (await worker.expect(schema.SemaphoresPush)).by

    call = schema.ActionCall(
        id=watcher.next_id(), workspace=WORKSPACE, run_id=RUN_ID, action="ping"
    )
    await watcher.send(call)
    request = await worker.expect(schema.ActionRequest)
    await worker.send(schema.ActionResult(call=request.call, ok=True, result="pong"))
    result = await watcher.expect(schema.CallResult)
    assert result.id == call.id
    assert result.result == "pong"

    # The push and the ok may come in either order.
    await worker.send(schema.Catch(id=worker.next_id(), reason="diverged"))
    found = await worker.expect_all(schema.Ok, schema.SemaphoresPush)
    worker_caught_by = found[schema.SemaphoresPush].by
    return caught_by, released_by, request.caller, worker_caught_by


@pytest.mark.parametrize("auth", ["token", "none"])
async def test_catch_release_and_call_name_the_token_when_auth_is_on(
    tmp_path: Path, auth: Literal["token", "none"]
) -> None:
    data = tmp_path / "data"
    store = SqliteTokenStore(data)
    operator_secret = store.create("alice-ops", ["watcher", "operator"], "deploy-*")[1]
    worker_secret = store.create("trainer-ci", ["worker"], "deploy-*")[1]
    store.close()
    watcher_token = operator_secret if auth == "token" else None
    worker_token = worker_secret if auth == "token" else None
    async with running_broker(data, auth=auth) as broker:
        worker_hi = worker_hello(
            WORKSPACE, RUN_ID, client="bob-laptop", token=worker_token, actions=[ACTION]
        )
        watcher_hi = watcher_hello(client="impostor", token=watcher_token)
        async with (
            wire_client(broker.url, worker_hi) as worker,
            wire_client(broker.url, watcher_hi) as watcher,
        ):
            attributed = await _attributions(worker, watcher)
    if auth == "token":
        assert attributed == ("alice-ops", "alice-ops", "alice-ops", "trainer-ci")
    else:
        assert attributed == ("impostor", "impostor", "impostor", RUN_ID)
