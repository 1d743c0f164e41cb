"""Blocking clients for code without an event loop (training loops, Ansible callbacks).

Each client runs its async counterpart on a private event loop in a daemon thread; every
method hands its work to that loop and waits for the answer, so the clients are safe to use
from any number of threads. At interpreter exit, clients still open are closed with a bounded
flush.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Literal, TypeVar

import schema
from schema import Cursor, EventMsg, PayloadKind, StartPosition, WorkerPayload, WorkspaceState

from . import _watcher, _worker
from ._lease import Lease
from ._outbox import Ticket

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

_EXIT_TIMEOUT_S = 5.0
_open_clients: weakref.WeakSet[_Threaded] = weakref.WeakSet()


class _Threaded:
    """An event loop in a daemon thread, and a way to run coroutines on it from any thread."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="pierhead")
        self._thread.start()
        self._closed = False
        _open_clients.add(self)

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        if threading.current_thread() is self._thread:
            raise RuntimeError("a pierhead sync client cannot be called from its own loop")
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout)

    def _call(self, function: Callable[[], T]) -> T:
        async def call() -> T:
            return function()

        return self._run(call())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._run(self._aclose(), timeout=_EXIT_TIMEOUT_S * 2)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=_EXIT_TIMEOUT_S)
        if not self._thread.is_alive():
            self._loop.close()

    async def _aclose(self) -> None:
        raise NotImplementedError


class Worker(_Threaded):
    """The blocking twin of :class:`sdk.Worker`; see it for what each method does."""

    def __init__(self, url: str, workspace: str, **options: Any) -> None:
        super().__init__()

        async def build() -> _worker.Worker:
            return _worker.Worker(url, workspace, **options)

        self._worker = self._run(build())
        self.run_id = self._worker.run_id
        self._started = False

    def __enter__(self) -> Worker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._run(self._worker.start())

    async def _aclose(self) -> None:
        await self._worker.close(timeout=_EXIT_TIMEOUT_S)

    def action(self, name: str | None = None, *, description: str = "") -> Callable[[F], F]:
        return self._worker.action(name, description=description)

    def publish(self, payload: WorkerPayload, *, series: str | None = None) -> Ticket:
        return self._run(self._worker.publish(payload, series=series))

    def event(self, message: str, severity: schema.Severity = "info") -> Ticket:
        return self._run(self._worker.event(message, severity))

    def log(
        self, message: str, level: schema.LogLevel = "info", logger: str | None = None
    ) -> Ticket:
        return self._run(self._worker.log(message, level, logger))

    def scalar(self, name: str, value: float, step: int | None = None) -> Ticket:
        return self._run(self._worker.scalar(name, value, step))

    def progress(
        self, name: str, current: float, total: float | None = None, rate: float | None = None
    ) -> Ticket:
        return self._run(self._worker.progress(name, current, total, rate))

    def status(self, key: str, value: str) -> Ticket:
        return self._run(self._worker.status(key, value))

    def hyperparameters(self, values: Mapping[str, Any]) -> Ticket:
        return self._run(self._worker.hyperparameters(values))

    def custom(self, name: str, data: Any) -> Ticket:
        return self._run(self._worker.custom(name, data))

    def queue_event(self, message: str, severity: schema.Severity = "info") -> Ticket:
        return self._call(lambda: self._worker.queue_event(message, severity))

    def post_event(
        self, message: str, severity: schema.Severity = "info", *, timeout: float | None = None
    ) -> None:
        self._run(self._worker.post_event(message, severity, timeout=timeout))

    def post_details(self, details: schema.WorkspaceDetails) -> None:
        self._run(self._worker.post_details(details))

    def post_catch(self, reason: str | None = None) -> None:
        self._run(self._worker.post_catch(reason))

    def flush(self, timeout: float | None = None) -> None:
        self._run(self._worker.flush(timeout))

    def connected(self, timeout: float | None = None) -> None:
        self._run(self._worker.connected(), timeout)

    def checkpoint(self, unreachable: Literal["wait", "proceed"] = "wait") -> None:
        self._run(self._worker.checkpoint(unreachable))

    def wait_caught(self, timeout: float | None = None) -> None:
        self._run(self._worker.wait_caught(), timeout)

    def wait_released(self) -> None:
        self._run(self._worker.wait_released())

    @property
    def caught(self) -> bool:
        return self._worker.caught

    @property
    def counters(self) -> dict[str, int]:
        return self._call(lambda: self._worker.counters)

    def get_semaphores(self) -> schema.WorkspaceSemaphores:
        return self._run(self._worker.get_semaphores())

    @contextlib.contextmanager
    def mutex(self, *, wait: bool = True, timeout: float | None = None) -> Iterator[Lease]:
        manager = self._worker.mutex(wait=wait, timeout=timeout)
        lease = self._run(manager.__aenter__())
        try:
            yield lease
        except BaseException as exc:
            self._run(manager.__aexit__(type(exc), exc, exc.__traceback__))
            raise
        else:
            self._run(manager.__aexit__(None, None, None))

    def unmutex(self) -> None:
        self._run(self._worker.unmutex())


class Watcher(_Threaded):
    """The blocking twin of :class:`sdk.Watcher`."""

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__()

        async def build() -> _watcher.Watcher:
            watcher = _watcher.Watcher(url, **options)
            await watcher.start()
            return watcher

        self._watcher = self._run(build())

    def __enter__(self) -> Watcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def _aclose(self) -> None:
        await self._watcher.close()

    def subscribe(
        self,
        pattern: str,
        *,
        since: StartPosition | dict[str, Cursor] = "latest",
        kinds: list[PayloadKind] | None = None,
        timeout: float | None = None,
    ) -> Iterator[_watcher.Delivery]:
        """Iterate deliveries; each ``next`` waits at most ``timeout`` (TimeoutError)."""
        subscription = self._run(self._watcher.subscribe(pattern, since=since, kinds=kinds))
        iterator = aiter(subscription)
        while True:
            yield self._run(_next(iterator), timeout)

    @property
    def state(self) -> dict[str, WorkspaceState]:
        return self._call(lambda: dict(self._watcher.state))

    def workspaces(self, pattern: str = "*") -> list[WorkspaceState]:
        return self._run(self._watcher.workspaces(pattern))

    def history(self, workspace: str, **query: Any) -> list[EventMsg]:
        async def collect() -> list[EventMsg]:
            return [event async for event in self._watcher.history(workspace, **query)]

        return self._run(collect())

    def catch(self, workspace: str, reason: str | None = None) -> None:
        self._run(self._watcher.catch(workspace, reason))

    def release(self, workspace: str) -> None:
        self._run(self._watcher.release(workspace))

    def break_mutex(self, workspace: str) -> None:
        self._run(self._watcher.break_mutex(workspace))

    def delete_workspace(self, workspace: str, *, force: bool = False) -> None:
        self._run(self._watcher.delete_workspace(workspace, force=force))

    def call(self, workspace: str, run_id: str, action: str, **args: Any) -> Any:
        return self._run(self._watcher.call(workspace, run_id, action, **args))


async def _next(iterator: Any) -> Any:
    result: Awaitable[Any] = anext(iterator)
    return await result


@atexit.register
def _close_open_clients() -> None:
    for client in list(_open_clients):
        client.close()
