"""The websocket server: handshake, health check, sessions, and draining on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import secrets
import signal
import socket
import sqlite3
import ssl
import urllib.parse
from collections.abc import Sequence
from dataclasses import replace
from http import HTTPStatus
from importlib.metadata import version
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import msgspec
import structlog
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, NegotiationError
from websockets.http11 import Request, Response
from websockets.typing import Data, Subprotocol

from schema import (
    PROTOCOL_VERSION,
    SUBPROTOCOLS,
    CloseCode,
    Codec,
    Draining,
    ErrorCode,
    ErrorReply,
    Hello,
    Limits,
    SchemaError,
    Welcome,
    codec_for,
)

from ._access import Grant
from ._auth import Door, FailureThrottle, Refused, admit, bearer
from ._broker import Broker
from ._cluster import RedisCoordinator
from ._config import BrokerConfig
from ._dashboard import static_root
from ._dashboard._assets import DashboardAssets, HttpAnswer
from ._heartbeat import Heartbeat
from ._limits import CappedCounts
from ._redis_store import (
    RedisStore,
    StoreConflictError,
    StoreUnavailableError,
    StoreUnusableError,
)
from ._redis_tokens import RedisTokenStore
from ._redis_url import StoreUrlError, parse_redis_url
from ._relay import WRITER_UNREACHABLE, relay
from ._session import Session, SessionContext
from ._sqlite_store import (
    DATABASE_NAME,
    DataDirectoryInUseError,
    SQLiteStore,
    StoreVersionError,
    lock_directory,
)
from ._store import Store
from ._tokens import TOKENS_FILE, SqliteTokenStore, TokenStore
from ._watcher_session import WatcherSession
from ._worker_session import WorkerSession
from ._workspace import WorkspaceClosedError
from ._writer import StoreFailedError

log = structlog.get_logger("pierhead.server")

NODE_FILE = "node"
"""In the data directory: the node's name among the nodes sharing a Redis store."""
STORE_UNREACHABLE: Final = 1013
"""Close code (try again later) of a session whose token cannot be checked: the tokens are in a
Redis that does not answer now."""
_CLOSE_REASON_BYTES: Final = 123
"""RFC 6455: a close frame's payload is at most 125 bytes, two of them the code."""

YOUNG_COLLECTION_THRESHOLD = 10_000
"""Allocations between two collections of the youngest generation (Python's default: 700).

Every session holds about a hundred objects the collector tracks, for as long as it lives. At
the default, a crowd of sessions arriving at once (every client of a restarted broker) makes
the collector walk the whole heap again and again: close to half of the broker's time went
there while thousands of sessions opened. At this threshold it is under a fifth, for a few MiB
more of short-lived garbage."""


class InsecureBindError(RuntimeError):
    """A non-loopback address was asked for while authentication is off."""


class StartError(RuntimeError):
    """The broker cannot start: its port or its data directory is taken, or its store cannot be
    opened. The message is one line for an operator."""


class BrokerFailedError(RuntimeError):
    """The broker stopped because something it cannot serve without failed (the store)."""


class BrokerServer:
    """A running broker: ``async with BrokerServer(config) as server: ...`` serves until exit,
    then drains."""

    def __init__(self, config: BrokerConfig, *, store: Store | None = None) -> None:
        if config.auth == "none" and not config.loopback_only and not config.insecure:
            raise InsecureBindError(
                f"refusing to listen on {config.host} without authentication; "
                "bind to 127.0.0.1, or pass --insecure to accept anyone who can connect"
            )
        self.config = config
        self.server_name = f"pierhead/{version('pierhead')}"
        self._store = store
        self.broker: Broker | None = None
        self._sessions: set[Session] = set()
        """Every live session, for the drain and for revocations."""
        self._server: Server | None = None
        self._writer_task: asyncio.Task[None] | None = None
        self._retention_task: asyncio.Task[None] | None = None
        self._notify_task: asyncio.Task[None] | None = None
        self._revocation_task: asyncio.Task[None] | None = None
        self._claims_task: asyncio.Task[None] | None = None
        self._data_lock: int | None = None
        self._relays: set[ServerConnection] = set()
        """Worker connections relayed to the node that writes their workspace."""
        self._tokens: TokenStore | None = None
        self._door = Door(
            tls=config.tls_cert is not None,
            loopback=config.loopback_only,
            allowed_origins=config.allowed_origins,
            allowed_hosts=(*config.allowed_hosts, *_own_hosts(config)),
        )
        self._dashboard = DashboardAssets.from_folder(static_root()) if config.dashboard else None
        self._throttle = FailureThrottle(config.auth_failures_per_minute)
        self._per_address = CappedCounts[str](config.max_connections_per_address)
        self._per_token = CappedCounts[str](config.max_connections_per_token)
        # Read now: a missing or unreadable certificate is a mistake in the settings, to be
        # reported before anything is opened.
        self._tls = _tls_context(config)
        self._drained = asyncio.Event()
        self._stop = asyncio.Event()
        self._failure: BaseException | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "the server is not running"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        scheme = "wss" if self.config.tls_cert else "ws"
        return f"{scheme}://{self.config.host}:{self.port}"

    def _own_url(self) -> str:
        """Where other nodes reach this one when ``advertise_url`` is not given."""
        host = self.config.host
        if host in ("0.0.0.0", "::", ""):
            host = socket.gethostname()
        elif ":" in host:
            host = f"[{host}]"
        scheme = "wss" if self.config.tls_cert else "ws"
        return f"{scheme}://{host}:{self.port}"

    @property
    def dashboard_url(self) -> str | None:
        """Where a browser finds the dashboard; None with ``dashboard=False``."""
        if not self.config.dashboard:
            return None
        scheme = "https" if self.config.tls_cert else "http"
        return f"{scheme}://{self.config.host}:{self.port}/"

    async def __aenter__(self) -> BrokerServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.drain()

    async def start(self) -> None:
        if self._store is None:
            self._store, self._data_lock = _open_store(self.config)
        store: Store = self._store
        try:
            await self._start(store)
        except BaseException:
            # Whatever was opened is closed again, the data directory's lock with it: a failed
            # start (a port in use) leaves nothing behind that a second attempt would trip on.
            await self._close_tasks_and_store()
            raise

    async def _start(self, store: Store) -> None:
        config = self.config
        cluster = None
        if isinstance(store, RedisStore):
            cluster = RedisCoordinator(
                store,
                store.target,
                node=store.node,
                check_s=config.cluster_check_s,
                probe_s=config.cluster_probe_s,
                adopt_after_s=config.mutex_grace_s,
            )
        broker = Broker(config, store, server=self.server_name, cluster=cluster)
        self.broker = broker
        try:
            broker.restore()
            if cluster is not None:
                async with asyncio.timeout(config.hello_timeout_s):
                    await cluster.wait_listening()
                await cluster.mirror_stored()
        except StoreUnavailableError as exc:
            raise StartError(f"cannot load the workspaces: {exc}") from exc
        except TimeoutError as exc:
            raise StartError("cannot subscribe to the other nodes' messages in Redis") from exc
        self._writer_task = asyncio.create_task(self._watch(broker.run_writer()))
        self._retention_task = asyncio.create_task(self._watch(broker.run_retention()))
        self._notify_task = asyncio.create_task(self._watch(broker.run_notifier()))
        if isinstance(store, RedisStore):
            self._claims_task = asyncio.create_task(self._watch(self._renew_claims(store)))
        if config.auth == "token":
            self._tokens = await self._token_store(store)
            self._revocation_task = asyncio.create_task(self._watch(self._enforce_revocations()))
        try:
            self._server = await self._listen()
        except OSError as exc:
            # asyncio's own message repeats the address; the system's says just what is wrong.
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise StartError(f"cannot listen on {config.host}:{config.port}: {reason}") from exc
        if cluster is not None:
            cluster.advertise(config.advertise_url or self._own_url())
        log.info(
            "listening",
            host=config.host,
            port=self.port,
            data=str(config.data_dir),
            store=_store_name(store),
            auth=config.auth,
        )
        if config.auth == "none":
            log.warning("auth_off", detail="every session gets every role; loopback only")

    async def _listen(self) -> Server:
        config = self.config
        return await serve(
            self._handle,
            config.host,
            config.port,
            ssl=self._tls,
            subprotocols=[Subprotocol(name) for name in SUBPROTOCOLS],
            select_subprotocol=_select_subprotocol,
            process_request=self._process_request,
            compression=None,
            max_size=config.max_frame_bytes,
            # The broker's own heartbeat (``_beat``): websockets' keepalive declares a peer
            # dead only after an interval, a timeout and a closing handshake's timeout.
            ping_interval=None,
            server_header=self.server_name,
            backlog=config.listen_backlog,
        )

    async def serve_until_signalled(self) -> None:
        """Start, serve until SIGTERM or SIGINT, then drain.

        Raises ``BrokerFailedError`` (after draining) if the broker stopped serving by itself,
        on a store failure: a supervisor sees a non-zero exit and restarts it.

        This is the broker owning its process (``pierhead serve``), so it also sets the
        process's garbage collector for a heap made mostly of long-lived sessions.
        """
        gc.set_threshold(YOUNG_COLLECTION_THRESHOLD)
        loop = asyncio.get_running_loop()
        signalled = asyncio.Event()

        def on_signal() -> None:
            signalled.set()
            self._stop.set()

        # Handlers first: whoever sees ``listening`` may signal at once and must get a drain.
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal)
        try:
            await self.start()
            await self._stop.wait()
            if signalled.is_set():
                log.info("signal_received")
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
        await self.drain()
        if self._failure is not None:
            raise BrokerFailedError(str(self._failure) or repr(self._failure)) from self._failure

    async def drain(self) -> None:
        """Stop accepting, tell every session, make everything durable, close with 1001."""
        if self._drained.is_set() or self._server is None or self.broker is None:
            return
        self._drained.set()
        broker, server, config = self.broker, self._server, self.config
        server.close(close_connections=False)
        sessions = list(self._sessions)
        log.info("draining", sessions=len(sessions))
        for session in sessions:
            session.send(Draining(reconnect_after_s=config.drain_reconnect_after_s))
        for relayed in list(self._relays):
            broker.spawn(relayed.close(CloseCode.GOING_AWAY, "broker draining"))
        try:
            async with asyncio.timeout(config.drain_timeout_s):
                await broker.writer.flush()
                for session in sessions:
                    session.close_after_flush(CloseCode.GOING_AWAY, "broker draining")
                await server.wait_closed()
        except TimeoutError:
            log.warning("drain_timeout", remaining=len(self._sessions))
            for connection in server.connections:
                connection.transport.abort()
        await self._close_tasks_and_store()
        log.info("stopped")

    async def _close_tasks_and_store(self) -> None:
        """End the background tasks, then close the stores: the last step of a drain, and all
        that undoing a failed start needs."""
        background = (
            self._retention_task,
            self._notify_task,
            self._revocation_task,
            self._claims_task,
        )
        for task in background:
            if task is not None:
                task.cancel()
        broker = self.broker
        if broker is not None:
            if broker.notifier is not None:
                # Else the next start makes them again from the events (their marks are stored).
                broker.notifier.queue_waiting()
            broker.writer.stop()
        if self._store is not None:
            # A commit still waiting for an unreachable server gives up: the drain is over.
            self._store.interrupt()
        tasks = [
            task
            for task in (
                self._writer_task,
                self._retention_task,
                self._notify_task,
                self._revocation_task,
                self._claims_task,
            )
            if task is not None
        ]
        await asyncio.gather(*tasks, return_exceptions=True)
        if broker is not None:
            await broker.cancel_tasks()
            # No thread may still be inside the store when it closes.
            await broker.threads.wait_idle()
        if isinstance(self._store, RedisStore) and self._store.reachable:
            # Not when it is known not to answer: the stop would wait for it, for nothing.
            self._release_claims(self._store)
        if self._store is not None:
            self._store.close()
        if self._data_lock is not None:
            os.close(self._data_lock)
            self._data_lock = None
        if self._tokens is not None:
            self._tokens.close()

    @staticmethod
    def _release_claims(store: RedisStore) -> None:
        try:
            released = store.release_claims()
        except StoreUnavailableError as exc:
            # They lapse after the claim lease instead.
            log.warning("claims_not_released", error=str(exc))
        else:
            log.info("claims_released", workspaces=released)

    async def _token_store(self, store: Store) -> TokenStore:
        """The data directory's tokens on one node; on Redis, the cluster's, with those of
        the data directory taken over (a node that kept them there before)."""
        data_dir = self.config.data_dir
        if not isinstance(store, RedisStore):
            return SqliteTokenStore(data_dir)
        tokens = RedisTokenStore(
            store.client,
            prefix=store.prefix,
            waitaof=store.traits.waitaof,
            replicas=1 if store.durability == "replica" else 0,
        )
        if (data_dir / TOKENS_FILE).exists():
            own = SqliteTokenStore(data_dir)
            try:
                renamed = await asyncio.to_thread(tokens.adopt, own)
            except StoreUnavailableError as exc:
                raise StartError(f"cannot take the tokens of {data_dir} to Redis: {exc}") from exc
            finally:
                own.close()
            for old, new in renamed.items():
                log.warning("token_renamed", name=old, now=new, reason="name taken in Redis")
        return tokens

    async def _renew_claims(self, store: RedisStore) -> None:
        """Keep this node's claim on the workspaces it writes; losing one (this node was
        paused past the claim while another node took the workspace over) stops the node, as
        a store failure does: it may not write that workspace any more."""
        assert self.broker is not None
        while True:
            await asyncio.sleep(store.renew_interval_s)
            try:
                lost = await self.broker.threads.run(store.renew)
            except StoreUnavailableError as exc:
                log.warning("store_claims_not_renewed", error=str(exc))
                continue
            if lost:
                raise StoreConflictError(
                    f"another node took over workspaces {', '.join(map(repr, lost))}"
                )

    async def _watch(self, job: Any) -> None:
        try:
            await job
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The writer failing means nothing more can be made durable: stop serving rather
            # than acknowledge events that would be lost, and stop the process (see
            # ``serve_until_signalled``) so that whatever supervises it starts it again.
            if _store_said_why(exc):
                log.critical("broker_task_failed", error=str(exc))
            else:
                log.critical("broker_task_failed", exc_info=True)
            if self._failure is None:
                self._failure = exc
            if self._server is not None:
                self._server.close(close_connections=False)
            self._stop.set()

    async def _handle(self, connection: ServerConnection) -> None:
        beat = asyncio.create_task(self._beat(connection))
        try:
            await self._handle_beating(connection, beat)
        finally:
            beat.cancel()

    async def _beat(self, connection: ServerConnection) -> Heartbeat | None:
        """Ping the peer; abort the connection once it has sent no pong for the heartbeat
        timeout. Returns the heartbeat if it gave the peer up for dead."""
        loop, config = asyncio.get_running_loop(), self.config
        heartbeat = Heartbeat(config.heartbeat_s, config.heartbeat_timeout_s, loop.time())

        def on_pong(pong: asyncio.Future[float]) -> None:
            if not pong.cancelled() and pong.exception() is None:
                heartbeat.heard(loop.time())

        while True:
            await asyncio.sleep(max(0.0, heartbeat.next_due() - loop.time()))
            while (due := heartbeat.poll(loop.time())) is not None:
                if due == "dead":
                    # No closing handshake: a peer that answers no ping would not answer that
                    # either, and waiting for it is what made detection take twice as long.
                    connection.transport.abort()
                    return heartbeat
                try:
                    # A peer that does not read can fill the socket: sending may wait too.
                    async with asyncio.timeout_at(heartbeat.deadline):
                        pong = await connection.ping()
                except TimeoutError:
                    continue
                except ConnectionClosed:
                    return None
                asyncio.ensure_future(pong).add_done_callback(on_pong)

    async def _handle_beating(
        self, connection: ServerConnection, beat: asyncio.Task[Heartbeat | None]
    ) -> None:
        assert self.broker is not None
        _broker, config = self.broker, self.config
        codec = codec_for(connection.subprotocol)
        try:
            async with asyncio.timeout(config.hello_timeout_s):
                data = await connection.recv()
        except TimeoutError:
            await connection.close(CloseCode.PROTOCOL_ERROR, "no hello in time")
            return
        except ConnectionClosed:
            return
        try:
            hello = codec.decode_client_frame(data)
            if not isinstance(hello, Hello):
                raise SchemaError(ErrorCode.BAD_FRAME, "the first frame must be hello")
        except SchemaError as exc:
            await _refuse(connection, codec, exc.code, str(exc), CloseCode.PROTOCOL_ERROR)
            return
        grant = await self._admit(connection, hello)
        if isinstance(grant, Refused):
            await _refuse(connection, codec, grant.code, grant.message, grant.close)
            return
        address, token = _peer(connection), grant.token_id or ""
        if not self._per_address.acquire(address):
            message = "too many connections from this address"
            await _refuse(
                connection, codec, ErrorCode.RATE_LIMITED, message, CloseCode.RATE_LIMITED
            )
            return
        try:
            if token and not self._per_token.acquire(token):
                message = "too many connections with this token"
                await _refuse(
                    connection, codec, ErrorCode.RATE_LIMITED, message, CloseCode.RATE_LIMITED
                )
                return
            try:
                await self._serve_session(connection, codec, hello, data, grant, beat)
            except StoreFailedError as exc:
                # The broker is stopping for this (broker_failed says why, once): no traceback
                # per session.
                log.warning("session_ended", peer=address, role=hello.role, reason=str(exc))
                await connection.close(1011, "the broker's store failed")
            except Exception:
                # A bug must cost one session, logged like everything else, never the broker.
                log.exception("session_failed", peer=address, role=hello.role)
                await connection.close(1011, "internal error")
            finally:
                if token:
                    self._per_token.release(token)
        finally:
            self._per_address.release(address)

    async def _serve_session(
        self,
        connection: ServerConnection,
        codec: Codec,
        hello: Hello,
        hello_frame: Data,
        grant: Grant,
        beat: asyncio.Task[Heartbeat | None],
    ) -> None:
        if hello.role == "worker" and hello.workspace is not None:
            relayed = await self._relay_elsewhere(connection, hello.workspace, hello_frame)
            if relayed:
                return
        try:
            session = self._open(connection, codec, hello, grant)
        except WorkspaceClosedError as exc:
            # A moment of deletion: 1001 makes a client come back, to a new epoch.
            await _refuse(connection, codec, ErrorCode.CONFLICT, str(exc), CloseCode.GOING_AWAY)
            return
        # The page a browser session comes from (None for programs), for after the fact.
        session.log.info("session_opened", origin=_origin(connection))
        self._sessions.add(session)
        try:
            await session.run()
        finally:
            self._sessions.discard(session)
            # The heartbeat aborts a dead peer's connection and returns at once, so it is done
            # by the time the session sees the connection closed.
            dead = beat.result() if beat.done() and not beat.cancelled() else None
            if dead is None:
                session.log.info(
                    "session_closed", code=connection.close_code, reason=connection.close_reason
                )
            else:
                session.log.info(
                    "session_closed",
                    code=connection.close_code,
                    reason="heartbeat timeout",
                    heartbeat_s=dead.interval,
                    heartbeat_timeout_s=dead.timeout,
                    unanswered_pings=dead.pings_since_heard,
                )

    async def _relay_elsewhere(
        self, connection: ServerConnection, workspace: str, hello_frame: Data
    ) -> bool:
        """Relay a worker to the node that writes its workspace, if that is another node;
        whether it was (and is now over)."""
        broker, config = self.broker, self.config
        assert broker is not None
        cluster = broker.cluster
        if cluster is None:
            return False
        try:
            writer = await broker.written_here(workspace)
            url = None if writer is None else await cluster.node_url(writer)
        except StoreUnavailableError as exc:
            log.warning("relay_refused", workspace=workspace, error=str(exc))
            await connection.close(WRITER_UNREACHABLE, "the store cannot be reached")
            return True
        if writer is None:
            return False
        if url is None:
            log.warning("relay_refused", workspace=workspace, writer=writer, error="not alive")
            await connection.close(WRITER_UNREACHABLE, "the workspace's node cannot be reached")
            return True
        log.info("relay_opened", workspace=workspace, writer=writer, peer=_peer(connection))
        self._relays.add(connection)
        try:
            await relay(
                connection,
                hello_frame,
                url,
                authorization=_authorization(connection),
                max_size=config.max_frame_bytes,
                heartbeat_s=config.heartbeat_s,
                heartbeat_timeout_s=config.heartbeat_timeout_s,
                # A paused writer accepts the TCP connection and answers nothing.
                open_timeout_s=min(config.hello_timeout_s, config.heartbeat_timeout_s),
            )
        finally:
            self._relays.discard(connection)
        log.info(
            "relay_closed",
            workspace=workspace,
            writer=writer,
            code=connection.close_code,
            reason=connection.close_reason,
        )
        return True

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Every HTTP request first: the door (Host, Origin), then the health check."""
        refusal = self._door.check(request.headers.get("Host"), request.headers.get("Origin"))
        if refusal is not None:
            log.warning(
                "request_refused",
                peer=_peer(connection),
                path=request.path,
                refused=refusal.header,
                **{refusal.header: refusal.value},
            )
            return connection.respond(HTTPStatus.FORBIDDEN, refusal.body)
        if request.path == "/healthz":
            problem = self._not_ready()
            if problem is not None:
                return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, problem + "\n")
            return connection.respond(HTTPStatus.OK, "ok\n")
        if self._dashboard is None or _is_websocket_upgrade(request):
            return None
        answer = self._dashboard.answer(
            request.path,
            accept=request.headers.get("Accept"),
            if_none_match=request.headers.get("If-None-Match"),
        )
        return _response(answer)

    def _not_ready(self) -> str | None:
        """Why the node cannot serve fully right now (its store is unreachable), or None."""
        broker = self.broker
        if broker is None:
            return "starting"
        if not broker.store.reachable:
            return "not ready: the store cannot be reached"
        if broker.cluster is not None and not broker.cluster.listening:
            return "not ready: not listening to the other nodes"
        return None

    async def _admit(self, connection: ServerConnection, hello: Hello) -> Grant | Refused:
        assert self.broker is not None
        address = _peer(connection)
        header = connection.request.headers.get("Authorization") if connection.request else None
        tokens, throttle = self._tokens, self._throttle

        def decide() -> Grant | Refused:
            return admit(
                hello,
                tokens=tokens,
                header_token=bearer(header),
                throttle=throttle,
                address=address,
            )

        # Without tokens there is nothing to look up: a thread hop per session would only slow
        # down a crowd of sessions coming back after a restart.
        try:
            result = decide() if tokens is None else await self.broker.threads.run(decide)
        except StoreUnavailableError as exc:
            # The tokens are in Redis, away for now: the client tries again later.
            log.warning("session_refused", peer=address, role=hello.role, reason=str(exc))
            message = "cannot check the token now: the store cannot be reached; try again"
            return Refused(ErrorCode.INTERNAL, STORE_UNREACHABLE, message)
        if isinstance(result, Refused):
            # Who and why, never what was presented.
            log.warning("session_refused", peer=address, role=hello.role, reason=result.message)
        return result

    async def _enforce_revocations(self) -> None:
        """Close the sessions of revoked or expired tokens, within half a second."""
        assert self.broker is not None
        assert self._tokens is not None
        broker, tokens = self.broker, self._tokens
        unreachable = False
        while True:
            await asyncio.sleep(0.5)
            try:
                refused = await broker.threads.run(tokens.refused_ids)
            except StoreUnavailableError as exc:
                # Once per outage; the sessions stay as they were until the tokens can be read.
                if not unreachable:
                    log.warning("token_check_failed", error=str(exc))
                unreachable = True
                continue
            unreachable = False
            for session in list(self._sessions):
                if session.grant.token_id in refused:
                    session.log.info("session_token_withdrawn", token=session.grant.token_name)
                    session.abort(CloseCode.UNAUTHORIZED, "token revoked or expired")

    def _open(
        self, connection: ServerConnection, codec: Codec, hello: Hello, grant: Grant
    ) -> Session:
        assert self.broker is not None
        broker, config = self.broker, self.config
        session_id = secrets.token_hex(6)
        session_log = log.bind(
            session=session_id,
            role=hello.role,
            peer=_peer(connection),
            client=hello.client,
            token=grant.token_name,
        )
        limits = Limits(max_frame_bytes=config.max_frame_bytes, max_batch=config.max_batch)
        welcome = Welcome(
            protocol=PROTOCOL_VERSION,
            server=self.server_name,
            session=session_id,
            roles=sorted(grant.roles),
            heartbeat_s=config.heartbeat_s,
            limits=limits,
        )
        context = SessionContext(
            broker=broker,
            connection=connection,
            codec=codec,
            session_id=session_id,
            client=hello.client,
            log=session_log,
            grant=grant,
        )
        if hello.role == "worker":
            assert hello.workspace is not None
            assert hello.run_id is not None
            workspace = broker.workspace(hello.workspace)
            worker = WorkerSession(
                replace(
                    context, log=session_log.bind(workspace=workspace.name, run_id=hello.run_id)
                ),
                workspace=workspace,
                run_id=hello.run_id,
                actions=hello.actions,
            )
            worker.send(
                msgspec.structs.replace(
                    welcome,
                    acked_seq=workspace.acked_seqs.get(hello.run_id, 0),
                    semaphores=workspace.state.semaphores,
                    epoch=workspace.epoch,
                )
            )
            worker.started(hello.details)
            return worker
        watcher = WatcherSession(context)
        watcher.send(welcome)
        watcher.started()
        return watcher


async def _refuse(
    connection: ServerConnection, codec: Codec, code: ErrorCode, message: str, close: int
) -> None:
    with contextlib.suppress(ConnectionClosed):
        await connection.send(codec.encode(ErrorReply(code=code, message=message)), text=codec.text)
        await connection.close(close, _close_reason(message))


def _close_reason(message: str) -> str:
    """``message`` cut to what a close frame carries, on a character boundary.

    The limit is in UTF-8 bytes: a reason cut by characters can still be too long, and
    websockets then raises instead of closing (an error message may quote the peer's text).
    """
    return message.encode(errors="replace")[:_CLOSE_REASON_BYTES].decode(errors="ignore")


def _select_subprotocol(
    connection: ServerConnection, offered: Sequence[Subprotocol]
) -> Subprotocol | None:
    """The first offered subprotocol this broker speaks; none offered means JSON."""
    if not offered:
        return None
    for name in offered:
        if name in SUBPROTOCOLS:
            return name
    raise NegotiationError(f"no supported subprotocol among {', '.join(offered)}")


def _tls_context(config: BrokerConfig) -> ssl.SSLContext | None:
    """The server's TLS context; a ValueError says in one line what is wrong with the files."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    for what, path in (("certificate", config.tls_cert), ("key", config.tls_key)):
        if not path.is_file():
            raise ValueError(f"the TLS {what} {path} is not a file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(config.tls_cert, config.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(
            f"cannot use the TLS certificate {config.tls_cert} with the key {config.tls_key}:"
            f" {exc.strerror or exc}"
        ) from None
    return context


def _origin(connection: ServerConnection) -> str | None:
    return connection.request.headers.get("Origin") if connection.request else None


def _peer(connection: ServerConnection) -> str:
    address = connection.remote_address
    return str(address[0]) if address else "?"


def _is_websocket_upgrade(request: Request) -> bool:
    upgrade = request.headers.get("Upgrade", "")
    return any(part.strip().lower() == "websocket" for part in upgrade.split(","))


def _response(answer: HttpAnswer) -> Response:
    headers = Headers(answer.headers)
    headers["Content-Length"] = str(len(answer.body))
    # websockets closes the connection after any answer that is not a handshake.
    headers["Connection"] = "close"
    return Response(answer.status.value, answer.status.phrase, headers, answer.body)


def _open_store(config: BrokerConfig) -> tuple[Store, int | None]:
    """The store ``config`` names, and the data directory's lock when the store does not
    hold it itself (raises ``StartError`` with a one-line reason)."""
    if config.store is not None:
        try:
            target = parse_redis_url(config.store, os.environ)
        except StoreUrlError as exc:
            raise StartError(str(exc)) from exc
        lock = _lock_data_dir(config.data_dir)
        try:
            node = _node_name(config.data_dir)
            store = RedisStore(
                target,
                durability=config.redis_durability,
                node=node,
                owner_lease_ms=round(config.cluster_claim_s * 1000),
            )
        except (StoreUnusableError, OSError) as exc:
            os.close(lock)
            raise StartError(str(exc)) from exc
        except BaseException:
            os.close(lock)
            raise
        return store, lock
    node_file, database = config.data_dir / NODE_FILE, config.data_dir / DATABASE_NAME
    if node_file.exists() and not database.exists():
        # A node on Redis restarted without its --store would start empty, and serve nothing
        # of what its workers and watchers expect.
        raise StartError(
            f"{config.data_dir} belongs to a node on Redis: give --store with the node's Redis URL"
        )
    try:
        return SQLiteStore(config.data_dir, synchronous=config.synchronous), None
    except (DataDirectoryInUseError, StoreVersionError) as exc:
        raise StartError(str(exc)) from exc
    except (OSError, sqlite3.Error) as exc:
        raise StartError(f"cannot open the store in {config.data_dir}: {exc}") from exc


def _authorization(connection: ServerConnection) -> str | None:
    """The client's ``Authorization`` header, which a relay passes on with its ``hello``."""
    return connection.request.headers.get("Authorization") if connection.request else None


def _own_hosts(config: BrokerConfig) -> tuple[str, ...]:
    """Host names the other nodes reach this one by, admitted wherever ``Host`` is checked
    because ``--allowed-host`` is given: their relays name the node's advertised address."""
    if config.store is None or not config.allowed_hosts:
        return ()
    if config.advertise_url is not None:
        host = urllib.parse.urlsplit(config.advertise_url).hostname
        return (host,) if host else ()
    if config.host in ("0.0.0.0", "::", ""):
        return (socket.gethostname(),)
    return (config.host,)


def _lock_data_dir(path: Path) -> int:
    """The data directory, locked for this node alone (its name and tokens are in it)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        return lock_directory(path)
    except DataDirectoryInUseError as exc:
        raise StartError(str(exc)) from exc
    except OSError as exc:
        raise StartError(f"cannot use the data directory {path}: {exc}") from exc


def _node_name(data_dir: Path) -> str:
    """This node's name among the nodes sharing a Redis store: made once, kept in the data
    directory, so that a node restarted on it takes back its own workspaces at once."""
    path = data_dir / NODE_FILE
    with contextlib.suppress(FileNotFoundError):
        name = path.read_text(encoding="utf-8").strip()
        if name:
            return name
    name = f"{socket.gethostname().split('.')[0].replace('/', '-')}-{secrets.token_hex(4)}"
    path.write_text(name + "\n", encoding="utf-8")
    return name


def _store_name(store: Store) -> str:
    if isinstance(store, RedisStore):
        return f"{store.target.redacted()} ({store.durability}; {store.traits.version})"
    return "sqlite"


def _store_said_why(exc: BaseException | None) -> bool:
    """Whether ``exc`` is, or was caused by, one of the store's own typed failures, whose
    message says all there is to say (a traceback would add nothing an operator can use)."""
    while exc is not None:
        if isinstance(exc, StoreUnavailableError | StoreConflictError):
            return True
        exc = exc.__cause__
    return False
