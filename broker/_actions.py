"""Action calls in flight: a watcher's ``call`` forwarded to a worker, its answer routed back.

Only the caller sees the result. Every call ends exactly once: answered, timed out, or failed
because the worker went away; a caller that goes away leaves the call running, unanswered.
Sans-I/O: each method returns the effects to carry out (the request to the worker, the answer
to the caller, the call's timer, and the call's record in its workspace's stream, which the
``record`` function given to :class:`ActionCalls` turns into effects).

The caller or the run may be on another node: a :class:`RemoteCaller` is answered with a
notice to its node instead of a frame, and a call to a :class:`RemoteRun` was forwarded to the
node that holds it.
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from schema import (
    ActionFailure,
    ActionRequest,
    CallOutcome,
    CallRecord,
    CallResult,
    ErrorCode,
    ErrorReply,
)

from ._coordinator import CallAnswered, CallFailed, CallForward
from ._effects import CallTimeout, CancelTimer, Effect, Log, Now, Send, StartTimer, Tell
from ._peer import Peer


@dataclass(frozen=True, slots=True)
class RemoteCaller:
    """A caller connected to another node, waiting there under its node's call id."""

    node: str
    call: int


@dataclass(frozen=True, slots=True)
class RemoteRun:
    """A run held by another node, as a pending call's target."""

    workspace: str
    run_id: str


BAD_CALL: Final = "pierhead.bad_call"
"""The error type a worker answers a call with when the arguments do not fit (docs/protocol.md)."""

Recorder = Callable[[Any, CallRecord, datetime.datetime], list[Effect]]
"""Effects that store a call's record in the stream of the run's workspace, given the run."""


@dataclass(slots=True)
class _PendingCall:
    caller: Peer | RemoteCaller | None
    """None once the caller went away: the call runs on, to be recorded, unanswered."""
    request_id: int
    worker: Any
    """The local run (whatever object the router keys runs by) or a :class:`RemoteRun`."""
    record: CallRecord | None = None
    """What the call's record says but its outcome, for a call to a local run."""


def _outcome(ok: bool, error: ActionFailure | None) -> CallOutcome:
    if ok:
        return "ok"
    return "bad_call" if error is not None and error.type == BAD_CALL else "failed"


class ActionCalls:
    def __init__(self, node: str = "local", record: Recorder | None = None) -> None:
        self._node = node
        self._record = record
        self._pending: dict[int, _PendingCall] = {}
        self._ids = itertools.count(1)

    def __len__(self) -> int:
        return len(self._pending)

    def start(
        self,
        caller: Peer | RemoteCaller,
        request_id: int,
        *,
        run: Any,
        peer: Peer,
        run_id: str,
        actions: Collection[str],
        action: str,
        args: dict[str, Any],
        label: str,
        timeout_s: float,
        limit: int,
        now: Now,
    ) -> list[Effect]:
        """Forward the call to the run's ``peer``; the caller is answered later, exactly once."""
        if isinstance(caller, RemoteCaller):
            pass  # counted against the limit on its own node
        elif sum(pending.caller is caller for pending in self._pending.values()) >= limit:
            return self._fail_now(
                caller,
                request_id,
                ErrorCode.RATE_LIMITED,
                f"at most {limit} calls in flight per session",
            )
        if action not in actions:
            offered = ", ".join(sorted(actions)) or "none"
            return self._fail_now(
                caller,
                request_id,
                ErrorCode.NOT_FOUND,
                f"run {run_id} offers no action {action!r} (it offers: {offered})",
            )
        call = next(self._ids)
        record = CallRecord(
            call=call,
            action=action,
            run_id=run_id,
            outcome="ok",
            caller=label,
            args=args,
            started=now.utc,
        )
        self._pending[call] = _PendingCall(caller, request_id, run, record)
        return [
            Send(peer, ActionRequest(call=call, name=action, args=args, caller=label)),
            StartTimer(CallTimeout(call), now.mono + timeout_s),
        ]

    def forward(
        self,
        caller: Peer,
        request_id: int,
        *,
        workspace: str,
        run_id: str,
        action: str,
        args: dict[str, Any],
        label: str,
        timeout_s: float,
        limit: int,
        now: Now,
    ) -> list[Effect]:
        """Send the call to the node that holds the run; its answer comes back as a notice."""
        if sum(pending.caller is caller for pending in self._pending.values()) >= limit:
            return self._fail_now(
                caller,
                request_id,
                ErrorCode.RATE_LIMITED,
                f"at most {limit} calls in flight per session",
            )
        call = next(self._ids)
        self._pending[call] = _PendingCall(caller, request_id, RemoteRun(workspace, run_id))
        notice = CallForward(self._node, call, workspace, run_id, action, args, label, timeout_s)
        return [Tell(notice), StartTimer(CallTimeout(call), now.mono + timeout_s)]

    def answered(
        self,
        run: Any,
        call: int,
        *,
        ok: bool,
        result: Any,
        error: ActionFailure | None,
        now: Now,
    ) -> list[Effect]:
        """The run's worker answered ``call``."""
        pending = self._pending.get(call)
        if pending is None or pending.worker is not run:
            # Late (after a timeout) or not this worker's call: nobody is waiting for it.
            return [Log("action_result_ignored", {"call": call})]
        recorded = self._recorded(pending, _outcome(ok, error), error, now)
        return self._answer(call, ok=ok, result=result, error=error) + recorded

    def remote_answered(self, notice: CallAnswered | CallFailed) -> list[Effect]:
        """The node holding the run answered a call forwarded from here."""
        pending = self._pending.get(notice.call)
        if pending is None or not isinstance(pending.worker, RemoteRun):
            return [Log("action_result_ignored", {"call": notice.call})]
        if isinstance(notice, CallFailed):
            return self._end(notice.call, notice.code, notice.message)
        return self._answer(notice.call, ok=notice.ok, result=notice.result, error=notice.error)

    def worker_gone(self, run: Any, run_id: str, now: Now) -> list[Effect]:
        effects: list[Effect] = []
        for call, pending in list(self._pending.items()):
            if pending.worker is run:
                effects += self._end(call, ErrorCode.NOT_FOUND, f"run {run_id} went away")
                effects += self._recorded(pending, "worker_gone", None, now)
        return effects

    def caller_gone(self, caller: Peer) -> list[Effect]:
        """The caller's session ended. A call to a local run runs on, to be recorded when it
        ends; one forwarded to another node is dropped (that node records it)."""
        effects: list[Effect] = []
        for call, pending in list(self._pending.items()):
            if pending.caller is not caller:
                continue
            if pending.record is not None and self._record is not None:
                pending.caller = None
            else:
                del self._pending[call]
                effects.append(CancelTimer(CallTimeout(call)))
        return effects

    def timed_out(self, call: int, now: Now) -> list[Effect]:
        pending = self._pending.get(call)
        if pending is None:
            return []
        ended = self._end(call, ErrorCode.TIMEOUT, "the worker did not answer in time")
        return ended + self._recorded(pending, "timeout", None, now)

    def _recorded(
        self, pending: _PendingCall, outcome: CallOutcome, error: ActionFailure | None, now: Now
    ) -> list[Effect]:
        """The effects that store the call's record, for a call to a local run."""
        if pending.record is None or self._record is None:
            return []
        record = msgspec.structs.replace(pending.record, outcome=outcome, error=error)
        return self._record(pending.worker, record, now.utc)

    def _answer(
        self, call: int, *, ok: bool, result: Any, error: ActionFailure | None
    ) -> list[Effect]:
        pending = self._pending.pop(call)
        effects: list[Effect] = [CancelTimer(CallTimeout(call))]
        if pending.caller is None:
            pass  # the caller went away: nobody to answer
        elif isinstance(pending.caller, RemoteCaller):
            caller = pending.caller
            effects.append(Tell(CallAnswered(caller.node, caller.call, ok, result, error)))
        else:
            frame = CallResult(id=pending.request_id, ok=ok, result=result, error=error)
            effects.append(Send(pending.caller, frame))
        return effects

    def _end(self, call: int, code: ErrorCode, message: str) -> list[Effect]:
        pending = self._pending.pop(call)
        return [
            CancelTimer(CallTimeout(call)),
            *self._fail_now(pending.caller, pending.request_id, code, message),
        ]

    def _fail_now(
        self, caller: Peer | RemoteCaller | None, request_id: int, code: ErrorCode, message: str
    ) -> list[Effect]:
        if caller is None:
            return []
        if isinstance(caller, RemoteCaller):
            return [Tell(CallFailed(caller.node, caller.call, code, message))]
        return [Send(caller, ErrorReply(code=code, message=message, id=request_id))]
