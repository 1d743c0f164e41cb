"""``pierhead watch``: a live console of workspaces, NDJSON events, or one snapshot as text.

``run_watch`` connects once without retrying (an unreachable broker is exit code 3 and one line
on stderr), then follows ``pattern`` with a reconnecting watcher: a broker restart shows
"reconnecting…" and the stream goes on where it was, with no event lost or repeated. The view
itself is ``_console_view`` (no I/O); this module owns the sockets, the terminal and the keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import shutil
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any, TextIO

import msgspec
from rich.console import Console
from rich.live import Live

from schema import Cursor, SchemaError, Severity, StartPosition
from sdk import (
    AuthenticationError,
    BrokerRefusedError,
    ClosedError,
    ConnectionLostError,
    ConnectionState,
    Delivery,
    ForbiddenError,
    Missed,
    Subscription,
    Watcher,
)

from ._console_view import (
    CATCH_REASON,
    Command,
    ConsoleModel,
    decode_keys,
    render_rich,
    render_text,
)
from ._exit import EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE
from ._reach import UnreachableError, connected_watcher

CLIENT = "pierhead-watch"
FRAME_INTERVAL_S = 0.05
"""The screen is drawn at most this often; and at least once a second, for the ages."""

_JSON = msgspec.json.Encoder()
_sdk_log = logging.getLogger("pierhead.sdk")

Outcome = tuple[int, str | None]
"""An exit code and the line to print on stderr once the terminal is restored."""


async def run_watch(
    url: str | Sequence[str],
    token: str | None,
    pattern: str,
    *,
    json_output: bool,
    once: bool = False,
) -> int:
    """Watch ``pattern`` at ``url``; returns the exit code (0 also after Ctrl-C or ``q``)."""
    with _interrupt_returns() as interrupted:
        try:
            code, message = await _watch(url, token, pattern, json_output=json_output, once=once)
        except asyncio.CancelledError:
            if not interrupted():
                raise
            code, message = EXIT_OK, None
        if message:
            _write_line(sys.stderr, message)
        return code


async def _watch(
    url: str | Sequence[str], token: str | None, pattern: str, *, json_output: bool, once: bool
) -> Outcome:
    try:
        async with connected_watcher(url, token, client=CLIENT) as probe:
            if once:
                return await _print_once(probe, pattern, json_output=json_output)
    except UnreachableError as exc:
        return EXIT_UNREACHABLE, f"pierhead: {exc}"
    except (AuthenticationError, ForbiddenError, BrokerRefusedError) as exc:
        return EXIT_REFUSED, f"pierhead: refused: {exc}"
    if json_output:
        return await follow_lines(url, token, pattern, "latest", _print_json, client=CLIENT)
    async with Watcher(url, token=token, client=CLIENT) as watcher:
        subscription = await _subscribe(watcher, pattern, "latest")
        if not isinstance(subscription, Subscription):
            return subscription
        return await _Session(watcher, subscription).follow_screen(ConsoleModel(pattern))


async def follow_lines(
    url: str | Sequence[str],
    token: str | None,
    pattern: str,
    since: StartPosition | dict[str, Cursor],
    on_item: Callable[[Delivery], None],
    *,
    client: str,
) -> Outcome:
    """Follow ``pattern`` from ``since`` with a reconnecting watcher, each delivery to
    ``on_item``, until the watcher stops for good; a lost broker is told on stderr, and the
    stream goes on where it was once it is back."""
    async with Watcher(url, token=token, client=client) as watcher:
        subscription = await _subscribe(watcher, pattern, since)
        if not isinstance(subscription, Subscription):
            return subscription
        return await _Session(watcher, subscription).follow_lines(on_item)


async def _subscribe(
    watcher: Watcher, pattern: str, since: StartPosition | dict[str, Cursor]
) -> Subscription | Outcome:
    try:
        return await watcher.subscribe(pattern, since=since)
    except SchemaError as exc:
        return EXIT_USAGE, f"pierhead: invalid pattern {pattern!r}: {exc}"
    except BrokerRefusedError as exc:
        return EXIT_REFUSED, f"pierhead: refused: {exc}"
    except ClosedError as exc:
        return _closed(exc)


def _print_json(item: Delivery) -> None:
    if isinstance(item, Missed):
        _write_line(
            sys.stderr,
            f"pierhead: {item.workspace}: events {item.from_offset} to "
            f"{item.to_offset} are gone (retention)",
        )
        return
    _write_line(sys.stdout, _JSON.encode(item).decode())


def _closed(exc: ClosedError) -> Outcome:
    """The reconnecting watcher stopped for good (a revoked token, a refused role)."""
    cause = exc.__cause__ or exc
    code = (
        EXIT_REFUSED
        if isinstance(cause, AuthenticationError | ForbiddenError)
        else EXIT_UNREACHABLE
    )
    return code, f"pierhead: the broker closed the connection: {cause}"


async def _print_once(watcher: Watcher, pattern: str, *, json_output: bool) -> Outcome:
    try:
        await watcher.subscribe(pattern, since="latest")
    except SchemaError as exc:
        return EXIT_USAGE, f"pierhead: invalid pattern {pattern!r}: {exc}"
    except BrokerRefusedError as exc:
        return EXIT_REFUSED, f"pierhead: refused: {exc}"
    except ClosedError:
        return EXIT_UNREACHABLE, f"pierhead: lost the broker at {watcher.url}"
    if json_output:
        # The snapshot as NDJSON, a workspace state a line, as ``pierhead ls --json`` prints it.
        for name in sorted(watcher.state):
            sys.stdout.write(_JSON.encode(watcher.state[name]).decode() + "\n")
        sys.stdout.flush()
        return EXIT_OK, None
    model = ConsoleModel(pattern)
    model.update_states(watcher.state)
    model.set_connection(watcher.connection_state)
    width = shutil.get_terminal_size((120, 24)).columns
    sys.stdout.write(render_text(model, width, _now(), tail_lines=0))
    sys.stdout.flush()
    return EXIT_OK, None


class _Session:
    """A subscription being followed, until a key, a failure or the caller ends it."""

    def __init__(self, watcher: Watcher, subscription: Subscription) -> None:
        self.watcher = watcher
        self.subscription = subscription
        self.outcome: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self.wake = asyncio.Event()
        """Set whenever the screen has something new to show."""
        self._tasks: set[asyncio.Task[None]] = set()

    def finish(self, code: int, message: str | None = None) -> None:
        if not self.outcome.done():
            self.outcome.set_result((code, message))
        self.wake.set()

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # The two tasks every mode runs ---------------------------------------------------------

    async def pump(self, on_item: Callable[[Delivery], None]) -> None:
        try:
            async for item in self.subscription:
                on_item(item)
        except BrokerRefusedError as exc:
            self.finish(EXIT_REFUSED, f"pierhead: refused: {exc}")
        except ClosedError:
            self.finish(EXIT_OK)
        except BrokenPipeError:
            _silence_stdout()
            self.finish(EXIT_OK)

    async def monitor(self, on_state: Callable[[ConnectionState], None]) -> None:
        async for state in self.watcher.state_changes():
            on_state(state)
            if state is ConnectionState.CLOSED:
                break
        try:
            await self.watcher.connected()
        except ClosedError as exc:
            self.finish(*_closed(exc))

    # Lines (--json, tail) ------------------------------------------------------------------

    async def follow_lines(self, on_item: Callable[[Delivery], None]) -> Outcome:
        lost = False

        def on_state(state: ConnectionState) -> None:
            nonlocal lost
            if state is ConnectionState.RECONNECTING and not lost:
                lost = True
                _write_line(sys.stderr, "pierhead: connection lost, reconnecting…")
            elif state is ConnectionState.CONNECTED and lost:
                lost = False
                _write_line(sys.stderr, "pierhead: connected again")

        self.spawn(self.pump(on_item))
        self.spawn(self.monitor(on_state))
        try:
            return await self.outcome
        finally:
            await self.stop()

    # The screen -----------------------------------------------------------------------------

    async def follow_screen(self, model: ConsoleModel) -> Outcome:
        watcher = self.watcher
        model.update_states(watcher.state)
        model.set_connection(watcher.connection_state)

        def on_item(item: Delivery) -> None:
            model.deliver(item)
            self.wake.set()

        def on_state(state: ConnectionState) -> None:
            model.set_connection(state)
            self.wake.set()

        def on_command(command: Command) -> None:
            if command.action == "quit":
                self.finish(EXIT_OK)
            elif command.workspace is not None:
                self.spawn(self._operate(model, command.action, command.workspace))

        self.spawn(self.pump(on_item))
        self.spawn(self.monitor(on_state))
        console = Console()
        try:
            with (
                _keys(model, on_command, self.wake),
                _sdk_log_to(model, self.wake),
                Live(
                    console=console,
                    screen=True,
                    auto_refresh=False,
                    redirect_stdout=False,
                    redirect_stderr=False,
                ) as live,
            ):
                while not self.outcome.done():
                    self.wake.clear()
                    model.update_states(watcher.state)
                    live.update(render_rich(model, _now(), console), refresh=True)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(1.0):
                            await self.wake.wait()
                    await asyncio.sleep(FRAME_INTERVAL_S)
            return self.outcome.result()
        finally:
            await self.stop()

    async def _operate(self, model: ConsoleModel, action: str, workspace: str) -> None:
        model.notice = (f"{action} {workspace}…", "info")
        self.wake.set()
        try:
            if action == "catch":
                await self.watcher.catch(workspace, CATCH_REASON)
                model.notice = (f"caught {workspace}", "success")
            else:
                await self.watcher.release(workspace)
                model.notice = (f"released {workspace}", "success")
        except BrokerRefusedError as exc:
            model.notice = (f"{action} {workspace} refused: {exc}", "error")
        except ConnectionLostError:
            model.notice = (f"{action} {workspace}: the connection dropped, try again", "error")
        except ClosedError:
            return
        self.wake.set()


@contextlib.contextmanager
def _keys(
    model: ConsoleModel, on_command: Callable[[Command], None], wake: asyncio.Event
) -> Iterator[None]:
    """Read keys from stdin in cbreak mode while the screen is up (only when it is a TTY)."""
    stdin = sys.stdin
    try:
        fd = stdin.fileno()
        interactive = stdin.isatty()
    except (AttributeError, ValueError, OSError):
        interactive = False
    if not interactive:
        yield
        return
    import termios
    import tty

    loop = asyncio.get_running_loop()

    def readable() -> None:
        try:
            data = os.read(fd, 1024)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            return
        for key in decode_keys(data):
            command = model.press(key)
            if command is not None:
                on_command(command)
        wake.set()

    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd, termios.TCSANOW)
        loop.add_reader(fd, readable)
        try:
            yield
        finally:
            loop.remove_reader(fd)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


class _NoticeHandler(logging.Handler):
    def __init__(self, model: ConsoleModel, wake: asyncio.Event) -> None:
        super().__init__(logging.WARNING)
        self.model = model
        self.wake = wake

    def emit(self, record: logging.LogRecord) -> None:
        severity: Severity = "error" if record.levelno >= logging.ERROR else "warning"
        self.model.notice = (self.format(record), severity)
        self.wake.set()


@contextlib.contextmanager
def _sdk_log_to(model: ConsoleModel, wake: asyncio.Event) -> Iterator[None]:
    """While the screen is up, the SDK's warnings go under the lanes, not across the screen."""
    handler = _NoticeHandler(model, wake)
    propagate = _sdk_log.propagate
    _sdk_log.addHandler(handler)
    _sdk_log.propagate = False
    try:
        yield
    finally:
        _sdk_log.removeHandler(handler)
        _sdk_log.propagate = propagate


@contextlib.contextmanager
def _interrupt_returns() -> Iterator[Callable[[], bool]]:
    """Ctrl-C cancels the current task; the callable says whether that is what happened."""
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    interrupted = False

    def on_sigint() -> None:
        nonlocal interrupted
        interrupted = True
        if task is not None:
            task.cancel()

    try:
        previous = signal.getsignal(signal.SIGINT)
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    except (ValueError, RuntimeError, NotImplementedError, AttributeError):
        yield lambda: False
        return
    try:
        yield lambda: interrupted
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        signal.signal(
            signal.SIGINT, previous if previous is not None else signal.default_int_handler
        )
        if interrupted and task is not None:
            task.uncancel()


def _write_line(stream: TextIO, line: str) -> None:
    stream.write(line + "\n")
    stream.flush()


def _silence_stdout() -> None:
    """After a broken pipe (``pierhead watch --json | head``), later writes go nowhere."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
