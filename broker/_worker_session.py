"""Frames from workers: publish, details, catch, the mutex and action results."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar

from schema import (
    Ack,
    ActionResult,
    ActionSpec,
    Catch,
    CloseCode,
    ErrorCode,
    MutexAcquire,
    MutexRelease,
    Publish,
    Role,
    SetDetails,
)

from ._limits import TokenBucket
from ._session import Handler, Session, SessionContext
from ._workspace import Workspace

if TYPE_CHECKING:
    pass


class WorkerSession(Session):
    role: ClassVar[str] = "worker"
    catch_role: ClassVar[Role] = "worker"

    def __init__(
        self,
        context: SessionContext,
        *,
        workspace: Workspace,
        run_id: str,
        actions: list[ActionSpec],
    ) -> None:
        super().__init__(context)
        self.workspace = workspace
        self.run_id = run_id
        self.actions = {action.name: action for action in actions}
        self.replaced = False
        config = self.broker.config
        # A full batch always fits a rested bucket, however low the rate.
        burst = max(config.max_events_per_s, config.max_batch)
        self._bucket = TokenBucket(config.max_events_per_s, burst=burst, now=time.monotonic())

    @property
    def self_named(self) -> str:
        return self.run_id

    def ended(self) -> None:
        self.broker.worker_ended(self)

    def send_ack(self, seq: int) -> None:
        self.send(Ack(seq=seq))

    def on_publish(self, frame: Publish) -> None:
        if len(frame.events) > self.broker.config.max_batch:
            self.error(
                ErrorCode.TOO_LARGE,
                f"{len(frame.events)} events in one publish; the limit is "
                f"{self.broker.config.max_batch}",
                detail={"seq": frame.seq},
            )
            return
        if not self._bucket.take(len(frame.events), time.monotonic()):
            self.log.warning("rate_limited", events=len(frame.events))
            self.error(
                ErrorCode.RATE_LIMITED,
                f"more than {self.broker.config.max_events_per_s:g} events/s; slow down",
                detail={"seq": frame.seq},
            )
            self.close_after_flush(CloseCode.RATE_LIMITED, "publishing too fast")
            return
        self.broker.publish(self, frame)

    def on_details(self, frame: SetDetails) -> None:
        done = self.broker.set_details(self.workspace, frame.details)
        self.reply_when_durable(done, frame.id)

    def on_catch(self, frame: Catch) -> None:
        if frame.workspace not in (None, self.workspace.name):
            self.error(
                ErrorCode.FORBIDDEN,
                "a worker catches only its own workspace",
                request_id=frame.id,
            )
            return
        done = self.broker.set_caught(self.workspace, True, by=self.label, reason=frame.reason)
        self.reply_when_durable(done, frame.id)

    def on_mutex_acquire(self, frame: MutexAcquire) -> None:
        self.broker.mutex_acquire(self, frame)

    def on_mutex_release(self, frame: MutexRelease) -> None:
        self.broker.mutex_release(self, frame)

    def on_action_result(self, frame: ActionResult) -> None:
        self.broker.calls.answered(self, frame)

    handlers: ClassVar[dict[type[Any], Handler]] = {
        Publish: on_publish,
        SetDetails: on_details,
        Catch: on_catch,
        MutexAcquire: on_mutex_acquire,
        MutexRelease: on_mutex_release,
        ActionResult: on_action_result,
    }
