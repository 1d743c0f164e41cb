"""Who may send what, cell by cell: every client frame x every role x in and out of scope.

A real broker with ``--auth token``, one per token under test. Each cell opens a session with
that token (a worker session or a watcher session) and sends one frame about a workspace inside
the token's scope (``deploy-N``) or outside it (``prod-N``). PROBES restates the table of
docs/protocol.md, section 6, and ``expected`` reads the outcome of a cell off it:

- allowed: the documented reply;
- forbidden: ``error forbidden`` with the request's id, and the session lives on;
- refused at hello: a token that cannot open the session gets ``error forbidden`` and close
  4003 in answer to its ``hello``, so no other frame of that session is ever read.

Every cell reads every row of every table of ``pierhead.db`` with sqlite3, after the broker's
writer has flushed, before and after its frame: a refused frame must leave them as they were.
An allowed frame that writes (``writes`` below) must change them, which shows the comparison
sees a change when there is one; an allowed read must not.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import pytest

import schema
from broker._server import BrokerServer
from broker._sqlite_store import DATABASE_NAME
from broker._tokens import SqliteTokenStore
from broker.testing import running_broker
from tests.broker.wire import WireClient, closed_with, watcher_hello, wire_client, worker_hello
from tests.support import PROTOCOL

SessionKind = Literal["worker", "watcher"]

SCOPE = "deploy-*"
TOKENS: dict[str, frozenset[schema.Role]] = {
    "worker": frozenset({"worker"}),
    "watcher": frozenset({"watcher"}),
    "operator": frozenset({"operator"}),
    "admin": frozenset({"admin"}),
    "every role": frozenset({"worker", "watcher", "operator", "admin"}),
}
"""The tokens under test, each scoped to SCOPE. Roles do not imply one another."""

WATCHER_SESSION_ROLES: frozenset[schema.Role] = frozenset({"watcher", "operator", "admin"})
"""Any one of these opens a watcher session."""

REQUEST = 100
"""The id of every probed request (each cell has a fresh session)."""
ACTION = schema.ActionSpec(name="a")
AN_EVENT = schema.Event(
    payload=schema.Scalar(name="n", value=1.0),
    create_time=datetime.datetime(2026, 11, 1, tzinfo=datetime.UTC),
)

Prepare = Literal[
    "",
    "fixture holds the mutex",
    "subject holds the mutex",
    "subject subscribed",
    "call pending",
    "subject elsewhere",
]
"""What a cell sets up before its frame. The fixture is a worker of the cell's workspace with
every role; the subject is the session under test. "subject elsewhere": a worker subject lives
in a workspace of its own inside the scope, so that its frame names someone else's."""


@dataclass(frozen=True, slots=True)
class Scene:
    """What a cell's frame is about."""

    workspace: str
    hello: schema.Hello
    """The hello a session of this kind sends for ``workspace``."""
    call: int = 1
    """The call of the action request the subject was sent, if any."""
    caller_request: int | None = None
    """The id of that call at the caller, who gets the result."""


@dataclass(frozen=True, slots=True)
class Probe:
    name: str
    frame: Callable[[Scene], schema.ClientFrame]
    worker: schema.Role | None
    """The role the frame needs in a worker session; None: never allowed there."""
    watcher: schema.Role | None
    """The role the frame needs in a watcher session; None: never allowed there."""
    reply: type[Any]
    """What answers it when allowed."""
    names_workspace: bool = False
    """Allowed only inside the scope."""
    writes: bool = False
    shows: Callable[[Any], list[str]] | None = None
    """For a reply filtered by scope: the workspaces it shows."""
    prepare: Prepare = ""
    sessions: tuple[SessionKind, ...] = ("worker", "watcher")


def names_in(states: list[schema.WorkspaceState]) -> list[str]:
    return [state.name for state in states]


HELLO = Probe(
    "hello",
    lambda scene: scene.hello,
    # Opening is special (see ``expected``): a worker's hello needs the worker role and its
    # workspace in scope, a watcher's any of WATCHER_SESSION_ROLES.
    worker=None,
    watcher=None,
    reply=schema.Welcome,
    names_workspace=True,
    writes=True,
)

PROBES: list[Probe] = [
    # name, frame, worker session, watcher session, reply
    HELLO,
    Probe(
        "hello (again)", lambda s: s.hello, None, None, schema.Welcome,
        prepare="subject elsewhere",
    ),
    Probe(
        "publish",
        lambda s: schema.Publish(seq=1, events=[AN_EVENT]),
        "worker", None, schema.Ack, writes=True,
    ),
    Probe(
        "details",
        lambda s: schema.SetDetails(id=REQUEST, details=schema.WorkspaceDetails(workflow="t")),
        "worker", None, schema.Ok, writes=True,
    ),
    Probe(
        "mutex_acquire", lambda s: schema.MutexAcquire(id=REQUEST),
        "worker", None, schema.MutexGranted, writes=True,
    ),
    Probe(
        "mutex_acquire (wait)", lambda s: schema.MutexAcquire(id=REQUEST, wait=True, timeout_s=5),
        "worker", None, schema.MutexGranted, writes=True,
    ),
    Probe(
        "mutex_release", lambda s: schema.MutexRelease(id=REQUEST),
        "worker", None, schema.Ok, writes=True, prepare="subject holds the mutex",
    ),
    Probe(
        "catch", lambda s: schema.Catch(id=REQUEST, workspace=s.workspace, reason="r"),
        "worker", "operator", schema.Ok, names_workspace=True, writes=True,
    ),
    Probe(
        "catch (another workspace)",
        lambda s: schema.Catch(id=REQUEST, workspace=s.workspace, reason="r"),
        None, None, schema.Ok, prepare="subject elsewhere", sessions=("worker",),
    ),
    Probe(
        "action_result", lambda s: schema.ActionResult(call=s.call, ok=True, result="done"),
        "worker", None, schema.CallResult, prepare="call pending", writes=True,
    ),
    Probe(
        "subscribe", lambda s: schema.Subscribe(id=REQUEST, pattern=s.workspace),
        None, "watcher", schema.Subscribed, shows=lambda r: names_in(r.snapshot),
    ),
    Probe(
        "unsubscribe", lambda s: schema.Unsubscribe(id=REQUEST, sub=1),
        None, "watcher", schema.Ok, prepare="subject subscribed",
    ),
    Probe(
        "list", lambda s: schema.ListWorkspaces(id=REQUEST, pattern=s.workspace),
        None, "watcher", schema.Workspaces, shows=lambda r: names_in(r.items),
    ),
    Probe(
        "history", lambda s: schema.HistoryQuery(id=REQUEST, workspace=s.workspace),
        None, "watcher", schema.HistoryPage, names_workspace=True,
    ),
    Probe(
        "release", lambda s: schema.Release(id=REQUEST, workspace=s.workspace),
        None, "operator", schema.Ok, names_workspace=True, writes=True,
    ),
    Probe(
        "call",
        lambda s: schema.ActionCall(
            id=REQUEST, workspace=s.workspace, run_id="fixture", action=ACTION.name
        ),
        None, "operator", schema.CallResult, names_workspace=True, writes=True,
    ),
    Probe(
        "mutex_break", lambda s: schema.MutexBreak(id=REQUEST, workspace=s.workspace),
        None, "admin", schema.Ok, names_workspace=True, writes=True,
        prepare="fixture holds the mutex",
    ),
    Probe(
        "delete_workspace",
        lambda s: schema.DeleteWorkspace(id=REQUEST, workspace=s.workspace, force=True),
        None, "admin", schema.Ok, names_workspace=True, writes=True,
    ),
    Probe("stats", lambda s: schema.StatsRequest(id=REQUEST), None, "admin", schema.StatsReport),
]  # fmt: skip


class Outcome(Enum):
    ALLOWED = "allowed"
    FORBIDDEN = "error forbidden"
    REFUSED_AT_HELLO = "error forbidden and close 4003 at hello"


def expected(
    probe: Probe, session: SessionKind, roles: frozenset[schema.Role], in_scope: bool
) -> Outcome:
    if session == "worker":
        home_in_scope = in_scope or probe.prepare == "subject elsewhere"
        opens = "worker" in roles and home_in_scope
    else:
        opens = bool(roles & WATCHER_SESSION_ROLES)
    if not opens:
        return Outcome.REFUSED_AT_HELLO
    if probe is HELLO:
        return Outcome.ALLOWED
    role = probe.worker if session == "worker" else probe.watcher
    if role is None or role not in roles:
        return Outcome.FORBIDDEN
    if probe.names_workspace and not in_scope:
        return Outcome.FORBIDDEN
    return Outcome.ALLOWED


def all_cells() -> list[tuple[Probe, SessionKind, bool]]:
    return [
        (probe, session, in_scope)
        for probe in PROBES
        for session in probe.sessions
        for in_scope in (True, False)
    ]


def first_probe_of_each_frame() -> dict[str, Probe]:
    """Frame type -> its main probe (variants of a frame come after it)."""
    scene = Scene(workspace="w", hello=watcher_hello())
    firsts: dict[str, Probe] = {}
    for probe in PROBES:
        firsts.setdefault(str(probe.frame(scene).__struct_config__.tag), probe)
    return firsts


def test_the_table_has_every_client_frame() -> None:
    every = {str(frame.__struct_config__.tag) for frame in schema.ClientFrame.__args__}
    assert set(first_probe_of_each_frame()) == every


def test_the_table_is_the_one_in_the_protocol_doc() -> None:
    row = r"^\| `(\w+)` \| \w+ \| ([^|]+) \| ([^|]+) \| ([^|]+) \| [^|]+ \|$"
    documented = {
        tag: (
            re.findall(r"\b(worker|watcher)\b", senders),
            [] if roles.strip() == "—" else [role.strip() for role in roles.split("/")],
            "`forbidden`" in outside,
            "not shown" in outside,
        )
        for tag, senders, roles, outside in re.findall(row, PROTOCOL.read_text(), flags=re.M)
    }
    tested = {
        tag: (
            [kind for kind, role in (("worker", p.worker), ("watcher", p.watcher)) if role],
            [role for role in (p.worker, p.watcher) if role],
            p.names_workspace,
            p.shows is not None,
        )
        for tag, p in first_probe_of_each_frame().items()
    }
    assert documented == tested


# The broker's side: its store and its sessions ---------------------------------------------

Rows = dict[str, set[tuple[Any, ...]]]


class StoredRows:
    """Every row of every table of the broker's SQLite file, read by a connection of our own."""

    def __init__(self, server: BrokerServer, path: Path) -> None:
        self._server = server
        self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)

    def close(self) -> None:
        self._db.close()

    async def read(self) -> Rows:
        assert self._server.broker is not None
        await self._server.broker.writer.flush()
        tables = self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        names = [name for (name,) in tables.fetchall()]
        return {name: set(self._db.execute(f'SELECT * FROM "{name}"')) for name in names}


def difference(before: Rows, after: Rows) -> str:
    changes = [
        f"{table}: +{len(after.get(table, set()) - rows)} -{len(rows - after.get(table, set()))}"
        for table, rows in before.items()
        if after.get(table) != rows
    ]
    return ", ".join(changes) or "nothing"


class Observer:
    """A watcher subscribed to every workspace's presence, with every role: it sees when a
    closed worker's disconnection is stored, so that no cell's comparison catches the last
    cell's."""

    def __init__(self, client: WireClient) -> None:
        self._client = client
        self._gone: set[tuple[str, str]] = set()
        self._removed: set[str] = set()
        self._changed = asyncio.Condition()

    async def run(self) -> None:
        async for frame in self._client.frames_until_closed():
            if isinstance(frame, schema.Events):
                self._gone.update(
                    (event.workspace, event.payload.run_id)
                    for event in frame.events
                    if isinstance(event.payload, schema.Presence)
                    and event.payload.state == "disconnected"
                )
            elif isinstance(frame, schema.Removed):
                self._removed.add(frame.workspace)
            else:
                continue
            async with self._changed:
                self._changed.notify_all()

    async def wait_gone(self, runs: list[tuple[str, str]]) -> None:
        """Until each (workspace, run) is stored as disconnected, or its workspace deleted."""

        def gone() -> bool:
            return all(run in self._gone or run[0] in self._removed for run in runs)

        try:
            async with asyncio.timeout(10), self._changed:
                await self._changed.wait_for(gone)
        except TimeoutError:
            raise AssertionError(f"no disconnection was stored for one of {runs}") from None


class Fixture:
    """A worker of the cell's workspace with every role: it answers calls of action ``a`` and
    takes the mutex when asked."""

    def __init__(self, client: WireClient) -> None:
        self._client = client
        self._granted = asyncio.Event()

    async def run(self) -> None:
        async for frame in self._client.frames_until_closed():
            if isinstance(frame, schema.ActionRequest):
                answer = schema.ActionResult(call=frame.call, ok=True, result="done")
                await self._client.send(answer)
            elif isinstance(frame, schema.MutexGranted):
                self._granted.set()

    async def hold_mutex(self) -> None:
        await self._client.send(schema.MutexAcquire(id=self._client.next_id()))
        await asyncio.wait_for(self._granted.wait(), 10)


@asynccontextmanager
async def in_background(job: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    task = asyncio.create_task(job)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@dataclass
class Table:
    url: str
    secrets: dict[str, str]
    stored: StoredRows
    observer: Observer
    caller: WireClient
    """A watcher with every role, to call the subject's action."""
    numbers: itertools.count[int]


@asynccontextmanager
async def table_broker(data: Path) -> AsyncIterator[Table]:
    tokens = SqliteTokenStore(data)
    secrets = {name: tokens.create(name, roles, SCOPE)[1] for name, roles in TOKENS.items()}
    secrets["root"] = tokens.create("root", ["worker", "watcher", "operator", "admin"])[1]
    tokens.close()
    # No grace period or retention pass may end inside a cell and write behind its back.
    settings: dict[str, Any] = {"mutex_grace_s": 3600.0, "retention_interval_s": 3600.0}
    async with (
        running_broker(data, auth="token", **settings) as server,
        wire_client(server.url, watcher_hello(token=secrets["root"])) as watching,
        wire_client(server.url, watcher_hello(token=secrets["root"])) as caller,
    ):
        everything = schema.Subscribe(id=watching.next_id(), pattern="*", kinds=["presence"])
        assert isinstance(await watching.request(everything), schema.Subscribed)
        observer = Observer(watching)
        stored = StoredRows(server, data / DATABASE_NAME)
        try:
            async with in_background(observer.run()):
                yield Table(server.url, secrets, stored, observer, caller, itertools.count(1))
        finally:
            stored.close()


# One cell -----------------------------------------------------------------------------------


async def reply_to(client: WireClient, request_id: int) -> schema.BrokerFrame:
    while True:
        reply = await client.receive()
        if getattr(reply, "id", None) == request_id:
            return reply


async def answer_to(client: WireClient, frame: schema.ClientFrame) -> schema.BrokerFrame:
    """The frame answering ``frame``: the reply to its id, or for a frame without an id the
    first ack, welcome or error."""
    request_id = getattr(frame, "id", None)
    if request_id is not None:
        return await reply_to(client, request_id)
    while True:
        reply = await client.receive()
        if isinstance(reply, schema.Ack | schema.Welcome | schema.ErrorReply):
            return reply


async def first_of(*waits: Coroutine[Any, Any, schema.BrokerFrame]) -> schema.BrokerFrame:
    """Whichever wait is answered first."""
    tasks = [asyncio.create_task(wait) for wait in waits]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return done.pop().result()


def described(frame: schema.BrokerFrame) -> str:
    if isinstance(frame, schema.ErrorReply):
        return f"error {frame.code.value} ({frame.message}, id {frame.id})"
    return str(frame.__struct_config__.tag)


def cell_name(token: str, probe: Probe, session: SessionKind, in_scope: bool) -> str:
    scope = "in scope" if in_scope else "out of scope"
    return f"{probe.name} | {session} session | {token} token | {scope}"


async def run_cell(
    table: Table, token: str, probe: Probe, session: SessionKind, in_scope: bool
) -> str | None:
    """What is wrong with this cell, or None."""
    n = next(table.numbers)
    target = f"deploy-{n}" if in_scope else f"prod-{n}"
    home = f"deploy-{n}-own" if probe.prepare == "subject elsewhere" else target
    secret = table.secrets[token]

    def hello_for(workspace: str) -> schema.Hello:
        if session == "worker":
            return worker_hello(workspace, "subject", token=secret, actions=[ACTION])
        return watcher_hello(token=secret)

    settle = [(target, "fixture")]
    got: Outcome | str
    async with AsyncExitStack() as stack:
        fixture_hello = worker_hello(
            target, "fixture", token=table.secrets["root"], actions=[ACTION]
        )
        fixture = Fixture(await stack.enter_async_context(wire_client(table.url, fixture_hello)))
        await stack.enter_async_context(in_background(fixture.run()))
        if probe.prepare == "fixture holds the mutex":
            await fixture.hold_mutex()
        subject = await stack.enter_async_context(wire_client(table.url))
        before = await table.stored.read()
        await subject.send(hello_for(home))
        greeting = await subject.receive()
        if not isinstance(greeting, schema.Welcome):
            got = await refusal_at_hello(subject, greeting)
        else:
            if session == "worker":
                settle.append((home, "subject"))
            if probe is HELLO:
                got = Outcome.ALLOWED
            else:
                scene = Scene(workspace=target, hello=hello_for(target))
                scene = await prepare(table, probe, session, subject, scene, home)
                before = await table.stored.read()
                got = await probe_outcome(table, probe, subject, scene, in_scope)
        after = await table.stored.read()
    await table.observer.wait_gone(settle)

    want = expected(probe, session, TOKENS[token], in_scope)
    problems = []
    if got is not want:
        shown = got.value if isinstance(got, Outcome) else got
        problems.append(f"expected {want.value}, got {shown}")
    # A watcher's hello is the one allowed frame of a writing probe that stores nothing.
    writes = probe.writes and not (probe is HELLO and session == "watcher")
    if (before != after) is not (want is Outcome.ALLOWED and writes):
        problems.append(f"the store changed by {difference(before, after)}")
    if problems:
        return f"{cell_name(token, probe, session, in_scope)}: {'; '.join(problems)}"
    return None


async def refusal_at_hello(subject: WireClient, greeting: schema.BrokerFrame) -> Outcome | str:
    code = await closed_with(subject)
    if (
        isinstance(greeting, schema.ErrorReply)
        and greeting.code is schema.ErrorCode.FORBIDDEN
        and greeting.id is None
        and code == schema.CloseCode.FORBIDDEN
    ):
        return Outcome.REFUSED_AT_HELLO
    return f"{described(greeting)}, close {code}"


async def prepare(
    table: Table, probe: Probe, session: SessionKind, subject: WireClient, scene: Scene, home: str
) -> Scene:
    """Set up what the probed frame acts on, as far as the subject's session allows."""
    if probe.prepare == "subject holds the mutex" and session == "worker":
        granted = await subject.request(schema.MutexAcquire(id=1))
        assert isinstance(granted, schema.MutexGranted), f"mutex before release: {granted}"
    elif probe.prepare == "subject subscribed" and session == "watcher":
        # Refused without the watcher role; the unsubscribe is then refused as well.
        await subject.request(schema.Subscribe(id=1, pattern=scene.workspace))
    elif probe.prepare == "call pending" and session == "worker":
        caller = table.caller
        call = schema.ActionCall(
            id=caller.next_id(), workspace=home, run_id="subject", action=ACTION.name
        )
        await caller.send(call)
        request = await subject.expect(schema.ActionRequest)
        return Scene(scene.workspace, scene.hello, call=request.call, caller_request=call.id)
    return scene


async def probe_outcome(
    table: Table, probe: Probe, subject: WireClient, scene: Scene, in_scope: bool
) -> Outcome | str:
    frame = probe.frame(scene)
    await subject.send(frame)
    if scene.caller_request is not None:
        # An action result is answered at the caller, a refusal at the subject.
        reply = await first_of(
            answer_to(subject, frame), reply_to(table.caller, scene.caller_request)
        )
    else:
        reply = await answer_to(subject, frame)
    if isinstance(reply, schema.ErrorReply) and reply.code is schema.ErrorCode.FORBIDDEN:
        return Outcome.FORBIDDEN if reply.id == getattr(frame, "id", None) else described(reply)
    if not isinstance(reply, probe.reply):
        return described(reply)
    if isinstance(reply, schema.CallResult) and not (reply.ok and reply.result == "done"):
        return f"result {reply}"
    if probe.shows is not None:
        shown = probe.shows(reply)
        if shown != ([scene.workspace] if in_scope else []):
            return f"{described(reply)} showing {shown}"
    return Outcome.ALLOWED


# The table ----------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("token", list(TOKENS))
async def test_every_frame_by_role_and_scope(tmp_path: Path, token: str) -> None:
    async with table_broker(tmp_path / "data") as table:
        failures = [
            failure
            for probe, session, in_scope in all_cells()
            if (failure := await run_cell(table, token, probe, session, in_scope)) is not None
        ]
    assert not failures, "cells that broke:\n" + "\n".join(failures)
