"""Constrained scalar types shared by payloads, state and frames.

The constraints live in the types so that msgspec checks them while decoding, in C, before any
Struct exists.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Final, Literal

from msgspec import Meta

from ._limits import (
    MAX_COUNTER,
    MAX_LABEL_CHARS,
    MAX_MESSAGE_CHARS,
    MAX_NAME_CHARS,
    MAX_PATTERN_CHARS,
    MAX_REQUEST_ID,
    MAX_TEXT_CHARS,
    MAX_TIMEOUT_S,
)

# ``\Z`` rather than ``$``: ``$`` also matches before a trailing newline.
WORKSPACE_NAME_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_NAME_CHARS - 1}}}\Z"
RUN_ID_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9_.:-]{{0,{MAX_NAME_CHARS - 1}}}\Z"
WORKSPACE_PATTERN_PATTERN = rf"^[A-Za-z0-9_.*?\[\]!-]{{1,{MAX_PATTERN_CHARS}}}\Z"
ACTION_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}\Z"

PATTERN_MEANINGS: Final = {
    WORKSPACE_NAME_PATTERN: f"a workspace name: 1 to {MAX_NAME_CHARS} letters, digits, '_', '.'"
    " or '-', the first a letter or digit",
    RUN_ID_PATTERN: f"a run id: 1 to {MAX_NAME_CHARS} letters, digits, '_', '.', ':' or '-',"
    " the first a letter or digit",
    WORKSPACE_PATTERN_PATTERN: f"a workspace pattern: 1 to {MAX_PATTERN_CHARS} letters, digits,"
    " '_', '.', '-' and the wildcards '*', '?', '[', ']', '!'",
    ACTION_NAME_PATTERN: "an action name: 1 to 64 letters, digits, '_', '.' or '-', the first a"
    " letter or '_'",
}
"""What each name pattern allows, in words: an error says this rather than the expression."""

WorkspaceName = Annotated[str, Meta(pattern=WORKSPACE_NAME_PATTERN)]
RunId = Annotated[str, Meta(pattern=RUN_ID_PATTERN)]
WorkspacePattern = Annotated[str, Meta(pattern=WORKSPACE_PATTERN_PATTERN)]
ActionName = Annotated[str, Meta(pattern=ACTION_NAME_PATTERN)]

# The envelope's names were checked against their patterns when they reached the broker (in
# the frame that named them); decoding an envelope again, from the store, a follower's read or
# a watcher's frame, only bounds their length: the two regular expressions cost four times the
# rest of a stored event's decode.
StampedWorkspaceName = Annotated[str, Meta(min_length=1, max_length=MAX_NAME_CHARS)]
StampedRunId = Annotated[str, Meta(min_length=1, max_length=MAX_NAME_CHARS)]

Label = Annotated[str, Meta(min_length=1, max_length=MAX_LABEL_CHARS)]
"""A non-empty short name (scalar name, status key, series)."""
ShortText = Annotated[str, Meta(max_length=MAX_LABEL_CHARS)]
Text = Annotated[str, Meta(max_length=MAX_TEXT_CHARS)]
Message = Annotated[str, Meta(max_length=MAX_MESSAGE_CHARS)]

RequestId = Annotated[int, Meta(ge=0, le=MAX_REQUEST_ID)]
Offset = Annotated[int, Meta(ge=0, le=MAX_COUNTER)]
Seq = Annotated[int, Meta(ge=0, le=MAX_COUNTER)]
PublishSeq = Annotated[int, Meta(ge=1, le=MAX_COUNTER)]
Epoch = Annotated[int, Meta(ge=0, le=MAX_COUNTER)]
Fence = Annotated[int, Meta(ge=0, le=MAX_COUNTER)]
Count = Annotated[int, Meta(ge=0, le=MAX_COUNTER)]

FiniteFloat = Annotated[float, Meta(ge=-1.7976931348623157e308, le=1.7976931348623157e308)]
"""A float that is neither NaN nor infinite (JSON cannot carry those)."""
NonNegativeFloat = Annotated[float, Meta(ge=0.0, le=1.7976931348623157e308)]
Timeout = Annotated[float, Meta(gt=0.0, le=MAX_TIMEOUT_S)]

UtcDateTime = Annotated[datetime.datetime, Meta(tz=True)]
"""An RFC 3339 time with an offset. Naive times are refused; the broker emits UTC (``Z``)."""

Role = Literal["worker", "watcher", "operator", "admin"]
SessionRole = Literal["worker", "watcher"]
Severity = Literal["info", "success", "warning", "error"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]
PresenceState = Literal["connected", "disconnected", "expired"]
PayloadKind = Literal[
    "event",
    "log",
    "scalar",
    "progress",
    "status",
    "hyperparameters",
    "hardware",
    "custom",
    "details",
    "semaphores",
    "presence",
    "call",
]
StartPosition = Literal["latest", "earliest"]
MutexChange = Literal["granted", "released", "broken", "expired", "holder_left", "holder_back"]
"""What a ``semaphores`` change did to the mutex (absent on a catch or release)."""
CallOutcome = Literal["ok", "failed", "bad_call", "timeout", "worker_gone"]
ParamKind = Literal["string", "integer", "number", "boolean", "json"]
