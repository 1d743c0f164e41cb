"""Actions: a watcher's call reaches the worker, and only the caller sees the result."""

from __future__ import annotations

import pytest

import schema
from tests.broker.wire import WireClient, watcher_hello, wire_client, worker_hello
from tests.support import BrokerStore

pytestmark = pytest.mark.asyncio

SET_LR = schema.ActionSpec(name="set_lr", description="change the learning rate", params=["value"])


async def serve_one(worker: WireClient, *, fail: bool = False) -> schema.ActionRequest:
    request = await worker.expect(schema.ActionRequest)
    if fail:
        error = schema.ActionFailure(type="ValueError", message="negative rate")
        await worker.send(schema.ActionResult(call=request.call, ok=False, error=error))
    else:
        result = {"old": 0.1, "new": request.args["value"]}
        await worker.send(schema.ActionResult(call=request.call, ok=True, result=result))
    return request


def call(watcher: WireClient, action: str = "set_lr", **fields: object) -> schema.ActionCall:
    return schema.ActionCall(
        id=watcher.next_id(),
        workspace="train",
        run_id=str(fields.pop("run_id", "run-1")),
        action=action,
        args={"value": 0.01},
        **fields,  # type: ignore[arg-type]
    )


async def test_a_call_is_answered_with_the_workers_result_and_only_to_the_caller(
    broker_store: BrokerStore,
) -> None:
    async with broker_store.running_broker() as broker:
        async with (
            wire_client(broker.url, worker_hello("train", "run-1", actions=[SET_LR])) as worker,
            wire_client(broker.url, watcher_hello(client="ops")) as caller,
            wire_client(broker.url, watcher_hello(client="bystander")) as bystander,
        ):
            request = call(caller)
            await caller.send(request)
            forwarded = await serve_one(worker)
            assert (forwarded.name, forwarded.args, forwarded.caller) == (
                "set_lr",
                {"value": 0.01},
                "ops",
            )
            result = await caller.expect(schema.CallResult)
            assert result == schema.CallResult(
                id=request.id, ok=True, result={"old": 0.1, "new": 0.01}
            )
            # The bystander's next frame answers its own request: no result leaked to it.
            stats = schema.StatsRequest(id=bystander.next_id())
            await bystander.send(stats)
            assert isinstance(await bystander.receive(), schema.StatsReport)

            failing = call(caller)
            await caller.send(failing)
            await serve_one(worker, fail=True)
            failed = await caller.expect(schema.CallResult)
            assert failed.id == failing.id
            assert not failed.ok
            assert failed.error == schema.ActionFailure(type="ValueError", message="negative rate")


@pytest.mark.parametrize(
    ("action", "run_id", "message"),
    [("explode", "run-1", "offers no action 'explode'"), ("set_lr", "run-9", "not connected")],
)
async def test_unknown_actions_and_runs_are_not_found(
    broker_store: BrokerStore, action: str, run_id: str, message: str
) -> None:
    async with broker_store.running_broker() as broker:
        async with (
            wire_client(broker.url, worker_hello("train", "run-1", actions=[SET_LR])),
            wire_client(broker.url, watcher_hello()) as caller,
        ):
            reply = await caller.request(call(caller, action, run_id=run_id))
            assert isinstance(reply, schema.ErrorReply)
            assert reply.code is schema.ErrorCode.NOT_FOUND
            assert message in reply.message


async def test_a_silent_worker_times_out_and_a_late_answer_is_dropped(
    broker_store: BrokerStore,
) -> None:
    async with broker_store.running_broker() as broker:
        async with (
            wire_client(broker.url, worker_hello("train", "run-1", actions=[SET_LR])) as worker,
            wire_client(broker.url, watcher_hello()) as caller,
        ):
            reply = await caller.request(call(caller, timeout_s=0.2))
            assert isinstance(reply, schema.ErrorReply)
            assert reply.code is schema.ErrorCode.TIMEOUT
            await serve_one(worker)  # too late: nobody gets it
            stats = schema.StatsRequest(id=caller.next_id())
            await caller.send(stats)
            assert isinstance(await caller.receive(), schema.StatsReport)


async def test_a_worker_that_goes_away_fails_its_calls(broker_store: BrokerStore) -> None:
    async with broker_store.running_broker() as broker:
        async with wire_client(broker.url, watcher_hello()) as caller:
            async with wire_client(
                broker.url, worker_hello("train", "run-1", actions=[SET_LR])
            ) as worker:
                request = call(caller)
                await caller.send(request)
                await worker.expect(schema.ActionRequest)
            reply = await caller.expect(schema.ErrorReply)
            assert reply.id == request.id
            assert reply.code is schema.ErrorCode.NOT_FOUND
