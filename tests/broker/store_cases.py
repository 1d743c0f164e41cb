"""What the tests of every :class:`~broker._store.Store` share: events and commits to store,
the history cases with their expected pages, and a model of ``history`` and ``read`` that a
store must match (SQLite in test_sqlite_store, Redis in test_redis_store)."""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Sequence
from typing import Final

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import schema
from broker._notify import Notification
from broker._store import Commit, HistoryFilter, Store, StoredWorkspace
from schema import EventMsg, PayloadKind, WorkspaceState

NAME: Final = "ws"
T0: Final = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
MINUTE: Final = datetime.timedelta(minutes=1)
LONG_AGO: Final = datetime.timedelta(days=3650)

HISTORY_KINDS: list[PayloadKind] = ["event", "log", "scalar", "status"]


def make_payload(kind: PayloadKind) -> schema.Payload:
    match kind:
        case "event":
            return schema.WorkspaceEvent(message="milestone")
        case "scalar":
            return schema.Scalar(name="loss", value=0.5)
        case "status":
            return schema.Status(key="phase", value="train")
        case "progress":
            return schema.Progress(name="epoch", current=1.0)
        case _:
            return schema.LogRecord(message="a line")


def make_event(
    offset: int,
    *,
    workspace: str = NAME,
    kind: PayloadKind = "log",
    series: str | None = None,
    run_id: str | None = None,
    seq: int | None = None,
    received: datetime.datetime | None = None,
) -> EventMsg:
    return EventMsg(
        workspace=workspace,
        offset=offset,
        create_time=T0,
        received_time=T0 + offset * MINUTE if received is None else received,
        payload=make_payload(kind),
        run_id=run_id,
        seq=seq,
        series=series,
    )


def fold(name: str, epoch: int, events: Sequence[EventMsg]) -> WorkspaceState:
    return schema.fold_events(schema.new_workspace_state(name, epoch=epoch, created=T0), events)


def batch(
    name: str,
    epoch: int,
    events: Sequence[EventMsg],
    *,
    before: Sequence[EventMsg] = (),
    run_seqs: dict[str, int] | None = None,
    deleted: Sequence[tuple[str, int]] = (),
) -> Commit:
    """A commit of ``events`` to one workspace whose earlier events were ``before``."""
    return Commit(
        events=events,
        states={(name, epoch): fold(name, epoch, [*before, *events])},
        run_seqs={(name, epoch, run): seq for run, seq in (run_seqs or {}).items()},
        deleted=deleted,
    )


def offsets(events: Sequence[EventMsg]) -> list[int]:
    return [event.offset for event in events]


def by_key(loaded: list[StoredWorkspace]) -> dict[tuple[str, int], StoredWorkspace]:
    return {(item.state.name, item.state.epoch): item for item in loaded}


def ten_events() -> list[EventMsg]:
    """Offsets 1-10 of :data:`NAME`: odd ones are logs of series "a" by run r1, even ones
    scalars of "b" (what :data:`HISTORY_CASES` are about)."""
    return [
        make_event(n, kind="log", series="a", run_id="r1", seq=n)
        if n % 2
        else make_event(n, kind="scalar", series="b")
        for n in range(1, 11)
    ]


HISTORY_CASES: Final = [
    # Newest first without ``after``.
    (HistoryFilter(NAME, 1, limit=3), [10, 9, 8], True),
    (HistoryFilter(NAME, 1, limit=9), [10, 9, 8, 7, 6, 5, 4, 3, 2], True),
    (HistoryFilter(NAME, 1, limit=10), [10, 9, 8, 7, 6, 5, 4, 3, 2, 1], False),
    (HistoryFilter(NAME, 1, limit=11), [10, 9, 8, 7, 6, 5, 4, 3, 2, 1], False),
    (HistoryFilter(NAME, 1, before=5, limit=3), [4, 3, 2], True),
    (HistoryFilter(NAME, 1, before=4, limit=3), [3, 2, 1], False),
    (HistoryFilter(NAME, 1, before=1), [], False),
    # Oldest first with ``after``, below ``before`` if given.
    (HistoryFilter(NAME, 1, after=6, limit=3), [7, 8, 9], True),
    (HistoryFilter(NAME, 1, after=7, limit=3), [8, 9, 10], False),
    (HistoryFilter(NAME, 1, after=10), [], False),
    (HistoryFilter(NAME, 1, after=2, before=6, limit=3), [3, 4, 5], False),
    (HistoryFilter(NAME, 1, after=2, before=6, limit=2), [3, 4], True),
    (HistoryFilter(NAME, 1, after=0, before=11, limit=10), list(range(1, 11)), False),
    # Filters, alone and together.
    (HistoryFilter(NAME, 1, kinds=["log"], limit=5), [9, 7, 5, 3, 1], False),
    (HistoryFilter(NAME, 1, kinds=["log"], limit=4), [9, 7, 5, 3], True),
    (HistoryFilter(NAME, 1, kinds=["scalar", "log"], limit=3), [10, 9, 8], True),
    (HistoryFilter(NAME, 1, kinds=["event"]), [], False),
    (HistoryFilter(NAME, 1, kinds=[]), [], False),
    (HistoryFilter(NAME, 1, series="b", after=4), [6, 8, 10], False),
    (HistoryFilter(NAME, 1, series="c"), [], False),
    (HistoryFilter(NAME, 1, run_id="r1", before=9, limit=2), [7, 5], True),
    (HistoryFilter(NAME, 1, run_id="r1", kinds=["log"], series="a", after=5), [7, 9], False),
    (HistoryFilter(NAME, 1, run_id="r1", series="b"), [], False),
    (
        HistoryFilter(NAME, 1, kinds=["scalar"], series="b", after=1, before=9),
        [2, 4, 6, 8],
        False,
    ),
    # Unknown workspace or epoch.
    (HistoryFilter("unknown", 1), [], False),
    (HistoryFilter(NAME, 2), [], False),
]
"""(query, the offsets of the page, whether more match) over :func:`ten_events`."""

history_cases = pytest.mark.parametrize(("query", "expected", "more"), HISTORY_CASES)


def model_history(events: Sequence[EventMsg], query: HistoryFilter) -> tuple[list[EventMsg], bool]:
    """HistoryQuery's rules, written as plainly as possible."""
    matching = [
        event
        for event in events
        if (query.kinds is None or event.payload.__struct_config__.tag in query.kinds)
        and (query.series is None or event.series == query.series)
        and (query.run_id is None or event.run_id == query.run_id)
        and (query.before is None or event.offset < query.before)
        and (query.after is None or event.offset > query.after)
    ]
    if query.after is None:
        matching.reverse()
    return matching[: query.limit], len(matching) > query.limit


event_shapes = st.tuples(
    st.sampled_from(HISTORY_KINDS),
    st.sampled_from([None, "a", "b"]),
    st.sampled_from([None, "r1", "r2"]),
)
offset_bounds = st.none() | st.integers(0, 32)


def check_history_and_read_against_the_model(store: Store, *, examples: int = 150) -> None:
    """Commits of random sizes into a fresh workspace per example and a retention cut at a
    random offset, then ``read`` and ``history`` pages of every shape, each against
    :func:`model_history`. With small chunks, pages start, stop and get cut anywhere inside a
    chunk."""
    workspace_names = (f"w{n}" for n in itertools.count())

    @settings(max_examples=examples, deadline=None)
    @given(shapes=st.lists(event_shapes, max_size=30), data=st.data())
    def check(
        shapes: list[tuple[PayloadKind, str | None, str | None]], data: st.DataObject
    ) -> None:
        name = next(workspace_names)
        events = [
            make_event(offset, workspace=name, kind=kind, series=series, run_id=run_id)
            for offset, (kind, series, run_id) in enumerate(shapes, start=1)
        ]
        cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(events) - 1)), max_size=4)))
        for start, end in itertools.pairwise([0, *cuts, len(events)]):
            if start < end:
                store.commit(batch(name, 1, events[start:end], before=events[:start]))
        keep = data.draw(st.integers(0, len(events) + 1))
        store.trim(max_events=keep, max_age=LONG_AGO, now=T0)
        events = events[len(events) - min(keep, len(events)) :]
        after = data.draw(offset_bounds) or 0
        limit = data.draw(st.integers(1, 12))
        assert store.read(name, 1, after, limit) == [e for e in events if e.offset > after][:limit]
        for _ in range(5):
            query = HistoryFilter(
                name,
                1,
                before=data.draw(offset_bounds),
                after=data.draw(offset_bounds),
                limit=data.draw(st.integers(1, 12)),
                kinds=data.draw(st.none() | st.lists(st.sampled_from(HISTORY_KINDS), max_size=3)),
                series=data.draw(st.sampled_from([None, "a", "b"])),
                run_id=data.draw(st.sampled_from([None, "r1", "r2"])),
            )
            assert store.history(query) == model_history(events, query)

    check()


def note(
    offset: int | None,
    *,
    sink: str = "slack",
    workspace: str = NAME,
    epoch: int = 1,
    event: EventMsg | None = None,
) -> Notification:
    """A notification of the event at ``offset`` (a stall's when ``None``), keyed as the
    rules key them: the same event and sink give the same key."""
    return Notification(
        key=f"{workspace}/{epoch}/{offset if offset is not None else 'stall'}/{sink}",
        sink=sink,
        trigger="event" if offset is not None else "stalled",
        workspace=workspace,
        epoch=epoch,
        at=T0,
        summary=f"{workspace} said {offset}",
        coalesce=workspace,
        offset=offset,
        severity="error",
        event=event,
    )
