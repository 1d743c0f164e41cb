"""``pierhead serve``: run a broker on the embedded store until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import math
import os
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import structlog

from ._config import BrokerConfig
from ._logging import configure_logging
from ._notify_config import check_public_url, load_notify_config
from ._redis_store import StoreUnavailableError, StoreUnusableError
from ._redis_tokens import open_redis_tokens
from ._redis_url import StoreUrlError, parse_redis_url
from ._server import NODE_FILE, BrokerFailedError, BrokerServer, InsecureBindError, StartError
from ._sqlite_store import DATABASE_NAME
from ._tokens import (
    TOKENS_FILE,
    SqliteTokenStore,
    TokenError,
    TokenStore,
    check_scope,
    check_token_name,
    parse_duration,
)

EXIT_FAILED = 1
"""The broker could not start (a port in use, a data directory in use) or stopped on a fault."""
EXIT_USAGE = 2

T = TypeVar("T")

_DEFAULTS = BrokerConfig()


def add_serve_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve",
        help="run a broker (on its embedded store, or on Redis with --store)",
        description="Run a pierhead broker. SIGTERM or SIGINT drains it: sessions are told, "
        "everything queued is made durable, sockets close with 1001.",
    )
    serve.add_argument(
        "--host", default=_DEFAULTS.host, help="address to bind (default: %(default)s)"
    )
    serve.add_argument(
        "--port",
        type=int,
        default=_DEFAULTS.port,
        help="0 picks a free port (default: %(default)s)",
    )
    serve.add_argument(
        "--data",
        type=Path,
        default=_DEFAULTS.data_dir,
        help="the embedded store's directory, and the tokens' (default: %(default)s)",
    )
    serve.add_argument(
        "--store",
        default=None,
        metavar="URL",
        help="keep the workspaces in Redis: redis://[[USER]:PASSWORD@]HOST[:PORT][/DB],"
        " rediss://... (TLS), unix:///PATH[?db=N] or sentinel://HOST[:PORT][,HOST[:PORT]...]"
        "/SERVICE[/DB] (docs/storage.md); the password may come from PIERHEAD_REDIS_PASSWORD"
        " (default: the embedded SQLite store in --data)",
    )
    serve.add_argument(
        "--redis-durability",
        choices=["aof", "replica"],
        default=_DEFAULTS.redis_durability,
        help="with --store redis: acknowledge once a commit is fsynced to the primary's AOF"
        " (aof), or to a replica's too (replica) (default: %(default)s)",
    )
    serve.add_argument(
        "--advertise-url",
        default=None,
        metavar="URL",
        help="with --store redis: where the other nodes reach this one, ws://HOST:PORT"
        " (default: the address it listens on)",
    )
    serve.add_argument(
        "--claim-lease",
        type=float,
        default=_DEFAULTS.cluster_claim_s,
        metavar="SECONDS",
        help="with --store redis: how long a node's claim on its workspaces outlives it; after"
        " a node dies its workspaces wait this long for another (default: %(default)s)",
    )
    serve.add_argument(
        "--position-check",
        type=float,
        default=_DEFAULTS.cluster_check_s,
        metavar="SECONDS",
        help="with --store redis: how often the workspaces other nodes write are compared with"
        " the store, repairing a lost wake-up (default: %(default)s)",
    )
    serve.add_argument(
        "--auth",
        choices=["none", "token"],
        default=_DEFAULTS.auth,
        help="none: every session may do anything (loopback only); token: see pierhead token",
    )
    serve.add_argument(
        "--max-events-per-s",
        type=float,
        default=_DEFAULTS.max_events_per_s,
        help="per worker session (default: %(default)s)",
    )
    serve.add_argument(
        "--listen-backlog",
        type=int,
        default=_DEFAULTS.listen_backlog,
        help="connections the kernel queues until the broker accepts them; capped by"
        " net.core.somaxconn (default: %(default)s)",
    )
    serve.add_argument(
        "--max-connections-per-address",
        type=int,
        default=_DEFAULTS.max_connections_per_address,
        help="open sessions from one client address; more are closed with 4029 (behind a"
        " load balancer every client has the balancer's address: raise this)"
        " (default: %(default)s)",
    )
    serve.add_argument(
        "--max-connections-per-token",
        type=int,
        default=_DEFAULTS.max_connections_per_token,
        help="with --auth token: open sessions on one token; more are closed with 4029"
        " (default: %(default)s)",
    )
    serve.add_argument(
        "--allowed-origin",
        dest="allowed_origins",
        action="append",
        default=None,
        help="an origin (https://host[:port], or null for file:// pages) whose pages may connect,"
        " besides the broker's own (repeat); clients that send no Origin always may",
    )
    serve.add_argument(
        "--allowed-host",
        dest="allowed_hosts",
        action="append",
        default=None,
        help="a host name requests may be addressed to besides loopback ones (repeat); checked"
        " when listening on loopback, against DNS rebinding, or whenever given",
    )
    serve.add_argument(
        "--no-dashboard",
        dest="dashboard",
        action="store_false",
        help="do not serve the browser dashboard on the broker's port (websockets only)",
    )
    serve.add_argument(
        "--notify",
        type=Path,
        default=None,
        metavar="FILE",
        help="post notifications to Slack and webhooks as this TOML file says (see"
        " docs/operations.md, Notifications; check it with pierhead notify test FILE)",
    )
    serve.add_argument(
        "--public-url",
        default=None,
        metavar="URL",
        help="the dashboard's public address, http(s)://HOST[:PORT][/PATH], for links in"
        " notifications (default: the --notify file's public_url, if any)",
    )
    serve.add_argument("--tls-cert", type=Path, default=None, help="serve wss:// with this cert")
    serve.add_argument("--tls-key", type=Path, default=None, help="the certificate's key")
    serve.add_argument(
        "--insecure", action="store_true", help="allow a non-loopback --host without authentication"
    )
    serve.add_argument(
        "--retention-events",
        type=int,
        default=_DEFAULTS.retention_events,
        help="events kept per workspace (default: %(default)s)",
    )
    serve.add_argument(
        "--retention-days",
        type=_days,
        default=_DEFAULTS.retention_age.days,
        help="days events are kept (default: %(default)s)",
    )
    serve.add_argument(
        "--retention-interval",
        type=float,
        default=_DEFAULTS.retention_interval_s,
        help="seconds between retention passes (default: %(default)s)",
    )
    serve.add_argument(
        "--forget-runs-after",
        type=_days,
        default=_DEFAULTS.forget_runs_after.days,
        help="days after which a run with no session and no retained events loses its dedupe"
        " position (default: %(default)s)",
    )
    serve.add_argument(
        "--grace",
        type=float,
        default=_DEFAULTS.mutex_grace_s,
        help="seconds a disconnected worker keeps its mutex (default: %(default)s)",
    )
    serve.add_argument(
        "--heartbeat",
        type=float,
        default=_DEFAULTS.heartbeat_s,
        help="ping interval in seconds (default: %(default)s)",
    )
    serve.add_argument(
        "--heartbeat-timeout",
        type=float,
        default=_DEFAULTS.heartbeat_timeout_s,
        help="seconds without a pong before a session is closed; longer than --heartbeat"
        " (default: %(default)s)",
    )
    serve.add_argument(
        "--drain-timeout",
        type=float,
        default=_DEFAULTS.drain_timeout_s,
        help="longest shutdown in seconds (default: %(default)s)",
    )
    serve.add_argument(
        "--max-frame-bytes",
        type=int,
        default=_DEFAULTS.max_frame_bytes,
        help="largest frame accepted (default: %(default)s)",
    )
    serve.add_argument(
        "--max-batch",
        type=int,
        default=_DEFAULTS.max_batch,
        help="most events in one publish (default: %(default)s)",
    )
    serve.add_argument(
        "--tail-events",
        type=int,
        default=_DEFAULTS.tail_events,
        help="recent events kept in memory across all workspaces, so that subscribers need not"
        " read them from the store (default: %(default)s)",
    )
    serve.add_argument(
        "--sync",
        choices=["full", "normal"],
        default=_DEFAULTS.synchronous,
        help="SQLite synchronous mode (default: %(default)s)",
    )
    serve.add_argument(
        "--log-format",
        choices=["auto", "json", "console"],
        default="auto",
        help="auto: JSON unless stderr is a terminal",
    )
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")
    serve.set_defaults(run=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    configure_logging(args.log_format, args.log_level)
    try:
        if args.store is not None:
            # A malformed URL is a mistake in the command line (StoreUrlError, a ValueError).
            parse_redis_url(args.store, os.environ)
        public_url = None if args.public_url is None else check_public_url(args.public_url)
        notify = None
        if args.notify is not None:
            notify = load_notify_config(args.notify, public_url=public_url)
            public_url = notify.public_url
        config = BrokerConfig(
            host=args.host,
            port=args.port,
            data_dir=args.data,
            store=args.store,
            redis_durability=args.redis_durability,
            advertise_url=args.advertise_url,
            cluster_claim_s=args.claim_lease,
            cluster_check_s=args.position_check,
            insecure=args.insecure,
            auth=args.auth,
            max_events_per_s=args.max_events_per_s,
            listen_backlog=args.listen_backlog,
            max_connections_per_address=args.max_connections_per_address,
            max_connections_per_token=args.max_connections_per_token,
            allowed_origins=tuple(args.allowed_origins or ()),
            allowed_hosts=tuple(args.allowed_hosts or ()),
            dashboard=args.dashboard,
            notify=notify,
            public_url=public_url,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            retention_events=args.retention_events,
            retention_age=datetime.timedelta(days=args.retention_days),
            retention_interval_s=args.retention_interval,
            forget_runs_after=datetime.timedelta(days=args.forget_runs_after),
            mutex_grace_s=args.grace,
            heartbeat_s=args.heartbeat,
            heartbeat_timeout_s=args.heartbeat_timeout,
            drain_timeout_s=args.drain_timeout,
            max_frame_bytes=args.max_frame_bytes,
            max_batch=args.max_batch,
            synchronous=args.sync,
            tail_events=args.tail_events,
            log_format=args.log_format,
            log_level=args.log_level,
        )
        server = BrokerServer(config)
        _make_data_directory(args.data)
    except (ValueError, InsecureBindError) as exc:
        print(f"pierhead serve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        asyncio.run(server.serve_until_signalled())
    except StartError as exc:
        print(f"pierhead serve: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except BrokerFailedError as exc:
        # The last line, where a supervisor's log shows why it had to restart the broker.
        structlog.get_logger("pierhead.server").critical("broker_failed", cause=str(exc))
        return EXIT_FAILED
    return 0


def _make_data_directory(path: Path) -> None:
    """Create ``--data`` if need be; a ValueError says in one line why it cannot be used."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"--data {path} is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"--data {path} cannot be created: {exc.strerror or exc}") from None


def add_token_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = commands.add_parser(
        "token",
        help="create, list and revoke access tokens",
        description="Manage the tokens of a broker's data directory, or with --store those "
        "that nodes on Redis share (running or not); a broker started with --auth token "
        "accepts them.",
    )
    actions = token.add_subparsers(dest="token_command", metavar="COMMAND", required=True)
    data = argparse.ArgumentParser(add_help=False)
    data.add_argument("--data", type=Path, default=_DEFAULTS.data_dir, help="the broker's store")
    data.add_argument(
        "--store",
        default=None,
        metavar="URL",
        help="the Redis of nodes started with --store, which share their tokens there"
        " (the same URL; the password may come from PIERHEAD_REDIS_PASSWORD);"
        " default: the tokens of --data",
    )

    create = actions.add_parser("create", parents=[data], help="make a token; prints its secret")
    create.add_argument("--name", required=True, type=_argument(check_token_name))
    create.add_argument(
        "--role",
        dest="roles",
        action="append",
        required=True,
        choices=["worker", "watcher", "operator", "admin"],
        help="repeat for several roles",
    )
    create.add_argument(
        "--workspaces",
        type=_argument(check_scope),
        default="*",
        help="glob of workspaces it covers",
    )
    create.add_argument(
        "--expires",
        type=_argument(parse_duration),
        default=None,
        help="e.g. 30d, 12h, 45m, 90s (default: never)",
    )
    create.set_defaults(run=_token_create)

    listing = actions.add_parser("list", parents=[data], help="list tokens (never their secrets)")
    listing.add_argument("--all", action="store_true", help="include revoked tokens")
    listing.set_defaults(run=_token_list)

    revoke = actions.add_parser("revoke", parents=[data], help="revoke a token at once")
    revoke.add_argument("name")
    revoke.set_defaults(run=_token_revoke)


def _days(text: str) -> float:
    """An argparse ``type``: a number of days, 0 or more, that a timedelta holds."""
    try:
        days = float(text)
        if days < 0 or math.isnan(days):
            raise ValueError
        datetime.timedelta(days=days)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days, 0 or more") from None
    return days


def _argument(parse: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse ``type`` from a parser that raises TokenError: a usage error, exit 2."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except TokenError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


def _open_tokens(args: argparse.Namespace, *, create: bool) -> TokenStore | int:
    """The token store of ``--store``, else of ``--data``; or, after a one-line message, the
    exit code.

    Only ``create`` makes a store where there is none (tokens may be made before the broker
    first starts): listing or revoking in a mistyped directory says so instead. The data
    directory of a node on Redis is refused: its tokens are in Redis, and a change to the
    file would change nothing a node checks.
    """
    data: Path = args.data
    if args.store is not None:
        try:
            return open_redis_tokens(parse_redis_url(args.store, os.environ))
        except StoreUrlError as exc:
            print(f"pierhead token: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except (StoreUnusableError, StoreUnavailableError) as exc:
            print(f"pierhead token: {exc}", file=sys.stderr)
            return EXIT_FAILED
    problem = None
    if data.exists() and not data.is_dir():
        problem = f"--data {data} is not a directory"
    elif (data / NODE_FILE).exists():
        problem = (
            f"{data} belongs to a node on Redis, which keeps its tokens there: give --store"
            " with the node's Redis URL"
        )
    elif not create and not any((data / name).exists() for name in (TOKENS_FILE, DATABASE_NAME)):
        problem = f"there is no pierhead store in {data} (is --data right?)"
    if problem is None:
        try:
            return SqliteTokenStore(data)
        except (OSError, sqlite3.Error) as exc:
            problem = f"cannot open the tokens in {data}: {exc}"
    print(f"pierhead token: {problem}", file=sys.stderr)
    return EXIT_USAGE


def _token_create(args: argparse.Namespace) -> int:
    store = _open_tokens(args, create=True)
    if isinstance(store, int):
        return store
    try:
        expires = None
        if args.expires:
            expires = datetime.datetime.now(datetime.UTC) + args.expires
        token, secret = store.create(args.name, args.roles, args.workspaces, expires=expires)
    except (TokenError, StoreUnavailableError) as exc:
        print(f"pierhead token: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    until = token.expires.isoformat() if token.expires else "never"
    print(
        f"# token {token.name}: roles {','.join(sorted(token.roles))}, "
        f"workspaces {token.scope}, expires {until}"
    )
    print("# the secret is shown once; keep it somewhere safe")
    print(secret)
    return 0


def _token_list(args: argparse.Namespace) -> int:
    store = _open_tokens(args, create=False)
    if isinstance(store, int):
        return store
    try:
        tokens = store.tokens(include_revoked=args.all)
    except StoreUnavailableError as exc:
        print(f"pierhead token: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        store.close()
    rows = [("NAME", "ROLES", "WORKSPACES", "CREATED", "EXPIRES", "LAST USED", "REVOKED")]
    rows += [
        (
            token.name,
            ",".join(sorted(token.roles)),
            token.scope,
            _when(token.created),
            _when(token.expires),
            _when(token.last_used),
            _when(token.revoked),
        )
        for token in tokens
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0


def _token_revoke(args: argparse.Namespace) -> int:
    store = _open_tokens(args, create=False)
    if isinstance(store, int):
        return store
    try:
        token = store.revoke(args.name)
    except (TokenError, StoreUnavailableError) as exc:
        print(f"pierhead token: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(f"revoked {token.name}; its sessions are closed within a second")
    return 0


def _when(moment: datetime.datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M")
