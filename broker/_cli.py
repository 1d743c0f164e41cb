"""``pierhead serve``: run a broker on the embedded store until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import sys
from pathlib import Path

from ._config import BrokerConfig
from ._logging import configure_logging
from ._server import BrokerServer, InsecureBindError

_DEFAULTS = BrokerConfig()


def add_serve_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve",
        help="run a broker on an embedded store",
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
        help="store directory (default: %(default)s)",
    )
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
        type=float,
        default=_DEFAULTS.retention_age.days,
        help="days events are kept (default: %(default)s)",
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
        help="seconds without pong before a session is dead (default: %(default)s)",
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
        config = BrokerConfig(
            host=args.host,
            port=args.port,
            data_dir=args.data,
            insecure=args.insecure,
            retention_events=args.retention_events,
            retention_age=datetime.timedelta(days=args.retention_days),
            mutex_grace_s=args.grace,
            heartbeat_s=args.heartbeat,
            heartbeat_timeout_s=args.heartbeat_timeout,
            drain_timeout_s=args.drain_timeout,
            max_frame_bytes=args.max_frame_bytes,
            max_batch=args.max_batch,
            synchronous=args.sync,
            log_format=args.log_format,
            log_level=args.log_level,
        )
        server = BrokerServer(config)
    except (ValueError, InsecureBindError) as exc:
        print(f"pierhead serve: {exc}", file=sys.stderr)
        return 2
    asyncio.run(_serve(server))
    return 0


async def _serve(server: BrokerServer) -> None:
    await server.start()
    await server.serve_until_signalled()
