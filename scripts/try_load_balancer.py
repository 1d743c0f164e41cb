"""Several pierhead nodes on one Redis behind a load balancer, tried for real on loopback.

    python scripts/try_load_balancer.py                      # HAProxy, then nginx
    python scripts/try_load_balancer.py --balancer haproxy --nodes 2
    nox -s loadbalancer                                      # installs HAProxy and nginx as root

For each balancer: starts a Redis server (tests/redis_server.py finds one), ``--nodes``
``pierhead serve --store redis://...`` processes on free loopback ports, and the balancer with
the configuration in examples/deploy/ (``haproxy.cfg``, ``nginx.conf``), of which only the
addresses are changed. Then, every client going through the balancer only:

1. the dashboard's page and ``/healthz`` answer plain HTTP GETs;
2. a browser-like websocket (``Origin`` the balancer's own) is admitted, a foreign ``Origin``
   is refused: the balancer passes ``Host`` on as the broker's checks need;
3. a watcher subscribes, a worker publishes ``--events`` events; a second watcher catches the
   worker and releases it;
4. the node that writes the workspace is SIGKILLed; the worker publishes as many again, and
   a catch reaches it on its new node;
5. the first watcher ends with every event exactly once, in offset order, gapless, and a new
   watcher reading from the start gets the very same stream.

It prints what it saw as it goes and a summary, stops everything, and exits 0 when every check
held, 1 when one did not, 2 when a balancer binary is missing (saying what to install).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.redis_server, when run as a file from anywhere

import websockets  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402
from websockets.typing import Origin  # noqa: E402

import sdk  # noqa: E402
from broker._broker_process import BrokerProcess  # noqa: E402
from schema import EventMsg  # noqa: E402
from tests.redis_server import NoRedisServerError, RedisServer, running_redis  # noqa: E402
from tests.support import free_port  # noqa: E402

EXAMPLES: Final = ROOT / "examples" / "deploy"
FRONT_TEMPLATE: Final = "127.0.0.1:8765"
NODE_TEMPLATE_PORT: Final = 8781
"""The examples' first node; their other nodes' lines (8782, 8783) are replaced by copies."""
TEMPLATE_NODES: Final = 3
WORKSPACE: Final = "lb-check"
RUN_ID: Final = "lb-check-run"
START_TIMEOUT_S: Final = 20.0
FAILOVER_TIMEOUT_S: Final = 60.0
"""The most a failover may take: the dead node's claim lease (10 s), the SDK's backoff (up to
10 s) and the balancer's noticing, with room to spare."""
STEP_TIMEOUT_S: Final = 30.0
INSTALL: Final = {
    "haproxy": "apt-get install haproxy (Debian, Ubuntu); dnf or brew install haproxy",
    "nginx": "apt-get install nginx (Debian, Ubuntu); dnf or brew install nginx",
}


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


@dataclass
class Report:
    balancer: str
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def note(self, text: str) -> None:
        say(f"  [{time.monotonic() - self.started:6.2f} s] {text}")

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append((name, ok, detail))
        self.note(f"{'PASS' if ok else 'FAIL'} {name}" + (f": {detail}" if detail else ""))
        return ok

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(ok for _, ok, _ in self.checks)


# The balancer -----------------------------------------------------------------------------


def render(template: str, front: int, nodes: Sequence[int]) -> str:
    """The example configuration with the front port and one server line per node."""
    lines: list[str] = []
    for line in template.splitlines():
        if any(f"127.0.0.1:{NODE_TEMPLATE_PORT + k}" in line for k in range(1, TEMPLATE_NODES)):
            continue
        if f"127.0.0.1:{NODE_TEMPLATE_PORT}" in line:
            for number, port in enumerate(nodes, start=1):
                lines.append(
                    line.replace(f"127.0.0.1:{NODE_TEMPLATE_PORT}", f"127.0.0.1:{port}").replace(
                        "node1", f"node{number}"
                    )
                )
            continue
        lines.append(line.replace(FRONT_TEMPLATE, f"127.0.0.1:{front}"))
    return "\n".join(lines) + "\n"


def balancer_command(kind: str, binary: str, directory: Path, config: Path) -> list[str]:
    if kind == "haproxy":
        return [binary, "-db", "-f", str(config)]
    # -e: errors before the configuration is read go to stderr too, not to a file that needs root.
    return [binary, "-e", "stderr", "-p", f"{directory}/", "-c", str(config), "-g", "daemon off;"]


@contextlib.asynccontextmanager
async def running_balancer(
    kind: str, binary: str, directory: Path, front: int, nodes: Sequence[int]
) -> AsyncIterator[Path]:
    """The balancer on ``front`` in front of ``nodes``; yields its log file."""
    template = (EXAMPLES / ("haproxy.cfg" if kind == "haproxy" else "nginx.conf")).read_text()
    config = directory / ("haproxy.cfg" if kind == "haproxy" else "nginx.conf")
    config.write_text(render(template, front, nodes))
    (directory / "temp").mkdir(exist_ok=True)
    log_path = directory / f"{kind}.log"
    with log_path.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            *balancer_command(kind, binary, directory, config),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
        )
    try:
        await wait_http(f"http://127.0.0.1:{front}/healthz", process, log_path)
        yield log_path
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(10):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()


async def wait_http(url: str, process: asyncio.subprocess.Process, log_path: Path) -> None:
    """Wait until ``url`` answers 200, failing early if ``process`` exits."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.returncode is not None:
            raise RuntimeError(f"the balancer exited with {process.returncode}:\n{tail(log_path)}")
        status, _ = await asyncio.to_thread(http_get, url)
        if status == 200:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer 200 in {START_TIMEOUT_S:g} s")
        # The balancer signals nothing when it is ready: ask again shortly.
        await asyncio.sleep(0.1)


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """(status, body) of a plain GET; status 0 when nothing answered."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return int(answer.status), bytes(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (OSError, urllib.error.URLError):
        return 0, b""


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


# The nodes --------------------------------------------------------------------------------


def node_options(redis: RedisServer, port: int) -> list[str]:
    """The flags each node runs with (besides --data and --log-format), as the docs show."""
    return [
        "--port",
        str(port),
        "--store",
        redis.url,
        "--advertise-url",
        f"ws://127.0.0.1:{port}",
    ]


def opened_on(nodes: Sequence[BrokerProcess], **match: str) -> list[int]:
    """The numbers of the nodes whose ``session_opened`` lines match ``match``."""
    return [
        number
        for number, node in enumerate(nodes, start=1)
        if any(
            all(record.get(key) == value for key, value in match.items())
            for record in node.events("session_opened")
        )
    ]


# The check --------------------------------------------------------------------------------


class Collector:
    """A subscription read into a list in the background."""

    def __init__(self, subscription: sdk.Subscription) -> None:
        self.events: list[EventMsg] = []
        self.missed: list[sdk.Missed] = []
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._read(subscription))

    async def _read(self, subscription: sdk.Subscription) -> None:
        async for item in subscription:
            if isinstance(item, sdk.Missed):
                self.missed.append(item)
            else:
                self.events.append(item)
            self._changed.set()

    async def until(self, done: Callable[[list[EventMsg]], bool], timeout: float) -> bool:
        """Whether ``done(events)`` came true within ``timeout``."""
        try:
            async with asyncio.timeout(timeout):
                while not done(self.events):
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def mine(events: Sequence[EventMsg]) -> list[int]:
    return [event.seq or 0 for event in events if event.run_id == RUN_ID]


def stream_faults(events: Sequence[EventMsg], expected_seqs: int) -> str:
    """What is wrong with a delivered stream ("" when nothing is)."""
    offsets = [event.offset for event in events]
    faults = []
    if not offsets or offsets != list(range(offsets[0], offsets[0] + len(offsets))):
        faults.append(f"offsets not gapless in order: {offsets[:5]}...{offsets[-5:]}")
    if mine(events) != list(range(1, expected_seqs + 1)):
        seqs = mine(events)
        faults.append(
            f"worker seqs {len(seqs)} (distinct {len(set(seqs))}), not 1..{expected_seqs}"
        )
    return "; ".join(faults)


async def publish(worker: sdk.Worker, first: int, count: int) -> None:
    for number in range(first, first + count):
        await worker.event(f"event {number}")


async def browser_origin(front: int, origin: str) -> str:
    """How a websocket upgrade carrying ``Origin: origin`` fares through the balancer."""
    try:
        async with connect(f"ws://127.0.0.1:{front}", origin=Origin(origin), open_timeout=5):
            return "admitted"
    except websockets.InvalidStatus as exc:
        return f"refused {exc.response.status_code}"


async def try_balancer(kind: str, binary: str, nodes_count: int, events: int) -> Report:
    report = Report(kind)
    say(f"\n== {kind} ({binary}) in front of {nodes_count} nodes on one Redis")
    directory = Path(tempfile.mkdtemp(prefix=f"ph-lb-{kind}-"))
    nodes: list[BrokerProcess] = []
    try:
        with running_redis() as redis:
            report.note(f"redis {redis.binary.name} on {redis.url}")
            ports = [free_port() for _ in range(nodes_count)]
            for number, port in enumerate(ports, start=1):
                node = BrokerProcess(directory / f"node{number}", *node_options(redis, port))
                nodes.append(node)
                await node.start()
                report.note(f"node{number}: pierhead serve {' '.join(node_options(redis, port))}")
            front = free_port()
            async with running_balancer(kind, binary, directory, front, ports) as balancer_log:
                report.note(f"{kind} on 127.0.0.1:{front} ({directory / kind}.log)")
                await check_through(report, front, nodes, events)
                say(f"  {kind}'s log, last lines:")
                for line in tail(balancer_log, 12).splitlines():
                    say(f"    {line}")
    except (RuntimeError, OSError, TimeoutError, NoRedisServerError, sdk.PierheadError) as exc:
        report.check("the try ran to its end", False, f"{type(exc).__name__}: {exc}")
    finally:
        for node in nodes:
            await node.close()
        shutil.rmtree(directory, ignore_errors=True)
    return report


async def check_through(
    report: Report, front: int, nodes: list[BrokerProcess], events: int
) -> None:
    url = f"ws://127.0.0.1:{front}"
    status, body = await asyncio.to_thread(
        http_get, f"http://127.0.0.1:{front}/", {"Accept": "text/html"}
    )
    report.check("dashboard page through the balancer", status == 200 and b"<" in body, f"{status}")
    own = await browser_origin(front, f"http://127.0.0.1:{front}")
    report.check("browser websocket from the balancer's own origin", own == "admitted", own)
    foreign = await browser_origin(front, "http://evil.example")
    report.check("browser websocket from a foreign origin", foreign == "refused 403", foreign)

    async with contextlib.AsyncExitStack() as stack:
        # One watcher per node, as the balancer spreads them: one of them is on the node killed.
        watchers = [
            await stack.enter_async_context(sdk.Watcher(url, client=f"lb-watcher{number}"))
            for number in range(1, len(nodes) + 1)
        ]
        operator = await stack.enter_async_context(sdk.Watcher(url, client="lb-operator"))
        worker = await stack.enter_async_context(sdk.Worker(url, WORKSPACE, run_id=RUN_ID))
        collectors = [
            Collector(await watcher.subscribe(WORKSPACE, since="earliest")) for watcher in watchers
        ]
        for collector in collectors:
            stack.push_async_callback(collector.stop)

        async def all_have(count: int) -> bool:
            waits = [
                c.until(lambda got: len(mine(got)) >= count, STEP_TIMEOUT_S) for c in collectors
            ]
            return all(await asyncio.gather(*waits))

        await publish(worker, 1, events)
        await worker.flush(timeout=STEP_TIMEOUT_S)
        seen = await all_have(events)
        report.check(f"{len(collectors)} watchers got the first {events} events", seen)
        await catch_and_release(report, operator, worker, "before the kill")

        writer = opened_on(nodes, role="worker", run_id=RUN_ID)
        places = {
            f"lb-watcher{n}": opened_on(nodes, role="watcher", client=f"lb-watcher{n}")
            for n in range(1, len(nodes) + 1)
        }
        report.note(f"worker's session on node{writer}; watchers on {places}")
        if len(writer) != 1:
            report.check("one node holds the worker", False, f"{writer}")
            return
        victim = nodes[writer[0] - 1]
        victim.kill()
        await victim.wait()
        killed = time.monotonic()
        report.note(f"SIGKILLed node{writer[0]}, the workspace's writer")

        await publish(worker, events + 1, events)
        await worker.flush(timeout=FAILOVER_TIMEOUT_S)
        report.note(f"worker's {events} new events acked {time.monotonic() - killed:.1f} s later")
        now = opened_on(nodes, role="worker", run_id=RUN_ID)
        moved = sorted(set(now) - {writer[0]})
        report.check("worker went on on another node", bool(moved), f"node{moved}")
        seen = await all_have(2 * events)
        report.note(f"every watcher has them {time.monotonic() - killed:.1f} s after the kill")
        for number, collector in enumerate(collectors, start=1):
            faults = stream_faults(collector.events, 2 * events)
            report.check(
                f"lb-watcher{number}'s stream: every event once, in order, gapless",
                seen and not faults and not collector.missed,
                faults or f"{len(collector.events)} events from offset 1",
            )
        refused = {
            f"node{n}": len(node.events("relay_refused"))
            for n, node in enumerate(nodes, start=1)
            if node is not victim
        }
        report.note(f"worker connections the live nodes refused (1013) meanwhile: {refused}")
        await catch_and_release(report, operator, worker, "after the kill")
        expected = list(collectors[0].events)
    await check_fresh_reader(report, url, expected)


async def catch_and_release(
    report: Report, operator: sdk.Watcher, worker: sdk.Worker, when: str
) -> None:
    try:
        await operator.catch(WORKSPACE, f"load balancer check {when}")
        async with asyncio.timeout(STEP_TIMEOUT_S):
            await worker.wait_caught()
        await operator.release(WORKSPACE)
        async with asyncio.timeout(STEP_TIMEOUT_S):
            await worker.wait_released()
    except (TimeoutError, sdk.PierheadError) as exc:
        report.check(f"catch and release reach the worker {when}", False, repr(exc))
        return
    report.check(f"catch and release reach the worker {when}", True)


async def check_fresh_reader(report: Report, url: str, expected: Sequence[EventMsg]) -> None:
    async with sdk.Watcher(url, client="lb-reader") as reader:
        collector = Collector(await reader.subscribe(WORKSPACE, since="earliest"))
        last = expected[-1].offset if expected else 0
        await collector.until(lambda got: bool(got) and got[-1].offset >= last, STEP_TIMEOUT_S)
        await collector.stop()
    same = [(e.offset, e.run_id, e.seq) for e in collector.events[: len(expected)]] == [
        (e.offset, e.run_id, e.seq) for e in expected
    ]
    report.check(
        "a new watcher from the start gets the same stream",
        same,
        f"{len(collector.events)} events",
    )


def find_binaries(wanted: Sequence[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    missing = []
    for kind in wanted:
        # Debian puts both in /usr/sbin, which is not on every user's PATH.
        path = shutil.which(kind) or shutil.which(
            kind, path=os.pathsep.join(("/usr/sbin", "/sbin"))
        )
        if path is None:
            missing.append(kind)
        else:
            found[kind] = path
    for kind in missing:
        say(f"try_load_balancer: {kind} is not installed; install it: {INSTALL[kind]}")
    if missing:
        raise SystemExit(2)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--balancer", choices=["haproxy", "nginx", "both"], default="both", help="(default: both)"
    )
    parser.add_argument("--nodes", type=int, default=3, choices=range(2, 10), metavar="N")
    parser.add_argument("--events", type=int, default=500, help="published before and after")
    args = parser.parse_args(argv)
    if args.events < 1:
        parser.error("--events must be at least 1")
    wanted = ["haproxy", "nginx"] if args.balancer == "both" else [args.balancer]
    binaries = find_binaries(wanted)
    reports = [
        asyncio.run(try_balancer(kind, binaries[kind], args.nodes, args.events)) for kind in wanted
    ]
    say("\n== summary")
    for report in reports:
        failed = [name for name, ok, _ in report.checks if not ok]
        say(f"{report.balancer}: {'ok' if report.ok else 'FAILED: ' + ', '.join(failed)}")
    say(json.dumps({report.balancer: report.ok for report in reports}))
    return 0 if all(report.ok for report in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
