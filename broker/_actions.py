"""Action calls in flight: a watcher's ``call`` forwarded to a worker, its answer routed back.

Only the caller sees the result. Every call ends exactly once: answered, timed out, or failed
because the worker or the caller went away.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from schema import ActionCall, ActionRequest, ActionResult, CallResult, ErrorCode

if TYPE_CHECKING:
    from ._session import Session
    from ._worker_session import WorkerSession


@dataclass(slots=True)
class _PendingCall:
    caller: Session
    request_id: int
    worker: WorkerSession
    timer: asyncio.TimerHandle


class ActionCalls:
    def __init__(self) -> None:
        self._pending: dict[int, _PendingCall] = {}
        self._ids = itertools.count(1)

    def __len__(self) -> int:
        return len(self._pending)

    def start(
        self, caller: Session, frame: ActionCall, worker: WorkerSession, *, limit: int
    ) -> None:
        """Forward ``frame`` to ``worker``; the caller is answered later, exactly once."""
        if sum(pending.caller is caller for pending in self._pending.values()) >= limit:
            caller.error(
                ErrorCode.RATE_LIMITED,
                f"at most {limit} calls in flight per session",
                request_id=frame.id,
            )
            return
        if frame.action not in worker.actions:
            offered = ", ".join(sorted(worker.actions)) or "none"
            caller.error(
                ErrorCode.NOT_FOUND,
                f"run {worker.run_id} offers no action {frame.action!r} (it offers: {offered})",
                request_id=frame.id,
            )
            return
        call = next(self._ids)
        timer = asyncio.get_running_loop().call_later(frame.timeout_s, self._timed_out, call)
        self._pending[call] = _PendingCall(caller, frame.id, worker, timer)
        worker.send(
            ActionRequest(call=call, name=frame.action, args=frame.args, caller=caller.label)
        )

    def answered(self, worker: WorkerSession, frame: ActionResult) -> None:
        pending = self._pending.get(frame.call)
        if pending is None or pending.worker is not worker:
            # Late (after a timeout) or not this worker's call: nobody is waiting for it.
            worker.log.info("action_result_ignored", call=frame.call)
            return
        del self._pending[frame.call]
        pending.timer.cancel()
        pending.caller.send(
            CallResult(id=pending.request_id, ok=frame.ok, result=frame.result, error=frame.error)
        )

    def worker_gone(self, worker: WorkerSession) -> None:
        for call, pending in list(self._pending.items()):
            if pending.worker is worker:
                self._end(call, ErrorCode.NOT_FOUND, f"run {worker.run_id} went away")

    def caller_gone(self, caller: Session) -> None:
        for call, pending in list(self._pending.items()):
            if pending.caller is caller:
                pending.timer.cancel()
                del self._pending[call]

    def _timed_out(self, call: int) -> None:
        self._end(call, ErrorCode.TIMEOUT, "the worker did not answer in time")

    def _end(self, call: int, code: ErrorCode, message: str) -> None:
        pending = self._pending.pop(call)
        pending.timer.cancel()
        pending.caller.error(code, message, request_id=pending.request_id)
