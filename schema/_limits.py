"""Hard bounds that the schema enforces while decoding.

A broker may configure tighter limits (its ``welcome.limits``); it can never accept more than
these, because every decoder rejects what lies beyond them before any other code sees it.
"""

from __future__ import annotations

from typing import Final

PROTOCOL_VERSION: Final = 1
"""The wire protocol version spoken by this schema (``hello.protocol``)."""

MAX_NAME_CHARS: Final = 128
"""Workspace names and run ids."""

MAX_LABEL_CHARS: Final = 256
"""Short labels: scalar, progress and status names, series, loggers, clients, action names."""

MAX_TEXT_CHARS: Final = 4096
"""Free text that is not an event message: status values, reasons, details fields."""

MAX_MESSAGE_CHARS: Final = 65536
"""Event and log messages (64 Ki characters)."""

MAX_PATTERN_CHARS: Final = 256
"""Glob patterns over workspace names."""

MAX_TOKEN_CHARS: Final = 512

MAX_BATCH: Final = 10_000
"""Events in one ``publish`` frame; brokers announce their own, lower, ``limits.max_batch``."""

MAX_DELIVERY_BATCH: Final = 100_000
"""Events in one ``events`` or ``history_page`` frame from a broker."""

MAX_HISTORY_LIMIT: Final = 1000
DEFAULT_HISTORY_LIMIT: Final = 100

MAX_CURSORS: Final = 10_000
"""Workspaces named in one ``subscribe.from`` cursor map."""

MAX_KINDS: Final = 16
MAX_ACTIONS: Final = 64
MAX_ACTION_PARAMS: Final = 32
MAX_MAP_ENTRIES: Final = 1024
"""Entries in hyperparameter, argument and other free-form maps."""

MAX_GPUS: Final = 64

MAX_STATUS_KEYS: Final = 256
"""Distinct status keys a workspace state keeps; later new keys are ignored by the fold."""

MAX_PROGRESS_BARS: Final = 64
"""Distinct progress names a workspace state keeps; later new names are ignored by the fold."""

MAX_REQUEST_ID: Final = 2**53 - 1
"""Request ids stay exactly representable as IEEE doubles, for JavaScript clients."""

MAX_COUNTER: Final = 2**63 - 1
"""Offsets, seqs, epochs and fences are signed 64-bit integers."""

MAX_TIMEOUT_S: Final = 86_400.0
