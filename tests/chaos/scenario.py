"""Chaos: workers, watchers and the workspace mutex through cut connections, a stalled watcher,
a broker killed with SIGKILL several times and stopped with SIGTERM once, then exact accounting.

``await run_scenario(directory, ChaosConfig(...))`` runs ``pierhead serve`` as a child process on
``directory / "data"`` (one node on SQLite, ``nodes=1``), or ``nodes`` of them on one Redis
server, each on ``directory / "node<i>"`` (a cluster, ``nodes=3``). Every worker and every
watcher talks to each node through a ``FaultProxy`` of its own and is given every node's proxy
URL, in an order of its own, so clients of one workspace are spread over the nodes and fail over
to the next node when their connection drops. Workers publish scalars whose value encodes
(worker index, sequence) and, a few times, take their workspace's mutex for a short critical
section that records its fence on entering and on leaving. Watchers follow different patterns
from ``earliest``. Meanwhile a chaos task cuts connections at random moments, stalls one
watcher's proxies for a while, pauses a node (SIGSTOP, then SIGCONT) when asked to, and kills
and restarts a node (a random one in a cluster, which stays down a moment first) on its data
directory; every proxy to it is pointed at its new port.

At the end, with every worker flushed and every watcher caught up, the scenario checks:

- every node returns the same stored streams (the checks below read them from any node);
- every event a worker queued is stored exactly once, under its seq, in the order queued;
- every watcher received exactly the stored stream of each workspace its pattern matches, in
  offset order, without duplicates, gaps or ``Missed`` notices;
- the mutex: fences never go backwards, each critical section has a fence of its own, the
  holder recorded in the stream is the worker inside, and no two critical sections overlap,
  neither in the stored stream nor in time.

A broken rule raises ``ChaosError`` (an ``AssertionError``) saying what and where; success
returns a ``ChaosReport`` with the counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import itertools
import json
import random
import signal
import threading
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Literal

import schema
import sdk
from broker.testing import BrokerProcess, FaultProxy, broker_process
from tests.broker.cluster_support import QUICK_FAILOVER, nodes_on_redis

PATTERNS = ("ws-*", "ws-1", "ws-[23]", "*", "ws-4")
"""The watchers' patterns, one watcher each."""
SERIES = "chaos"
"""The name of the scalars workers publish."""
MUTEX = "mutex"
"""The name of the custom events recording a critical section's entry and exit."""
VALUE_BASE = 1_000_000
"""A scalar's value is ``worker index * VALUE_BASE + sequence``."""

PAUSE_LATE_S = 0.25
"""A pause longer than asked by this much is noted in the chaos log with its real length."""

EventKey = tuple[object, ...]
"""What identifies a worker's event: ``("scalar", value, step)`` or ``("mutex", phase, fence)``."""


@dataclass(frozen=True, slots=True)
class ChaosConfig:
    workspaces: int = 5
    workers_per_workspace: int = 4
    events_per_worker: int = 150
    """Scalars each worker publishes (the mutex events come on top)."""
    mutex_sections: int = 4
    """Critical sections each worker goes through."""
    pace_s: float = 0.08
    """Mean pause between two scalars of a worker, so the run lasts while the chaos goes on."""
    hold_s: float = 0.02
    """How long a worker stays in its critical section between entering and leaving."""
    nodes: int = 1
    """1: one broker process on SQLite; more: that many processes on one Redis server."""
    kills: int = 4
    """SIGKILLs of a node; one SIGTERM comes on top."""
    down_s: float = 4.0
    """In a cluster, the longest a killed node stays down before it restarts (a random pause
    up to this), so its clients fail over to the others meanwhile; about half the time longer
    than the claim lease (QUICK_FAILOVER), so another node takes its workspaces over."""
    pauses: int = 0
    """SIGSTOPs of a node, each followed by SIGCONT after ``pause_s``."""
    pause_s: float = 1.0
    """How long a paused node stays stopped: under the cluster's claim lease (QUICK_FAILOVER),
    so the node keeps its workspaces and carries on."""
    stall_s: float = 2.0
    """How long one watcher's proxy is stalled."""
    cut_every_s: tuple[float, float] = (0.1, 0.4)
    """Bounds of the random pause between two rounds of cuts."""
    grace_s: float = 30.0
    """The broker's ``--grace``: long enough that no lease expires during a restart."""
    seed: int = 1
    timeout_s: float = 110.0
    """The whole scenario, setup and checks included."""
    settle_s: float = 30.0
    """The longest one final step (a flush, watchers catching up) may take."""
    starved_s: float = 5.0
    """How long the event loop may go without running before the scenario fails: a task
    looping without ever awaiting would otherwise hang the run, timeouts included."""

    @property
    def names(self) -> list[str]:
        return [f"ws-{n}" for n in range(self.workspaces)]

    @property
    def workers(self) -> int:
        return self.workspaces * self.workers_per_workspace

    @property
    def cluster(self) -> bool:
        return self.nodes > 1


class ChaosError(AssertionError):
    """A rule of the broker was broken: the message says which and where."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise ChaosError(message)


# What the clients did --------------------------------------------------------------------------


@dataclass(slots=True)
class Section:
    """One critical section as its worker saw it (times: this process's monotonic clock)."""

    run_id: str
    fence: int
    entered: float
    left: float = 0.0
    lost: bool = False


@dataclass(slots=True)
class WorkerRun:
    index: int
    workspace: str
    run_id: str
    expected: list[EventKey] = field(default_factory=list)
    """Every event queued, in the order queued: the seqs 1, 2, ... the broker must store."""
    sections: list[Section] = field(default_factory=list)
    scalars: int = 0
    doing: str = "starting"
    """What the worker is busy with, for the description of a run that got stuck."""


@dataclass(slots=True)
class WatcherRun:
    index: int
    pattern: str
    received: dict[str, list[schema.EventMsg]] = field(default_factory=lambda: defaultdict(list))
    missed: list[sdk.Missed] = field(default_factory=list)
    subscription: sdk.Subscription | None = None

    def last_offset(self, workspace: str) -> int:
        events = self.received.get(workspace)
        return events[-1].offset if events else 0


@dataclass(slots=True)
class ChaosLog:
    kills: int = 0
    terms: int = 0
    pauses: int = 0
    stalls: int = 0
    cut_rounds: int = 0
    actions: list[str] = field(default_factory=list)
    """``action@progress`` (``action:node(down)@progress`` in a cluster), in the order done."""


@dataclass(slots=True)
class ChaosReport:
    config: ChaosConfig
    seconds: float
    chaos: ChaosLog
    connections_cut: int
    claims: int
    """Workspaces taken over by a node from another (a cluster's failovers)."""
    stored: dict[str, int]
    """Events stored per workspace, broker-made ones included."""
    published: int
    sections: int
    semaphores_events: int
    presence_events: int
    delivered: dict[str, int]
    """Events each watcher received, by pattern."""

    def summary(self) -> str:
        chaos = self.chaos
        delivered = ", ".join(f"{p!r}: {n}" for p, n in self.delivered.items())
        config = self.config
        nodes = f"{config.nodes} nodes on Redis" if config.cluster else "one node on SQLite"
        return "\n".join(
            [
                f"chaos seed {config.seed}: {self.seconds:.1f} s, {nodes}, {config.workers} "
                f"workers on {config.workspaces} workspaces, {len(self.delivered)} watchers",
                f"  chaos: {chaos.kills} SIGKILL, {chaos.terms} SIGTERM, {chaos.pauses} SIGSTOP, "
                f"{chaos.stalls} stall, "
                f"{chaos.cut_rounds} rounds of cuts ({self.connections_cut} connections cut)"
                + (f", {self.claims} workspaces taken over" if config.cluster else "")
                + "; "
                + " ".join(chaos.actions),
                f"  stored: {sum(self.stored.values())} events ({self.published} published by "
                f"workers, {self.semaphores_events} semaphores, {self.presence_events} presence)"
                f", per workspace {self.stored}",
                f"  mutex: {self.sections} critical sections, fences increasing, none overlapping",
                f"  delivered exactly: {delivered}",
            ]
        )


# The scenario ----------------------------------------------------------------------------------


async def run_scenario(directory: Path, config: ChaosConfig) -> ChaosReport:
    """Run the scenario with its store in ``directory / "data"``; raise ChaosError or report."""
    scene = Scene(config)
    stacks = directory / "tasks-at-timeout.txt"
    # Written just before the timeout, while every client still runs: where each task waits.
    recorder = asyncio.create_task(_record_tasks(stacks, after_s=config.timeout_s - 1.0))
    try:
        async with starvation_watchdog(config.starved_s), asyncio.timeout(config.timeout_s):
            return await _run(directory, scene)
    except TimeoutError as exc:
        raise ChaosError(
            f"timed out ({config.timeout_s:g} s in all) while {scene.stage} (where each task "
            f"waited: {stacks}):\n{scene.describe()}"
        ) from exc
    except ChaosError as exc:
        raise ChaosError(f"{exc}\n{scene.describe()}") from exc
    finally:
        recorder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await recorder


async def _record_tasks(path: Path, *, after_s: float) -> None:
    await asyncio.sleep(after_s)
    current = asyncio.current_task()
    tasks = sorted(asyncio.all_tasks() - {current}, key=lambda task: task.get_name())
    path.write_text("".join(f"{task.get_name()}\n{awaiting(task)}\n" for task in tasks))


def awaiting(task: asyncio.Task[object]) -> str:
    """The chain of awaits a task is suspended in, outermost first, one line each (a task's
    own ``get_stack`` gives only its outermost frame while it is suspended)."""
    lines = []
    step: object = task.get_coro()
    while step is not None:
        frame = getattr(step, "cr_frame", None) or getattr(step, "gi_frame", None)
        if frame is None:
            lines.append(f"  {step!r}")
            break
        code = frame.f_code
        lines.append(f"  {code.co_filename}:{frame.f_lineno} in {code.co_name}")
        step = getattr(step, "cr_await", None) or getattr(step, "gi_yieldfrom", None)
    return "\n".join(lines)


@dataclass(slots=True)
class Scene:
    """Everything one run is made of, also to describe where it got stuck."""

    config: ChaosConfig
    workers: list[WorkerRun] = field(default_factory=list)
    watchers: list[WatcherRun] = field(default_factory=list)
    worker_clients: list[sdk.Worker] = field(default_factory=list)
    chaos: ChaosLog = field(default_factory=ChaosLog)
    stage: str = "starting"
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        config = self.config
        names = config.names
        self.workers = [
            WorkerRun(i, names[i // config.workers_per_workspace], f"run-{i:02d}")
            for i in range(config.workers)
        ]
        self.watchers = [WatcherRun(i, pattern) for i, pattern in enumerate(PATTERNS)]

    def describe(self) -> str:
        lines = [f"  chaos so far: {' '.join(self.chaos.actions) or 'nothing'}"]
        for run, client in zip(self.workers, self.worker_clients, strict=False):
            lines.append(
                f"  {run.run_id} ({run.workspace}): {run.doing}; {client.state}, "
                f"{client.counters}, sections {[s.fence for s in run.sections]}"
            )
        for following in self.watchers:
            offsets = {name: events[-1].offset for name, events in following.received.items()}
            lines.append(f"  watcher {following.pattern!r}: last offsets {offsets}")
        return "\n".join(lines)


async def _run(directory: Path, scene: Scene) -> ChaosReport:
    config = scene.config
    rng = random.Random(config.seed)
    names = config.names
    workers, watchers = scene.workers, scene.watchers
    async with contextlib.AsyncExitStack() as stack:
        # Cleanup runs in reverse: tasks, then clients, then proxies, then the broker processes.
        nodes = await stack.enter_async_context(_nodes(directory, config))
        links: list[ClientLinks] = []
        for first in range(len(watchers) + len(workers)):
            proxies = [await stack.enter_async_context(FaultProxy(node.port)) for node in nodes]
            links.append(ClientLinks(proxies, first))
        watcher_links, worker_links = links[: len(watchers)], links[len(watchers) :]
        clients = contextlib.AsyncExitStack()
        stack.push_async_exit(clients)
        tasks: list[asyncio.Task[None]] = []
        stack.push_async_callback(_cancel_all, tasks)

        scene.stage = "subscribing"
        watcher_clients: list[sdk.Watcher] = []
        for following, link in zip(watchers, watcher_links, strict=True):
            watcher = sdk.Watcher(link.urls, reconnect_initial_s=0.02, reconnect_max_s=0.2)
            await clients.enter_async_context(watcher)
            watcher_clients.append(watcher)
            subscription = await watcher.subscribe(following.pattern, since="earliest")
            following.subscription = subscription
            tasks.append(asyncio.create_task(_collect(following, subscription)))

        for run, link in zip(workers, worker_links, strict=True):
            worker = sdk.Worker(
                link.urls,
                run.workspace,
                run_id=run.run_id,
                reconnect_initial_s=0.02,
                reconnect_max_s=0.2,
                close_timeout_s=2.0,
            )
            await clients.enter_async_context(worker)
            scene.worker_clients.append(worker)

        total = config.workers * config.events_per_worker

        def progress() -> float:
            return sum(run.scalars for run in workers) / total

        scene.stage = "publishing under chaos"
        publishing = asyncio.Event()
        try:
            async with asyncio.TaskGroup() as group:
                jobs = [
                    group.create_task(_publish(run, client, config, random.Random(rng.random())))
                    for run, client in zip(workers, scene.worker_clients, strict=True)
                ]
                group.create_task(_set_when_done(jobs, publishing))
                chaos_rng = random.Random(rng.random())
                group.create_task(
                    _chaos(
                        nodes,
                        links,
                        watcher_links,
                        progress,
                        publishing,
                        config,
                        chaos_rng,
                        scene.chaos,
                    )
                )
        except ExceptionGroup as failed:
            # The first failure says what broke; the others are usually its consequences.
            raise _first_leaf(failed) from failed
        check_running(nodes)

        # Everything queued is stored; then the workers leave, which adds presence events.
        scene.stage = "flushing the workers"
        for run, client in zip(workers, scene.worker_clients, strict=True):
            await _flush(run, client, config.settle_s)
        for client in scene.worker_clients:
            await client.close()

        scene.stage = "waiting for the watchers to catch up"
        snapshot = await stored_streams(rng.choice(nodes).url, names)
        await _until_caught_up(watchers, tasks, snapshot, config.settle_s)
        await _cancel_all(tasks)
        for watcher in watcher_clients:
            await watcher.close()
        # Read again, from every node: events stored after the snapshot (presence) may have
        # been delivered.
        scene.stage = "reading the stored streams from every node"
        check_running(nodes)
        final = await _stored_everywhere(nodes, names)

        scene.stage = "checking"
        check_workers(workers, final)
        check_watchers(watchers, snapshot, final)
        sections = check_mutex(workers, final)
        return _report(
            config,
            time.monotonic() - scene.started,
            scene.chaos,
            sum(link.cuts for link in links),
            sum(len(node.events("workspace_claimed")) for node in nodes),
            final,
            watchers,
            sections,
        )
    raise AssertionError("unreachable")  # pragma: no cover - the block returns or raises


class ClientLinks:
    """One client's way to the nodes: a proxy to each (``proxies[i]`` to node ``i``), which it
    tries from node ``first`` on, so clients spread over the nodes; cut and stall act on all."""

    def __init__(self, proxies: list[FaultProxy], first: int) -> None:
        self.proxies = proxies
        self.first = first % len(proxies)

    @property
    def urls(self) -> list[str]:
        return [proxy.url for proxy in self.proxies[self.first :] + self.proxies[: self.first]]

    @property
    def cuts(self) -> int:
        return sum(proxy.cuts for proxy in self.proxies)

    def cut(self) -> None:
        for proxy in self.proxies:
            proxy.cut()

    def stall(self, on: bool) -> None:
        for proxy in self.proxies:
            proxy.stall(on)

    def point(self, node: int, port: int) -> None:
        """Node ``node`` now listens on ``port`` (restarted): new connections go there."""
        self.proxies[node].target_port = port


@contextlib.asynccontextmanager
async def _nodes(directory: Path, config: ChaosConfig) -> AsyncIterator[list[BrokerProcess]]:
    """The broker processes; on the way out, each one's logs go to ``directory/node<i>.log``
    (JSON lines), to look into a failed run."""
    grace = ("--grace", f"{config.grace_s:g}")
    async with contextlib.AsyncExitStack() as stack:
        if config.cluster:
            # A dead node's workspaces move within seconds; QUICK_FAILOVER's short --grace is
            # overridden (the last one counts), so no lease expires while its holder fails over.
            _redis, nodes = await stack.enter_async_context(
                nodes_on_redis(directory, config.nodes, *QUICK_FAILOVER, *grace)
            )
        else:
            nodes = [await stack.enter_async_context(broker_process(directory / "data", *grace))]
        try:
            yield nodes
        finally:
            for index, node in enumerate(nodes):
                lines = (json.dumps(record) + "\n" for record in node.logs)
                (directory / f"node{index}.log").write_text("".join(lines))


def check_running(nodes: Sequence[BrokerProcess]) -> None:
    """No node ended by itself (only the chaos stops nodes, and restarts them at once)."""
    for index, node in enumerate(nodes):
        code = node.returncode
        check(code is None, f"node {index} exited by itself with {code}:\n{node.describe()}")


async def _stored_everywhere(
    nodes: list[BrokerProcess], names: Sequence[str]
) -> dict[str, list[schema.EventMsg]]:
    """The stored streams read from each node in turn, which must agree; the last read.

    Events may still be stored while the nodes are read (a worker's presence after it left),
    so a later read may be longer, never different: each read extends the one before it."""
    reads = [await stored_streams(node.url, names) for node in nodes]
    for index, (before, after) in enumerate(itertools.pairwise(reads), start=1):
        for name in names:
            at = _first_difference(before[name], after[name][: len(before[name])])
            if at is not None:
                raise ChaosError(
                    f"{name}: node {index} does not store what node {index - 1} does: at "
                    f"index {at}, {after[name][at : at + 1]!r} != {before[name][at]!r}"
                )
    return reads[-1]


@contextlib.asynccontextmanager
async def starvation_watchdog(limit_s: float) -> AsyncIterator[None]:
    """Fail, instead of hanging, when the event loop stops running for ``limit_s``.

    A task that loops without ever yielding to the loop starves everything else, timeouts
    included. A heartbeat task notes when the loop last ran; SIGALRM, which Python handles in
    the main thread between two bytecodes, checks it twice a second and raises ChaosError in
    whatever code is running then: the spinning code, whose stack the message shows. Once
    tripped, it raises again after a second, for the next task that spins. Only in the main
    thread (signals cannot be handled elsewhere); elsewhere it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    last_run = time.monotonic()
    limit = limit_s

    async def heartbeat() -> None:
        nonlocal last_run
        while True:
            last_run = time.monotonic()
            await asyncio.sleep(0.1)

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        nonlocal limit
        starved = time.monotonic() - last_run
        if starved < limit:
            return
        limit = 1.0
        stack = traceback.extract_stack(frame)
        # The event loop's own frames say nothing about which task spins.
        ours = [entry for entry in stack if "/asyncio/" not in entry.filename]
        where = "".join(traceback.format_list(ours[-10:]))
        raise ChaosError(
            f"the event loop has not run for {starved:.1f} s: a task loops without awaiting, "
            f"here:\n{where}"
        )

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, 0.5, 0.5)
    beating = asyncio.create_task(heartbeat())
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, previous)
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


async def _cancel_all(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _set_when_done(jobs: Sequence[asyncio.Task[None]], done: asyncio.Event) -> None:
    await asyncio.gather(*jobs)
    done.set()


async def _collect(run: WatcherRun, subscription: sdk.Subscription) -> None:
    async for item in subscription:
        if isinstance(item, sdk.Missed):
            run.missed.append(item)
        else:
            run.received[item.workspace].append(item)


async def _publish(
    run: WorkerRun, worker: sdk.Worker, config: ChaosConfig, rng: random.Random
) -> None:
    count = config.events_per_worker
    # The critical sections spread over the run, a little apart for each worker.
    spacing = count // (config.mutex_sections + 1)
    at = {
        max(1, min(count, (j + 1) * spacing + rng.randint(-spacing // 3, spacing // 3)))
        for j in range(config.mutex_sections)
    }
    sections = 0
    run.doing = "publishing"
    for k in range(1, count + 1):
        value = float(run.index * VALUE_BASE + k)
        await worker.scalar(SERIES, value, step=k)
        run.expected.append(("scalar", value, k))
        run.scalars = k
        if k in at:
            await _critical_section(run, worker, config)
            sections += 1
        await asyncio.sleep(rng.uniform(0, 2 * config.pace_s))
    check(sections == len(at), f"{run.run_id} went through {sections} of {len(at)} sections")
    run.doing = "done publishing"


async def _critical_section(run: WorkerRun, worker: sdk.Worker, config: ChaosConfig) -> None:
    run.doing = "acquiring the mutex"
    try:
        async with worker.mutex() as lease:
            run.doing = f"inside the critical section with fence {lease.fence}"
            section = Section(run.run_id, lease.fence, time.monotonic())
            run.sections.append(section)
            # Both marks are stored before the release is sent: in the stream, they lie
            # between the grant's semaphores event and the release's.
            await _mark(run, worker, "enter", lease.fence, lost=lease.lost, timeout=config.settle_s)
            await asyncio.sleep(config.hold_s)
            section.lost = lease.lost
            await _mark(run, worker, "leave", lease.fence, lost=lease.lost, timeout=config.settle_s)
            section.left = time.monotonic()
            run.doing = f"releasing the mutex with fence {lease.fence}"
    except sdk.PierheadError as exc:
        # A closed worker's error says little; why its connection stopped is in the cause.
        cause = f", because {exc.__cause__!r}" if exc.__cause__ is not None else ""
        raise ChaosError(f"{run.run_id} ({run.workspace}), {run.doing}: {exc!r}{cause}") from exc
    run.doing = "publishing"


async def _mark(
    run: WorkerRun,
    worker: sdk.Worker,
    phase: Literal["enter", "leave"],
    fence: int,
    *,
    lost: bool,
    timeout: float,
) -> None:
    ticket = await worker.custom(MUTEX, {"phase": phase, "fence": fence, "lost": lost})
    run.expected.append(("mutex", phase, fence))
    try:
        await worker.wait_acked(ticket, timeout=timeout)
    except TimeoutError:
        raise ChaosError(
            f"{run.run_id}: its {phase} mark (fence {fence}) was not acknowledged in {timeout} s;"
            f" counters {worker.counters}"
        ) from None


async def _flush(run: WorkerRun, worker: sdk.Worker, timeout: float) -> None:
    run.doing = "flushing"
    try:
        await worker.flush(timeout)
    except TimeoutError:
        raise ChaosError(
            f"{run.run_id} could not flush in {timeout} s: counters {worker.counters}"
        ) from None


async def _chaos(
    nodes: list[BrokerProcess],
    links: list[ClientLinks],
    watcher_links: list[ClientLinks],
    progress: Callable[[], float],
    publishing_done: asyncio.Event,
    config: ChaosConfig,
    rng: random.Random,
    log: ChaosLog,
) -> None:
    """Cut connections at random moments until the workers are done; kill, stop, pause and
    stall at points spread over the workers' progress. One node fault at a time, while the
    cuts go on."""
    stops = config.kills + 1
    term = rng.randrange(stops)
    plan = [
        ((j + 1) / (stops + 1) + rng.uniform(-0.04, 0.04), "term" if j == term else "kill")
        for j in range(stops)
    ]
    plan.append((rng.uniform(0.1, 0.6), "stall"))
    plan += [(rng.uniform(0.05, 0.95), "pause") for _ in range(config.pauses)]
    plan.sort()
    stalled = watcher_links[rng.randrange(len(watcher_links))]
    stalling: asyncio.Task[None] | None = None
    faulting: asyncio.Task[None] | None = None
    try:
        while plan or not publishing_done.is_set():
            await asyncio.sleep(rng.uniform(*config.cut_every_s))
            # Now and then every connection at once, otherwise a few.
            chosen = links if rng.random() < 0.25 else rng.sample(links, rng.randint(1, 5))
            for link in chosen:
                link.cut()
            log.cut_rounds += 1
            while plan and progress() >= plan[0][0]:
                _, action = plan.pop(0)
                if action == "stall":
                    log.actions.append(f"{action}@{progress():.2f}")
                    log.stalls += 1
                    stalling = asyncio.create_task(_stall(stalled, config.stall_s))
                    continue
                # Drawn only in a cluster, so a single node's run keeps its seed's chaos.
                index = rng.randrange(len(nodes)) if config.cluster else 0
                node = nodes[index]
                down_s = (
                    rng.uniform(0, config.down_s) if config.cluster and action != "pause" else 0.0
                )
                which = f":{index}" if config.cluster else ""
                down = f"({down_s:.1f}s)" if down_s else ""
                if faulting is not None:
                    await faulting
                log.actions.append(f"{action}{which}{down}@{progress():.2f}")
                fault = (
                    _pause(node, config.pause_s, log, which)
                    if action == "pause"
                    else _restart(node, index, links, graceful=action == "term", down_s=down_s)
                )
                faulting = asyncio.create_task(fault)
                if action == "pause":
                    log.pauses += 1
                elif action == "term":
                    log.terms += 1
                else:
                    log.kills += 1
        for task in (stalling, faulting):
            if task is not None:
                await task
    finally:
        # On the way out of a failure: what broke is already raised, these only stop.
        unfinished = [task for task in (stalling, faulting) if task is not None]
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
        stalled.stall(False)


async def _pause(node: BrokerProcess, seconds: float, log: ChaosLog, which: str) -> None:
    """SIGSTOP ``node`` for ``seconds``; a pause this runner's own loop made longer (a loaded
    machine) is noted with its real length: past the claim lease, the node rightly stops."""
    started = time.monotonic()
    node.pause()
    try:
        await asyncio.sleep(seconds)
    finally:
        node.resume()
        stopped = time.monotonic() - started
        if stopped > seconds + PAUSE_LATE_S:
            log.actions.append(f"(pause{which} lasted {stopped:.2f}s)")


async def _stall(link: ClientLinks, seconds: float) -> None:
    link.stall(True)
    try:
        await asyncio.sleep(seconds)
    finally:
        link.stall(False)


async def _restart(
    node: BrokerProcess,
    index: int,
    links: list[ClientLinks],
    *,
    graceful: bool,
    down_s: float,
) -> None:
    """SIGTERM (waiting for the drain) or SIGKILL, ``down_s`` without the node, then the node
    again on the same data; every client's proxy to it is pointed at its new port."""
    check_running([node])
    if graceful:
        node.terminate()
        code = await node.wait()
        check(code == 0, f"node {index} drained with exit code {code}:\n{node.describe()}")
    else:
        node.kill()
        await node.wait()
    if down_s:
        await asyncio.sleep(down_s)
    await node.start()
    for link in links:
        link.point(index, node.port)


async def stored_streams(url: str, names: Sequence[str]) -> dict[str, list[schema.EventMsg]]:
    """Every stored event of each workspace, oldest first, read with ``history``."""
    async with sdk.Watcher(url, reconnect_max_s=0.2) as watcher:
        return {
            name: [event async for event in watcher.history(name, after=0, page_size=1000)]
            for name in names
        }


async def _until_caught_up(
    watchers: list[WatcherRun],
    collectors: list[asyncio.Task[None]],
    snapshot: dict[str, list[schema.EventMsg]],
    timeout: float,
) -> None:
    targets = {name: events[-1].offset if events else 0 for name, events in snapshot.items()}
    deadline = time.monotonic() + timeout
    while True:
        for following, collector in zip(watchers, collectors, strict=True):
            if collector.done() and not collector.cancelled():
                error = collector.exception()
                check(False, f"watcher {following.pattern!r} stopped following: {error!r}")
        lagging = {
            run.pattern: {
                name: f"{run.last_offset(name)}/{target}"
                for name, target in targets.items()
                if fnmatch.fnmatchcase(name, run.pattern) and run.last_offset(name) < target
            }
            for run in watchers
        }
        lagging = {pattern: behind for pattern, behind in lagging.items() if behind}
        if not lagging:
            return
        check(
            time.monotonic() < deadline,
            f"watchers did not catch up with the store in {timeout} s: {lagging}",
        )
        await asyncio.sleep(0.05)


# The checks ------------------------------------------------------------------------------------


def event_key(payload: schema.Payload) -> EventKey | None:
    if isinstance(payload, schema.Scalar) and payload.name == SERIES:
        return ("scalar", payload.value, payload.step)
    if isinstance(payload, schema.Custom) and payload.name == MUTEX:
        data = payload.data if isinstance(payload.data, dict) else {}
        return ("mutex", data.get("phase"), data.get("fence"))
    return None


def check_workers(workers: list[WorkerRun], stored: dict[str, list[schema.EventMsg]]) -> None:
    """Each worker's events are stored once each, under seqs 1..n, in the order queued."""
    for name, events in stored.items():
        offsets = [event.offset for event in events]
        check(
            offsets == list(range(1, len(events) + 1)),
            f"{name}: the stored offsets are not 1..{len(events)}: {_holes(offsets)}",
        )
    by_run: dict[str, list[schema.EventMsg]] = defaultdict(list)
    for events in stored.values():
        for event in events:
            if event.run_id is not None:
                by_run[event.run_id].append(event)
    known = {run.run_id for run in workers}
    check(set(by_run) <= known, f"events of unknown runs: {set(by_run) - known}")
    for run in workers:
        events = by_run.get(run.run_id, [])
        elsewhere = {event.workspace for event in events} - {run.workspace}
        check(not elsewhere, f"{run.run_id}: events stored in {elsewhere}")
        seqs = [event.seq for event in events]
        want = list(range(1, len(run.expected) + 1))
        if seqs != want:
            counts = Counter(seqs)
            doubled = sorted(s for s, n in counts.items() if s is not None and n > 1)
            missing = sorted(set(want) - set(counts))
            raise ChaosError(
                f"{run.run_id}: stored seqs are not 1..{len(want)}: {len(seqs)} stored, "
                f"doubled {doubled[:20]}, missing {missing[:20]}, "
                f"out of order at {_first_difference(seqs, want)}"
            )
        keys = [event_key(event.payload) for event in events]
        index = _first_difference(keys, run.expected)
        check(
            index is None,
            f"{run.run_id}: stored event {index} is not the one queued: "
            f"{keys[index] if index is not None and index < len(keys) else None} != "
            f"{run.expected[index] if index is not None and index < len(run.expected) else None}",
        )


def check_watchers(
    watchers: list[WatcherRun],
    snapshot: dict[str, list[schema.EventMsg]],
    stored: dict[str, list[schema.EventMsg]],
) -> None:
    """Each watcher got each matching workspace's stored stream, exactly, from offset 1."""
    for run in watchers:
        check(not run.missed, f"watcher {run.pattern!r} was told of missed events: {run.missed}")
        matching = {name for name in stored if fnmatch.fnmatchcase(name, run.pattern)}
        extra = set(run.received) - matching
        check(not extra, f"watcher {run.pattern!r} received events of {extra}")
        for name in sorted(matching):
            received = run.received.get(name, [])
            offsets = [event.offset for event in received]
            check(
                offsets == list(range(1, len(received) + 1)),
                f"watcher {run.pattern!r}, {name}: offsets received are not 1..{len(received)}:"
                f" {_holes(offsets)}",
            )
            check(
                len(snapshot[name]) <= len(received) <= len(stored[name]),
                f"watcher {run.pattern!r}, {name}: received {len(received)} events, "
                f"{len(snapshot[name])} were stored when the workers were done and "
                f"{len(stored[name])} at the end",
            )
            index = _first_difference(received, stored[name][: len(received)])
            check(
                index is None,
                f"watcher {run.pattern!r}, {name}: event at offset "
                f"{received[index].offset if index is not None else 0} differs from the stored "
                f"one: {received[index] if index is not None else None!r} != "
                f"{stored[name][index] if index is not None else None!r}",
            )
        # Last, so that a stream received wrong is told first: this one only misinforms.
        assert run.subscription is not None
        check(
            run.subscription.recovered,
            f"watcher {run.pattern!r} received exactly the stored streams, yet its subscription's"
            f" recovered turned false: a resume was answered as not exact",
        )


def check_mutex(workers: list[WorkerRun], stored: dict[str, list[schema.EventMsg]]) -> int:
    """From the stored stream of each workspace, and from the workers' own clocks: fences never
    go backwards, each critical section has a new fence held by the worker inside, and no two
    critical sections overlap. Returns how many critical sections there were."""
    total = 0
    for name, events in stored.items():
        sections = _stream_sections(name, events)
        total += len(sections)
        runs = [run for run in workers if run.workspace == name]
        # What the workers saw agrees with the stream: the same sections with the same fences.
        seen = sorted((s.fence, s.run_id) for run in runs for s in run.sections)
        check(
            seen == sorted(sections),
            f"{name}: the critical sections the workers went through {seen} are not the ones "
            f"stored {sorted(sections)}",
        )
        lost = [(s.run_id, s.fence) for run in runs for s in run.sections if s.lost]
        check(not lost, f"{name}: leases lost inside a critical section: {lost}")
        # In time, on this process's clock: one section ends before the next one starts.
        timeline = sorted(
            (s for run in runs for s in run.sections), key=lambda section: section.entered
        )
        for before, after in itertools.pairwise(timeline):
            check(
                before.left <= after.entered,
                f"{name}: {after.run_id} entered (fence {after.fence}) "
                f"{before.left - after.entered:.3f} s before {before.run_id} left "
                f"(fence {before.fence})",
            )
    return total


def _stream_sections(name: str, events: list[schema.EventMsg]) -> list[tuple[int, str]]:
    """Walk one workspace's stream: the (fence, run) of each critical section, checked."""
    holder: str | None = None
    fence = 0
    inside: tuple[str, int] | None = None
    sections: list[tuple[int, str]] = []
    for event in events:
        payload = event.payload
        where = f"{name} offset {event.offset}"
        if isinstance(payload, schema.SemaphoresChange):
            check(
                payload.fence >= fence,
                f"{where}: the fence went back from {fence} to {payload.fence}",
            )
            fence = payload.fence
            holder = payload.holder if payload.has_mutex else None
            check(
                inside is None or holder == inside[0],
                f"{where}: the mutex went to {holder} (fence {fence}) while {inside} was inside",
            )
            continue
        key = event_key(payload)
        if key is None or key[0] != "mutex":
            continue
        _, phase, marked = key
        run_id = event.run_id
        check(
            holder == run_id and marked == fence,
            f"{where}: {run_id} {phase} with fence {marked} while the stream says the mutex is "
            f"held by {holder} with fence {fence}",
        )
        assert isinstance(payload, schema.Custom)
        assert isinstance(payload.data, dict)
        check(not payload.data.get("lost"), f"{where}: {run_id} marked its lease lost")
        assert run_id is not None
        assert isinstance(marked, int)
        if phase == "enter":
            check(inside is None, f"{where}: {run_id} entered (fence {marked}) while {inside} was")
            check(
                not sections or marked > sections[-1][0],
                f"{where}: {run_id} entered with fence {marked}, not above the previous "
                f"section's {sections[-1][0] if sections else 0}",
            )
            inside = (run_id, marked)
            sections.append((marked, run_id))
        else:
            check(
                inside == (run_id, marked),
                f"{where}: {run_id} left (fence {marked}) but {inside} was inside",
            )
            inside = None
    check(inside is None, f"{name}: {inside} never left its critical section")
    return sections


def _first_difference(a: Sequence[object], b: Sequence[object]) -> int | None:
    for index, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return index
    return None if len(a) == len(b) else min(len(a), len(b))


def _holes(offsets: list[int]) -> str:
    """A short description of what is wrong with a run of offsets that should be 1, 2, ..."""
    problems: list[str] = []
    previous = 0
    for offset in offsets:
        if offset != previous + 1:
            problems.append(f"{previous}->{offset}")
        previous = offset
    return ", ".join(problems[:20]) or "none"


def _report(
    config: ChaosConfig,
    seconds: float,
    chaos: ChaosLog,
    cut: int,
    claims: int,
    stored: dict[str, list[schema.EventMsg]],
    watchers: list[WatcherRun],
    sections: int,
) -> ChaosReport:
    everything = [event for events in stored.values() for event in events]
    return ChaosReport(
        config=config,
        seconds=seconds,
        chaos=chaos,
        connections_cut=cut,
        claims=claims,
        stored={name: len(events) for name, events in stored.items()},
        published=sum(event.run_id is not None for event in everything),
        sections=sections,
        semaphores_events=sum(isinstance(e.payload, schema.SemaphoresChange) for e in everything),
        presence_events=sum(isinstance(e.payload, schema.Presence) for e in everything),
        delivered={run.pattern: sum(map(len, run.received.values())) for run in watchers},
    )
