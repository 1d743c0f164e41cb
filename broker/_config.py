"""Broker settings, with the defaults ``pierhead serve`` uses."""

from __future__ import annotations

import datetime
import ipaddress
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ._notify import NotifyConfig

MiB = 1024 * 1024
MIN_FRAME_BYTES = 1024
"""The smallest ``max_frame_bytes``: a hello with a token, a small publish."""


@dataclass(frozen=True, kw_only=True, slots=True)
class BrokerConfig:
    host: str = "127.0.0.1"
    port: int = 8765
    """0 picks a free port (the bound one is on ``Broker.port``)."""
    data_dir: Path = Path("pierhead-data")
    """The embedded store's directory, and the tokens' (with any store)."""
    store: str | None = None
    """A Redis URL (``redis://``, ``rediss://``, ``unix://``; docs/storage.md) to keep the
    workspaces in Redis instead of the embedded SQLite store in ``data_dir``."""
    redis_durability: Literal["aof", "replica"] = "aof"
    """With a Redis store, what an acknowledgement waits for: the commit fsynced to the
    primary's AOF, or to a replica's as well."""
    advertise_url: str | None = None
    """With a Redis store: where the other nodes reach this one (``ws://host:port``); by
    default the address it listens on."""
    cluster_claim_s: float = 10.0
    """With a Redis store: how long a node's claim on the workspaces it writes (and its place
    in the node list) outlives the node; after a node dies, its workspaces wait this long for
    another node."""
    cluster_check_s: float = 5.0
    """With a Redis store: how often the workspaces other nodes write are compared with the
    store, repairing a lost wake-up."""
    cluster_probe_s: float = 10.0
    """With a Redis store: a subscription silent this long is probed, and opened again when
    not even the probe comes back."""
    insecure: bool = False
    """Allow a non-loopback bind while auth is off."""
    auth: Literal["none", "token"] = "none"
    """``token``: every session presents a token (see ``pierhead token``)."""
    auth_failures_per_minute: int = 10
    """Failed authentications from one address before it is refused for a while."""
    allowed_origins: tuple[str, ...] = ()
    """Origins (``https://ops.example.com``, or ``null``) whose pages may connect, besides the
    broker's own. Requests without an ``Origin`` (every client but a browser) always may."""
    allowed_hosts: tuple[str, ...] = ()
    """Host names a request may be addressed to, besides loopback ones. Checked when the broker
    listens on loopback (against DNS rebinding) or whenever any is given."""
    dashboard: bool = True
    """Answer plain HTTP GETs on the broker's port with the browser dashboard."""
    tls_cert: Path | None = None
    tls_key: Path | None = None
    notify: NotifyConfig | None = None
    """Where notifications go, and what sets them off (``--notify FILE``; docs/operations.md,
    "Notifications"). ``None``: no notifications."""
    public_url: str | None = None
    """The dashboard's public address (``--public-url``, else the notify file's), for links
    in notifications; ``notify.public_url`` is the same."""

    heartbeat_s: float = 5.0
    """A ping every this many seconds."""
    heartbeat_timeout_s: float = 10.0
    """A session whose peer has sent no pong for this long is closed (at once, without a
    closing handshake). Longer than ``heartbeat_s``."""
    hello_timeout_s: float = 5.0
    mutex_grace_s: float = 30.0
    """How long a disconnected worker keeps its lease and its place in the workspace."""
    drain_timeout_s: float = 10.0
    drain_reconnect_after_s: float = 1.0

    retention_events: int = 1_000_000
    retention_age: datetime.timedelta = datetime.timedelta(days=30)
    retention_interval_s: float = 60.0
    forget_runs_after: datetime.timedelta = datetime.timedelta(days=30)
    """A run with no session and no retained event for this long loses its dedupe position."""

    max_frame_bytes: int = 1 * MiB
    max_batch: int = 1000
    session_buffer_bytes: int = 4 * MiB
    """Outbound bytes queued per session before it counts as a slow consumer."""
    max_bad_frames: int = 10
    """Consecutive undecodable frames after which a session is closed with 4000."""
    max_events_per_s: float = 100_000.0
    """Per worker session, with a burst of one second's worth; beyond it: close 4029."""
    listen_backlog: int = 4096
    """Connections the kernel holds for the broker until it accepts them. A crowd of clients
    coming back at once overflows a short queue; the overflow waits for TCP to retry, a second
    at first and doubling, which adds whole seconds to their return. The kernel caps it at
    ``net.core.somaxconn``."""
    max_connections_per_address: int = 1024
    max_connections_per_token: int = 1024
    max_subscriptions_per_session: int = 64
    max_pending_calls_per_session: int = 64
    max_waiting_requests_per_session: int = 64
    """Requests of one session waiting for the store or for another node at a time (history,
    stats, delete, and those another node carries out); the next is refused (rate_limited)."""

    commit_max_events: int = 5000
    synchronous: Literal["full", "normal"] = "full"
    tail_events: int = 131_072
    """Recent events kept in memory, across all workspaces, the oldest commits' leaving first:
    subscribers reading them, live or a little behind, never touch the store. About 400 bytes
    each for a 200-byte log record."""
    delivery_page_events: int = 1000
    """Most events in one ``events`` frame."""

    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is not in 0..65535")
        if self.max_batch < 1 or self.commit_max_events < self.max_batch:
            raise ValueError("max_batch must be at least 1 and at most commit_max_events")
        if not 0 < self.heartbeat_s < self.heartbeat_timeout_s < math.inf:
            raise ValueError(
                "the heartbeat interval must be positive and the heartbeat timeout longer"
            )
        if not 0 < self.max_events_per_s < math.inf:
            raise ValueError("the events-per-second limit must be positive")
        if not 0 < self.retention_interval_s < math.inf:
            raise ValueError("the retention interval must be positive")
        if self.forget_runs_after <= datetime.timedelta(0):
            raise ValueError("the time after which runs are forgotten must be positive")
        if self.tail_events < 1:
            raise ValueError("tail_events must be at least 1")
        if self.listen_backlog < 1:
            raise ValueError("listen_backlog must be at least 1")
        intervals = (self.cluster_check_s, self.cluster_probe_s, self.cluster_claim_s)
        if not all(0 < interval < math.inf for interval in intervals):
            raise ValueError("the cluster's intervals must be positive")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("TLS needs both a certificate and a key")
        # Written ``not 0 <= x`` and the like: NaN is refused too.
        if self.retention_age < datetime.timedelta(0):
            raise ValueError("the retention age must not be negative")
        if self.retention_events < 1:
            raise ValueError("the events kept per workspace must be at least 1")
        if not 0 <= self.mutex_grace_s < math.inf:
            raise ValueError("the grace must be a number of seconds, 0 or more")
        if not 0 <= self.drain_timeout_s < math.inf:
            raise ValueError("the drain timeout must be a number of seconds, 0 or more")
        if self.max_frame_bytes < MIN_FRAME_BYTES:
            raise ValueError(f"the largest frame must be at least {MIN_FRAME_BYTES} bytes")
        if min(self.max_connections_per_address, self.max_connections_per_token) < 1:
            raise ValueError("the connection limits must be at least 1")

    @property
    def loopback_only(self) -> bool:
        """Whether the bind address admits only this machine."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False
