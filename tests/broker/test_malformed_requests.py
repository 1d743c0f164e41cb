"""Every request the broker refuses as malformed gets exactly one error carrying its ``id``.

A client waits on the reply to each request's id; an error without the id leaves it waiting
forever. One ``pierhead serve`` process, raw sockets, both codecs; each malformed request is
followed by a good one on the same session, which must still be answered.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import msgspec
import pytest

import schema
from broker.testing import broker_process
from tests.broker.wire import WireClient, watcher_hello, wire_client, worker_hello

WORKSPACE: Final = "ws"
RUN_ID: Final = "run-1"
LONG_REASON: Final = "x" * 5000


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    session: Literal["worker", "watcher"]
    frame: dict[str, Any]
    """Without ``id``: every case gets a fresh one."""
    code: schema.ErrorCode = schema.ErrorCode.BAD_FRAME


CASES: Final = [
    Case("catch, over-long reason", "watcher",
         {"type": "catch", "workspace": WORKSPACE, "reason": LONG_REASON},
         schema.ErrorCode.TOO_LARGE),
    Case("catch, bad workspace name", "watcher", {"type": "catch", "workspace": "bad!"}),
    Case("release, bad workspace name", "watcher", {"type": "release", "workspace": "bad!"}),
    Case("list, bad pattern", "watcher", {"type": "list", "pattern": "a%b"}),
    Case("history, bad workspace name", "watcher", {"type": "history", "workspace": "bad!"}),
    Case("history, limit 0", "watcher", {"type": "history", "workspace": WORKSPACE, "limit": 0}),
    Case("delete, bad workspace name", "watcher",
         {"type": "delete_workspace", "workspace": "bad!"}),
    Case("mutex break, bad workspace name", "watcher",
         {"type": "mutex_break", "workspace": "bad!"}),
    Case("call, bad action name", "watcher",
         {"type": "call", "workspace": WORKSPACE, "run_id": RUN_ID, "action": "bad/run"}),
    Case("call, timeout 0", "watcher",
         {"type": "call", "workspace": WORKSPACE, "run_id": RUN_ID, "action": "add",
          "timeout_s": 0}),
    Case("subscribe, bad pattern", "watcher", {"type": "subscribe", "pattern": "a b"}),
    Case("subscribe, bad start", "watcher",
         {"type": "subscribe", "pattern": "*", "from": "yesterday"}),
    Case("unsubscribe, negative sub", "watcher", {"type": "unsubscribe", "sub": -1}),
    Case("stats, wrong field type", "watcher", {"type": "stats", "id": None}),
    Case("catch, over-long reason (worker)", "worker",
         {"type": "catch", "reason": LONG_REASON}, schema.ErrorCode.TOO_LARGE),
    Case("details, over-long field", "worker",
         {"type": "details", "details": {"current_host": LONG_REASON}}, schema.ErrorCode.TOO_LARGE),
    Case("mutex acquire, timeout 0", "worker",
         {"type": "mutex_acquire", "wait": True, "timeout_s": 0}),
    Case("mutex release, unknown field of the wrong type", "worker",
         {"type": "mutex_release", "id": "seven"}),
]  # fmt: skip
"""One or more malformed requests of every request type. A ``stats`` or ``mutex_release`` has
no field but ``id``: its case is an ``id`` that cannot be read, answered without one."""

REQUEST_TAGS: Final = {
    str(member.__struct_config__.tag)
    for member in schema.ClientFrame.__args__
    if "id" in member.__struct_fields__
}


def test_every_request_type_has_a_case() -> None:
    assert {case.frame["type"] for case in CASES} == REQUEST_TAGS


def _encode(codec: schema.Codec, frame: dict[str, Any]) -> bytes:
    return msgspec.json.encode(frame) if codec.text else msgspec.msgpack.encode(frame)


def _good_request(client: WireClient, session: str) -> Any:
    if session == "watcher":
        return schema.ListWorkspaces(id=client.next_id())
    return schema.SetDetails(id=client.next_id(), details=schema.WorkspaceDetails(current_host="h"))


async def _errors_before_reply(client: WireClient, case: Case) -> tuple[list[Any], int | None]:
    """Send ``case`` then a good request; the errors that came before the good one's reply."""
    frame = dict(case.frame)
    request_id = frame.setdefault("id", client.next_id())
    await client.connection.send(_encode(client.codec, frame), text=client.codec.text)
    good = _good_request(client, case.session)
    await client.send(good)
    errors = []
    while True:
        reply = await client.receive()
        if isinstance(reply, schema.ErrorReply):
            errors.append(reply)
        elif getattr(reply, "id", None) == good.id:
            return errors, request_id if isinstance(request_id, int) else None


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "codec", [schema.JSON_CODEC, schema.MSGPACK_CODEC], ids=["json", "msgpack"]
)
async def test_each_malformed_request_gets_one_error_with_its_id(
    tmp_path: Path, codec: schema.Codec
) -> None:
    failures = []
    async with broker_process(tmp_path / "data") as broker:
        async with (
            wire_client(broker.url, worker_hello(WORKSPACE, RUN_ID), codec=codec) as worker,
            wire_client(broker.url, watcher_hello(), codec=codec) as watcher,
        ):
            clients = {"worker": worker, "watcher": watcher}
            for case in CASES:
                errors, request_id = await _errors_before_reply(clients[case.session], case)
                outcome = [(error.id, error.code) for error in errors]
                if outcome != [(request_id, case.code)]:
                    failures.append(f"{case.name}: {outcome}, expected {[(request_id, case.code)]}")
        assert not broker.events("session_failed")
    assert not failures, "\n".join(failures)
