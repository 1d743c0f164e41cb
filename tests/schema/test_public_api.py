"""The names ``schema`` exports are its contract; changing them must be deliberate."""

from __future__ import annotations

import types

import schema

EXPECTED = [
    "Ack", "ActionCall", "ActionFailure", "ActionParam", "ActionRequest", "ActionResult",
    "ActionSpec", "BrokerFrame", "BrokerPayload", "CallOutcome", "CallRecord", "CallResult",
    "Catch", "ClientFrame", "CloseCode", "Codec",
    "Cursor", "Custom", "DeleteWorkspace", "DetailsChange", "Draining", "ErrorCode",
    "ErrorReply", "Event", "EventMsg", "Events", "Gap", "GpuStats", "Hardware", "Hello",
    "HistoryPage", "HistoryQuery", "Hyperparameters", "JSON_CODEC", "JSON_SUBPROTOCOL",
    "Joined", "Limits", "ListWorkspaces", "LogLevel", "LogRecord", "MSGPACK_CODEC",
    "MSGPACK_SUBPROTOCOL", "MutexAcquire", "MutexBreak", "MutexChange", "MutexGranted", "MutexLost",
    "MutexRelease", "Ok", "PROTOCOL_VERSION", "ParamKind", "Payload", "PayloadKind", "Presence",
    "PresenceState", "Progress", "Publish", "Release", "Removed", "Role", "SUBPROTOCOLS",
    "Scalar", "SchemaError", "SemaphoresChange", "SemaphoresPush", "SessionRole", "SetDetails",
    "Severity", "StartPosition", "StatsReport", "StatsRequest", "Status", "Subscribe",
    "Subscribed", "Unsubscribe", "Welcome", "WorkerEntry", "WorkerPayload", "WorkspaceDetails",
    "WorkspaceEvent", "WorkspaceSemaphores", "WorkspaceState", "Workspaces", "codec_for", "convert",
    "fold_event", "fold_events", "new_workspace_state", "semaphores_of", "stamp",
]  # fmt: skip


def test_exported_names_are_pinned_and_sorted() -> None:
    assert schema.__all__ == EXPECTED
    assert sorted(schema.__all__) == schema.__all__


def test_every_public_attribute_is_exported_and_exists() -> None:
    public = {
        name
        for name, value in vars(schema).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(schema.__all__)
