"""Frames from workers: publish, details, catch, the mutex and action results."""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar, Final

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
    WorkspaceDetails,
)

from ._limits import PublishPacer
from ._routing import Run
from ._session import Handler, Session, SessionContext
from ._workspace import Workspace

PACING_WINDOW_BATCHES: Final = 16
"""Full batches a paced worker may have unacknowledged beyond its burst before it is closed
with 4029: the SDK's default in-flight window, so that an SDK worker is only ever paced."""


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
        self.live_run: Run | None = None
        """What the broker knows this connection by, once it has started it."""
        config = self.broker.config
        # A full batch always fits a rested bucket, however low the rate.
        burst = max(config.max_events_per_s, config.max_batch)
        self._pacer = PublishPacer(
            config.max_events_per_s,
            burst=burst,
            window=PACING_WINDOW_BATCHES * config.max_batch,
            now=time.monotonic(),
        )
        self._durable_seq = 0
        """The highest seq of this run that is durable (acknowledged or held back)."""
        self._acked_seq = 0
        """The highest seq acknowledged to this session."""
        self._ack_timer: asyncio.TimerHandle | None = None

    @property
    def self_named(self) -> str:
        return self.run_id

    def started(self, details: WorkspaceDetails | None) -> None:
        """Register with the broker; the ``welcome`` has been queued."""
        self.live_run = self.broker.worker_started(
            self,
            self.workspace,
            self.run_id,
            client=self.client,
            actions=list(self.actions.values()),
            details=details,
        )

    @property
    def routed(self) -> Run:
        """The broker's handle on this connection; frames are handled only after ``started``."""
        assert self.live_run is not None, "a frame was handled before the session started"
        return self.live_run

    def ended(self) -> None:
        if self._ack_timer is not None:
            self._ack_timer.cancel()
        if self.live_run is not None:
            self.broker.worker_ended(self.live_run)

    def send_ack(self, seq: int) -> None:
        """Acknowledge up to ``seq`` (durable), as far as the pacing lets it go now."""
        self._durable_seq = max(self._durable_seq, seq)
        self._release_acks()

    def _ack_due(self) -> None:
        self._ack_timer = None
        self._release_acks()

    def _release_acks(self) -> None:
        ackable = self._pacer.ackable(self._durable_seq, time.monotonic())
        if ackable > self._acked_seq:
            self._acked_seq = ackable
            self.send(Ack(seq=ackable))
        due = self._pacer.next_due()
        if ackable < self._durable_seq and due is not None and self._ack_timer is None:
            loop = asyncio.get_running_loop()
            self._ack_timer = loop.call_later(due - time.monotonic(), self._ack_due)

    def on_publish(self, frame: Publish) -> None:
        if len(frame.events) > self.broker.config.max_batch:
            self.error(
                ErrorCode.TOO_LARGE,
                f"{len(frame.events)} events in one publish; the limit is "
                f"{self.broker.config.max_batch}",
                detail={"seq": frame.seq},
            )
            return
        paced = self._pacer.paced
        if not self._pacer.publish(frame.seq, len(frame.events), time.monotonic()):
            self.log.warning("rate_limited", events=len(frame.events))
            self.error(
                ErrorCode.RATE_LIMITED,
                f"more than {self._pacer.window:g} events beyond the rate of "
                f"{self._pacer.rate:g} events/s unacknowledged; wait for acks",
                detail={"seq": frame.seq},
            )
            self.close_after_flush(CloseCode.RATE_LIMITED, "publishing too fast")
            return
        if self._pacer.paced > paced:
            self.broker.counters["acks_paced"] += 1
            if paced == 0:
                self.log.info("publish_paced", rate=self.broker.config.max_events_per_s)
        self.broker.publish(self.routed, frame)

    def on_details(self, frame: SetDetails) -> None:
        self.broker.set_details(self.routed, frame.details, frame.id)

    def on_catch(self, frame: Catch) -> None:
        if frame.workspace not in (None, self.workspace.name):
            self.error(
                ErrorCode.FORBIDDEN,
                "a worker catches only its own workspace",
                request_id=frame.id,
            )
            return
        self.broker.set_caught(
            self, frame.id, self.workspace, True, by=self.label, reason=frame.reason
        )

    def on_mutex_acquire(self, frame: MutexAcquire) -> None:
        self.broker.mutex_acquire(self.routed, frame)

    def on_mutex_release(self, frame: MutexRelease) -> None:
        self.broker.mutex_release(self.routed, frame)

    def on_action_result(self, frame: ActionResult) -> None:
        self.broker.action_result(self.routed, frame)

    handlers: ClassVar[dict[type[Any], Handler]] = {
        Publish: on_publish,
        SetDetails: on_details,
        Catch: on_catch,
        MutexAcquire: on_mutex_acquire,
        MutexRelease: on_mutex_release,
        ActionResult: on_action_result,
    }
