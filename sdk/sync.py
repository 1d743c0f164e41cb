"""Blocking clients for code without an event loop (training loops, Ansible callbacks).

Each client runs its async counterpart on a private event loop in a daemon thread; every
method hands its work to that loop and waits for the answer, so the clients are safe to use
from any number of threads. They have the async clients' methods, properties and parameters,
and where an async method waits with no bound of its own, its blocking twin takes a
``timeout`` as well (PierheadTimeoutError when it runs out; the wait on the loop is cancelled
with it). After ``close()``, methods raise ClosedError; properties keep their last values. At
interpreter exit, clients still open are closed with their bounded flush.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import datetime
import os
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, TypeVar

import schema
from schema import (
    Cursor,
    EventMsg,
    PayloadKind,
    StartPosition,
    StatsReport,
    WorkerPayload,
    WorkspaceDetails,
    WorkspaceSemaphores,
    WorkspaceState,
)

from . import _watcher, _worker
from ._connection import BrokerUrls, ConnectionState
from ._errors import ClosedError, PierheadTimeoutError
from ._lease import Lease
from ._outbox import OutboxPolicy, Ticket
from ._watcher import SUBSCRIPTION_BUFFER, Overflow
from ._worker import Unreachable

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

_CLIENT = "pierhead-sdk/0.1"
_CLOSE_MARGIN_S = 10.0
"""Beyond the flush, what closing the socket and stopping the tasks may take."""
_open_clients: weakref.WeakSet[_Threaded] = weakref.WeakSet()


class _Threaded:
    """An event loop in a daemon thread, and a way to run coroutines on it from any thread."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="pierhead")
        self._thread.start()
        self._closed = False
        self._waiting: set[concurrent.futures.Future[Any]] = set()
        self._lock = threading.Lock()
        _open_clients.add(self)

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coroutine`` on the loop and wait for it, at most ``timeout`` if given."""
        if self._closed:
            coroutine.close()
            raise ClosedError(f"this {type(self).__name__} is closed")
        return self._submit(coroutine, timeout)

    def _submit(self, coroutine: Coroutine[Any, Any, T], timeout: float | None) -> T:
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError("a pierhead sync client cannot be called from its own loop")
        if timeout is not None:
            coroutine = _within(coroutine, timeout)
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        with self._lock:
            self._waiting.add(future)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            if self._closed:
                raise ClosedError(f"this {type(self).__name__} was closed") from None
            raise
        finally:
            with self._lock:
                self._waiting.discard(future)

    def _call(self, function: Callable[[], T]) -> T:
        """``function()`` on the loop, or here once the client is closed (the loop is
        stopped, or stopping, so nothing else touches what it reads)."""
        if self._closed:
            return function()

        async def call() -> T:
            return function()

        return self._submit(call(), None)

    def _iterate(self, iterator: AsyncIterator[T]) -> Iterator[T]:
        while True:
            try:
                yield self._run(_next(iterator))
            except StopAsyncIteration:
                return

    def _shut_down(self, closing: Coroutine[Any, Any, None] | None, bound: float) -> None:
        if self._closed:
            if closing is not None:
                closing.close()
            return
        self._closed = True
        if closing is not None:
            with contextlib.suppress(Exception):
                self._submit(closing, bound)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=_CLOSE_MARGIN_S)
        # Calls still waiting on the stopped loop would wait forever: end them.
        with self._lock:
            waiting = list(self._waiting)
        for future in waiting:
            future.cancel()
        if not self._thread.is_alive():
            self._loop.close()

    def close(self) -> None:
        raise NotImplementedError


class Worker(_Threaded):
    """The blocking twin of :class:`sdk.Worker`; see it for what each method does."""

    def __init__(
        self,
        url: BrokerUrls,
        workspace: str,
        *,
        token: str | None = None,
        details: WorkspaceDetails | None = None,
        run_id: str | None = None,
        client: str = _CLIENT,
        codec: Literal["json", "msgpack"] = "json",
        outbox_max_events: int = 100_000,
        outbox_max_bytes: int = 64 * 1024 * 1024,
        outbox_policy: OutboxPolicy = "block",
        max_in_flight: int = 16,
        reconnect_initial_s: float = 0.1,
        reconnect_max_s: float = 10.0,
        close_timeout_s: float = 10.0,
        spool: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()

        async def build() -> _worker.Worker:
            return _worker.Worker(
                url,
                workspace,
                token=token,
                details=details,
                run_id=run_id,
                client=client,
                codec=codec,
                outbox_max_events=outbox_max_events,
                outbox_max_bytes=outbox_max_bytes,
                outbox_policy=outbox_policy,
                max_in_flight=max_in_flight,
                reconnect_initial_s=reconnect_initial_s,
                reconnect_max_s=reconnect_max_s,
                close_timeout_s=close_timeout_s,
                spool=spool,
            )

        try:
            self._worker = self._run(build())
        except BaseException:
            self._shut_down(None, 0)
            raise
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

    @property
    def workspace(self) -> str:
        return self._worker.workspace

    @property
    def run_id(self) -> str:
        return self._worker.run_id

    @property
    def close_timeout_s(self) -> float:
        return self._worker.close_timeout_s

    def start(self) -> None:
        """Start connecting in the background; a second call does nothing."""
        if not self._started:
            self._run(self._worker.start())
            self._started = True

    def close(self, timeout: float | None = None) -> None:
        """Flush for at most ``timeout`` (default ``close_timeout_s``), then disconnect."""
        flush = self._worker.close_timeout_s if timeout is None else timeout
        self._shut_down(self._worker.close(timeout), flush + _CLOSE_MARGIN_S)

    @property
    def url(self) -> str:
        return self._call(lambda: self._worker.url)

    @property
    def state(self) -> ConnectionState:
        return self._call(lambda: self._worker.state)

    def state_changes(self) -> Iterator[ConnectionState]:
        return self._iterate(self._worker.state_changes())

    def connected(self, timeout: float | None = None) -> None:
        self._run(self._worker.connected(), timeout)

    @property
    def counters(self) -> dict[str, int]:
        return self._call(lambda: self._worker.counters)

    def publish_nowait(
        self,
        payload: WorkerPayload,
        *,
        series: str | None = None,
        create_time: datetime.datetime | None = None,
    ) -> Ticket:
        return self._call_checked(
            lambda: self._worker.publish_nowait(payload, series=series, create_time=create_time)
        )

    def publish(
        self,
        payload: WorkerPayload,
        *,
        series: str | None = None,
        create_time: datetime.datetime | None = None,
    ) -> Ticket:
        return self._run(self._worker.publish(payload, series=series, create_time=create_time))

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

    def hardware(
        self,
        *,
        cpu_percent: float | None = None,
        memory_used_bytes: int | None = None,
        memory_total_bytes: int | None = None,
        gpus: Sequence[schema.GpuStats] = (),
        extra: Mapping[str, float] | None = None,
    ) -> Ticket:
        return self._run(
            self._worker.hardware(
                cpu_percent=cpu_percent,
                memory_used_bytes=memory_used_bytes,
                memory_total_bytes=memory_total_bytes,
                gpus=gpus,
                extra=extra,
            )
        )

    def custom(self, name: str, data: Any) -> Ticket:
        return self._run(self._worker.custom(name, data))

    def queue_event(self, message: str, severity: schema.Severity = "info") -> Ticket:
        return self._call_checked(lambda: self._worker.queue_event(message, severity))

    def post_event(
        self, message: str, severity: schema.Severity = "info", *, timeout: float | None = None
    ) -> None:
        self._run(self._worker.post_event(message, severity, timeout=timeout))

    def wait_acked(self, ticket: Ticket, *, timeout: float | None = None) -> None:
        self._run(self._worker.wait_acked(ticket, timeout=timeout))

    def flush(self, timeout: float | None = None) -> None:
        self._run(self._worker.flush(timeout))

    def post_details(self, details: WorkspaceDetails) -> None:
        self._run(self._worker.post_details(details))

    def post_catch(self, reason: str | None = None) -> None:
        self._run(self._worker.post_catch(reason))

    @property
    def caught(self) -> bool:
        return self._call(lambda: self._worker.caught)

    @property
    def semaphores(self) -> WorkspaceSemaphores:
        return self._call(lambda: self._worker.semaphores)

    def get_semaphores(self, timeout: float | None = None) -> WorkspaceSemaphores:
        return self._run(self._worker.get_semaphores(), timeout)

    def wait_caught(self, timeout: float | None = None) -> None:
        self._run(self._worker.wait_caught(), timeout)

    def wait_released(self, timeout: float | None = None) -> None:
        self._run(self._worker.wait_released(), timeout)

    def checkpoint(self, unreachable: Unreachable = "wait", timeout: float | None = None) -> None:
        self._run(self._worker.checkpoint(unreachable), timeout)

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

    def action(self, name: str | None = None, *, description: str = "") -> Callable[[F], F]:
        return self._worker.action(name, description=description)

    def _call_checked(self, function: Callable[[], T]) -> T:
        if self._closed:
            raise ClosedError("this Worker is closed")
        return self._call(function)


class Subscription:
    """The blocking twin of :class:`sdk.Subscription`: iterate it for deliveries.

    The subscription exists from the ``subscribe`` call on, so nothing published after it is
    missed. Each ``next`` waits at most the ``timeout`` given to ``subscribe``
    (PierheadTimeoutError, a TimeoutError); the subscription stays usable after one.
    """

    def __init__(
        self, client: Watcher, subscription: _watcher.Subscription, timeout: float | None
    ) -> None:
        self._client = client
        self._subscription = subscription
        self._timeout = timeout

    def __iter__(self) -> Subscription:
        return self

    def __next__(self) -> _watcher.Delivery:
        try:
            return self._client._run(self._subscription.__anext__(), self._timeout)
        except StopAsyncIteration:
            raise StopIteration from None

    @property
    def pattern(self) -> str:
        return self._subscription.pattern

    @property
    def kinds(self) -> list[PayloadKind] | None:
        return self._subscription.kinds

    @property
    def overflow(self) -> Overflow:
        return self._subscription.overflow

    @property
    def recovered(self) -> bool:
        return self._subscription.recovered

    def close(self) -> None:
        self._client._run(self._subscription.close())


class Watcher(_Threaded):
    """The blocking twin of :class:`sdk.Watcher`; it starts connecting when created."""

    def __init__(
        self,
        url: BrokerUrls,
        *,
        token: str | None = None,
        client: str = _CLIENT,
        codec: Literal["json", "msgpack"] = "json",
        reconnect_initial_s: float = 0.1,
        reconnect_max_s: float = 10.0,
        reconnect: bool = True,
        subscription_buffer: int = SUBSCRIPTION_BUFFER,
        request_timeout_s: float = 30.0,
    ) -> None:
        super().__init__()

        async def build() -> _watcher.Watcher:
            watcher = _watcher.Watcher(
                url,
                token=token,
                client=client,
                codec=codec,
                reconnect_initial_s=reconnect_initial_s,
                reconnect_max_s=reconnect_max_s,
                reconnect=reconnect,
                subscription_buffer=subscription_buffer,
                request_timeout_s=request_timeout_s,
            )
            await watcher.start()
            return watcher

        try:
            self._watcher = self._run(build())
        except BaseException:
            self._shut_down(None, 0)
            raise

    def __enter__(self) -> Watcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def request_timeout_s(self) -> float:
        return self._watcher.request_timeout_s

    def start(self) -> None:
        """Nothing to do: a sync watcher starts when created (kept for the async API's sake)."""
        if self._closed:
            raise ClosedError("this Watcher is closed")

    def close(self) -> None:
        self._shut_down(self._watcher.close(), self.request_timeout_s + _CLOSE_MARGIN_S)

    @property
    def url(self) -> str:
        return self._call(lambda: self._watcher.url)

    @property
    def connection_state(self) -> ConnectionState:
        return self._call(lambda: self._watcher.connection_state)

    def state_changes(self) -> Iterator[ConnectionState]:
        return self._iterate(self._watcher.state_changes())

    def connected(self, timeout: float | None = None) -> None:
        self._run(self._watcher.connected(), timeout)

    def subscribe(
        self,
        pattern: str,
        *,
        since: StartPosition | dict[str, Cursor] = "latest",
        kinds: list[PayloadKind] | None = None,
        overflow: Overflow = "refetch",
        timeout: float | None = None,
    ) -> Subscription:
        """Subscribe now; iterate the result for deliveries, each ``next`` waiting at most
        ``timeout``."""
        subscription = self._run(
            self._watcher.subscribe(pattern, since=since, kinds=kinds, overflow=overflow)
        )
        return Subscription(self, subscription, timeout)

    @property
    def state(self) -> dict[str, WorkspaceState]:
        return self._call(lambda: dict(self._watcher.state))

    def workspaces(self, pattern: str = "*") -> list[WorkspaceState]:
        return self._run(self._watcher.workspaces(pattern))

    def history(
        self,
        workspace: str,
        *,
        before: int | None = None,
        after: int | None = None,
        page_size: int = 500,
        kinds: list[PayloadKind] | None = None,
        series: str | None = None,
        run_id: str | None = None,
    ) -> Iterator[EventMsg]:
        """Stored events, one at a time, fetched a page at a time as you iterate."""
        return self._iterate(
            self._watcher.history(
                workspace,
                before=before,
                after=after,
                page_size=page_size,
                kinds=kinds,
                series=series,
                run_id=run_id,
            )
        )

    def catch(self, workspace: str, reason: str | None = None) -> None:
        self._run(self._watcher.catch(workspace, reason))

    def release(self, workspace: str) -> None:
        self._run(self._watcher.release(workspace))

    def break_mutex(self, workspace: str) -> None:
        self._run(self._watcher.break_mutex(workspace))

    def delete_workspace(self, workspace: str, *, force: bool = False) -> None:
        self._run(self._watcher.delete_workspace(workspace, force=force))

    def call(
        self,
        workspace: str,
        run_id: str,
        action: str,
        args: Mapping[str, Any] | None = None,
        *,
        timeout: float = 30.0,
    ) -> Any:
        return self._run(self._watcher.call(workspace, run_id, action, args, timeout=timeout))

    def stats(self) -> StatsReport:
        return self._run(self._watcher.stats())


async def _next(iterator: AsyncIterator[T]) -> T:
    return await anext(iterator)


async def _within(coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
    deadline = asyncio.timeout(timeout)
    try:
        async with deadline:
            return await coroutine
    except TimeoutError:
        if deadline.expired():
            raise PierheadTimeoutError(f"gave up waiting after {timeout:g} s") from None
        raise


@atexit.register
def _close_open_clients() -> None:
    for client in list(_open_clients):
        client.close()
