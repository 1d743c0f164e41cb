"""The event as a worker submits it, and the envelope as the broker stores and delivers it."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

import msgspec

from ._payloads import Payload, WorkerPayload
from ._types import (
    Label,
    Offset,
    PayloadKind,
    Seq,
    StampedRunId,
    StampedWorkspaceName,
    UtcDateTime,
)


class Event(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """One event inside a ``publish`` frame; the broker fills in the rest of the envelope."""

    payload: WorkerPayload
    create_time: UtcDateTime
    series: Label | None = None


class EventMsg(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """An event as stored and delivered: its place in the workspace stream and who sent it.

    ``run_id`` and ``seq`` are absent on events the broker made itself.
    """

    workspace: StampedWorkspaceName
    offset: Offset
    create_time: UtcDateTime
    received_time: UtcDateTime
    payload: Payload
    run_id: StampedRunId | None = None
    seq: Seq | None = None
    series: Label | None = None

    @property
    def kind(self) -> PayloadKind:
        """The payload's kind, as ``kind`` on the wire: what ``kinds`` filters match."""
        return self.payload.__struct_config__.tag  # type: ignore[return-value]


def stamp(
    events: Sequence[Event],
    *,
    workspace: str,
    run_id: str,
    first_offset: int,
    first_seq: int,
    received_time: datetime.datetime,
) -> list[EventMsg]:
    """A worker's events in their envelopes, numbered from ``first_offset`` and ``first_seq``:
    what the broker stores and delivers for a ``publish`` frame."""
    return [
        EventMsg(
            workspace=workspace,
            offset=first_offset + index,
            create_time=event.create_time,
            received_time=received_time,
            payload=event.payload,
            run_id=run_id,
            seq=first_seq + index,
            series=event.series,
        )
        for index, event in enumerate(events)
    ]
