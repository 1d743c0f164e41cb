"""The watch console's view model, without I/O: what ``pierhead watch`` shows, and its keys.

``ConsoleModel`` is fed with the watcher's workspace states, the deliveries of its
subscription and its connection state; keys (already decoded by ``decode_keys``) move the
selection, edit the filter or return a ``Command`` for the caller to carry out. Two views of
it: ``render_text`` (plain text, for ``--once`` and for tests) and ``render_rich`` (the live
screen). Lanes are boardwalkd's: *active* (a worker connected, not caught), *caught* and
*idle* (no worker connected).
"""

from __future__ import annotations

import datetime
import fnmatch
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import msgspec
from rich import box
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from schema import (
    CallOutcome,
    CallRecord,
    EventMsg,
    LogRecord,
    Presence,
    SemaphoresChange,
    Severity,
    WorkspaceEvent,
    WorkspaceSemaphores,
    WorkspaceState,
    fold_event,
    semaphores_of,
)
from sdk import Missed

Lane = Literal["active", "caught", "idle"]
LANES: tuple[Lane, ...] = ("active", "caught", "idle")
TAIL_SIZE = 200
CATCH_REASON = "from pierhead watch"

SEVERITY_STYLES: dict[str, str] = {
    "info": "",
    "success": "green",
    "warning": "yellow",
    "error": "red",
}
_CONNECTION_STYLES = {
    "connected": "bold green",
    "connecting": "yellow",
    "reconnecting": "bold yellow",
    "closed": "bold red",
}
_LOG_SEVERITY: dict[str, Severity] = {"warning": "warning", "error": "error", "critical": "error"}


@dataclass(frozen=True, slots=True)
class Command:
    """What a key asks the caller to do: catch or release a workspace, or quit."""

    action: Literal["catch", "release", "quit"]
    workspace: str | None = None


@dataclass(frozen=True, slots=True)
class TailLine:
    """One line of the event tail."""

    time: datetime.datetime | None
    """Broker time of the event (None for a notice of missed events)."""
    workspace: str
    text: str
    severity: Severity = "info"


@dataclass(frozen=True, slots=True)
class Row:
    """One workspace as the lanes show it, every cell already text."""

    name: str
    lane: Lane
    workers: str
    host: str
    progress: tuple[float, float | None, str] | None
    """(current, total, label) of the progress shown, if any."""
    mutex: str
    caught: str
    event: str
    severity: Severity
    age: str
    selected: bool

    @property
    def where(self) -> str:
        """Current host and progress as one cell: ``db-4 hosts 3/10``."""
        parts = [self.host] if self.host else []
        if self.progress is not None:
            current, total, label = self.progress
            parts.append(f"{label} {_fraction(current, total)}".strip())
        return " ".join(parts)


def lane_of(state: WorkspaceState) -> Lane:
    if state.semaphores.caught:
        return "caught"
    return "active" if any(worker.connected for worker in state.workers) else "idle"


class ConsoleModel:
    """Everything the console shows, and what its keys change. No I/O, no clock."""

    def __init__(self, pattern: str = "*", *, tail_size: int = TAIL_SIZE) -> None:
        self.pattern = pattern
        self.states: dict[str, WorkspaceState] = {}
        self.tail: deque[TailLine] = deque(maxlen=tail_size)
        self.connection = "connecting"
        self.filter = ""
        self.filter_draft: str | None = None
        """The filter being typed (after ``/``, before Enter); None when not editing."""
        self.notice: tuple[str, Severity] | None = None
        """The outcome of the latest command, shown under the lanes."""
        self._selected: str | None = None
        self._semaphores: dict[str, WorkspaceSemaphores] = {}
        """Per workspace, the semaphores as of the latest delivery: what a change is told from."""

    # Feeding ------------------------------------------------------------------------------

    def update_states(self, states: Mapping[str, WorkspaceState]) -> None:
        """Take the watcher's live states (its snapshot and fold) as they are now."""
        self.states = dict(states)
        for name in [name for name in self._semaphores if name not in states]:
            del self._semaphores[name]
        for name, state in states.items():
            self._semaphores.setdefault(name, state.semaphores)

    def deliver(self, item: EventMsg | Missed) -> None:
        """One delivery of the subscription: folded into its workspace, told in the tail."""
        if isinstance(item, Missed):
            text = f"events {item.from_offset} to {item.to_offset} are gone (retention)"
            self.tail.append(TailLine(None, item.workspace, text, "warning"))
            return
        state = self.states.get(item.workspace)
        previous = self._semaphores.get(item.workspace)
        if previous is None:
            previous = state.semaphores if state is not None else WorkspaceSemaphores()
        if state is not None:
            self.states[item.workspace] = fold_event(state, item)
        line = _describe(item, previous)
        if isinstance(item.payload, SemaphoresChange):
            self._semaphores[item.workspace] = semaphores_of(item.payload)
        if line is not None:
            self.tail.append(line)

    def set_connection(self, state: str) -> None:
        self.connection = str(state)

    # Reading ------------------------------------------------------------------------------

    def matches(self, name: str) -> bool:
        wanted = self.filter
        if not wanted:
            return True
        if any(char in wanted for char in "*?["):
            return fnmatch.fnmatchcase(name.lower(), wanted.lower())
        return wanted.lower() in name.lower()

    def lanes(self) -> dict[Lane, list[WorkspaceState]]:
        """The visible workspaces (after the filter) by lane, each lane sorted by name."""
        lanes: dict[Lane, list[WorkspaceState]] = {lane: [] for lane in LANES}
        for name in sorted(self.states):
            if self.matches(name):
                state = self.states[name]
                lanes[lane_of(state)].append(state)
        return lanes

    def visible(self) -> list[str]:
        """Names of the visible workspaces, in screen order."""
        return [state.name for lane in self.lanes().values() for state in lane]

    @property
    def selected(self) -> str | None:
        """The selected workspace: the one chosen if still visible, else the first."""
        visible = self.visible()
        if self._selected in visible:
            return self._selected
        return visible[0] if visible else None

    def rows(self, now: datetime.datetime) -> dict[Lane, list[Row]]:
        selected = self.selected
        return {
            lane: [_row(state, lane, now, state.name == selected) for state in states]
            for lane, states in self.lanes().items()
        }

    def visible_tail(self) -> list[TailLine]:
        return [line for line in self.tail if self.matches(line.workspace)]

    # Keys ---------------------------------------------------------------------------------

    def press(self, key: str) -> Command | None:
        """Apply one key (a character, or up/down/enter/esc/backspace)."""
        if self.filter_draft is not None:
            self._edit_filter(key)
            return None
        match key:
            case "up" | "k":
                self._move(-1)
            case "down" | "j":
                self._move(1)
            case "c" | "r":
                selected = self.selected
                if selected is not None:
                    return Command("catch" if key == "c" else "release", selected)
                self.notice = ("no workspace selected", "warning")
            case "/":
                self.filter_draft = ""
            case "esc":
                self.filter = ""
            case "q":
                return Command("quit")
        return None

    def _edit_filter(self, key: str) -> None:
        assert self.filter_draft is not None
        match key:
            case "enter":
                self.filter, self.filter_draft = self.filter_draft, None
            case "esc":
                self.filter, self.filter_draft = "", None
            case "backspace":
                self.filter_draft = self.filter_draft[:-1]
            case _ if len(key) == 1 and key.isprintable():
                self.filter_draft += key

    def _move(self, step: int) -> None:
        visible = self.visible()
        if not visible:
            return
        current = self.selected
        index = visible.index(current) if current in visible else 0
        self._selected = visible[max(0, min(len(visible) - 1, index + step))]


# Keys ---------------------------------------------------------------------------------------

_SEQUENCES = {
    "\x1b[A": "up",
    "\x1b[B": "down",
    "\x1b[C": "right",
    "\x1b[D": "left",
    "\x1bOA": "up",
    "\x1bOB": "down",
    "\x1bOC": "right",
    "\x1bOD": "left",
}
_SINGLE = {"\r": "enter", "\n": "enter", "\x7f": "backspace", "\x08": "backspace", "\x1b": "esc"}


def decode_keys(data: bytes) -> list[str]:
    """Keys in one read of a terminal in cbreak mode (a lone ESC is the Esc key)."""
    text = data.decode("utf-8", errors="ignore")
    keys: list[str] = []
    index = 0
    while index < len(text):
        for sequence, name in _SEQUENCES.items():
            if text.startswith(sequence, index):
                keys.append(name)
                index += len(sequence)
                break
        else:
            if text.startswith("\x1b[", index):
                # Another CSI sequence (a function key): skip it whole.
                end = index + 2
                while end < len(text) and not "@" <= text[end] <= "~":
                    end += 1
                index = end + 1
                continue
            char = text[index]
            keys.append(_SINGLE.get(char, char))
            index += 1
    return keys


# Cells --------------------------------------------------------------------------------------


def _row(state: WorkspaceState, lane: Lane, now: datetime.datetime, selected: bool) -> Row:
    semaphores = state.semaphores
    workers = [w.run_id if w.connected else f"{w.run_id} (offline)" for w in state.workers]
    host = state.details.current_host or state.status.get("current_host") or ""
    mutex = f"{semaphores.holder or '?'} fence {semaphores.fence}" if semaphores.has_mutex else ""
    caught = ""
    if semaphores.caught:
        caught = semaphores.reason or "no reason given"
        if semaphores.by:
            caught = f"{caught} (by {semaphores.by})"
    event = ""
    severity: Severity = "info"
    if state.last_event is not None:
        event, severity = state.last_event.message, state.last_event.severity
    return Row(
        name=state.name,
        lane=lane,
        workers=", ".join(workers),
        host=host,
        progress=_progress(state),
        mutex=mutex,
        caught=caught,
        event=event,
        severity=severity,
        age=age(state.updated or state.created, now),
        selected=selected,
    )


def _progress(state: WorkspaceState) -> tuple[float, float | None, str] | None:
    details = state.details
    completed, total = details.progress_hosts_completed, details.progress_hosts_total
    if completed is not None and total is not None:
        try:
            return float(completed), float(total), "hosts"
        except ValueError:
            pass
    for name, progress in state.progress.items():
        return progress.current, progress.total, name
    return None


def _fraction(current: float, total: float | None) -> str:
    return f"{current:g}" if total is None else f"{current:g}/{total:g}"


def age(moment: datetime.datetime, now: datetime.datetime) -> str:
    """How long ago, in the largest whole unit: ``42s``, ``3m``, ``5h``, ``2d``."""
    seconds = max(0, int((now - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _describe(event: EventMsg, previous: WorkspaceSemaphores) -> TailLine | None:
    """The tail line for an event, or None for kinds the tail leaves out (metrics, status)."""
    payload = event.payload
    severity: Severity = "info"
    match payload:
        case WorkspaceEvent(message=text, severity=severity):
            pass
        case LogRecord(message=message, level=level) if level in _LOG_SEVERITY:
            text, severity = f"log: {message}", _LOG_SEVERITY[level]
        case Presence(run_id=run_id, state=presence):
            text = f"worker {run_id} {presence}"
            if presence == "disconnected":
                severity = "warning"
        case SemaphoresChange():
            text, severity = describe_semaphores(previous, semaphores_of(payload))
        case CallRecord():
            text, severity = describe_call(payload)
        case _:
            return None
    return TailLine(event.received_time, event.workspace, text, severity)


_CALL_SEVERITY: dict[CallOutcome, Severity] = {
    "ok": "success",
    "failed": "error",
    "bad_call": "error",
    "timeout": "warning",
    "worker_gone": "warning",
}
_ARGS_JSON = msgspec.json.Encoder()


def describe_call(record: CallRecord) -> tuple[str, Severity]:
    """Who called which action of which run, with what, and how the call ended."""
    arguments = ", ".join(
        f"{name}={_ARGS_JSON.encode(value).decode()}" for name, value in record.args.items()
    )
    caller = f" by {record.caller}" if record.caller else ""
    text = f"call {record.action}({arguments}) of {record.run_id}{caller}: {record.outcome}"
    if record.error is not None:
        text += f" ({record.error.type}: {record.error.message})"
    return text, _CALL_SEVERITY[record.outcome]


def describe_semaphores(
    before: WorkspaceSemaphores, after: WorkspaceSemaphores
) -> tuple[str, Severity]:
    """What a semaphores change did (caught, released, mutex granted...), and how it shows.

    A change that names its mutex change says it; one from a broker before those fields (or a
    catch or release) is told by comparing it with the semaphores before it.
    """
    if after.mutex_change is not None:
        return _describe_mutex_change(before, after)
    by = f" by {after.by}" if after.by else ""
    if after.caught and not before.caught:
        reason = f": {after.reason}" if after.reason else ""
        return f"caught{by}{reason}", "warning"
    if before.caught and not after.caught:
        return f"released{by}", "success"
    if after.has_mutex and (not before.has_mutex or before.holder != after.holder):
        return f"mutex granted to {after.holder} (fence {after.fence})", "info"
    if before.has_mutex and not after.has_mutex:
        return f"mutex released by {before.holder} (fence {before.fence})", "info"
    return "semaphores updated", "info"


def _describe_mutex_change(
    before: WorkspaceSemaphores, after: WorkspaceSemaphores
) -> tuple[str, Severity]:
    fence = f"(fence {after.fence})"
    by = after.mutex_by or "?"
    match after.mutex_change:
        case "granted":
            return f"mutex granted to {after.holder} {fence}", "info"
        case "released":
            return f"mutex released by {by} {fence}", "info"
        case "broken":
            return f"mutex of {before.holder or '?'} broken by {by} {fence}", "warning"
        case "expired":
            return f"mutex of {before.holder or '?'} expired {fence}", "warning"
        case "holder_left":
            until = after.grace_until.strftime("%H:%M:%S") if after.grace_until else "?"
            return f"mutex holder {after.holder} left; the lease ends at {until}", "warning"
        case _:
            return f"mutex holder {after.holder} is back", "info"


# Plain text ---------------------------------------------------------------------------------


def banner(connection: str) -> str:
    return {"reconnecting": "reconnecting…", "connecting": "connecting…"}.get(
        connection, connection
    )


def render_text(
    model: ConsoleModel, width: int, now: datetime.datetime, *, tail_lines: int = 10
) -> str:
    """The whole view as plain text, each line at most ``width`` characters.

    The event tail shows its newest ``tail_lines`` lines, oldest first; 0 leaves it out.
    """
    width = max(width, 40)
    rows = model.rows(now)
    lines = [_header(model, rows)]
    filter_line = _filter_line(model)
    if filter_line:
        lines.append(filter_line)
    for lane in LANES:
        lines.append("")
        lines.append(f"{lane.upper()} ({len(rows[lane])})")
        if not rows[lane]:
            lines.append("    (none)")
            continue
        headers = _headers(lane)
        cells = [_cells(row, lane) for row in rows[lane]]
        marks = ["> " if row.selected else "  " for row in rows[lane]]
        lines.extend(_table(headers, cells, marks, width))
    if tail_lines > 0:
        tail = model.visible_tail()
        lines.append("")
        lines.append(f"EVENTS (last {min(tail_lines, len(tail))} of {len(tail)})")
        lines.extend(_clip(f"  {_tail_text(entry)}", width) for entry in tail[-tail_lines:])
    if model.notice is not None:
        lines.append("")
        lines.append(_clip(model.notice[0], width))
    return "\n".join(_clip(line, width).rstrip() for line in lines) + "\n"


def _header(model: ConsoleModel, rows: Mapping[Lane, list[Row]]) -> str:
    counts = ", ".join(f"{len(rows[lane])} {lane}" for lane in LANES)
    return f"pierhead watch {model.pattern}  [{banner(model.connection)}]  {counts}"


def _filter_line(model: ConsoleModel) -> str:
    if model.filter_draft is not None:
        return f"filter: {model.filter_draft}_  (Enter applies, Esc clears)"
    if model.filter:
        return f"filter: {model.filter}  ({len(model.visible())} of {len(model.states)} shown)"
    return ""


def _headers(lane: Lane) -> list[str]:
    headers = ["WORKSPACE", "WORKERS", "HOST / PROGRESS", "MUTEX", "LAST EVENT", "AGE"]
    if lane == "caught":
        headers.insert(2, "CAUGHT")
    return headers


def _cells(row: Row, lane: Lane) -> list[str]:
    event = f"{row.severity}: {row.event}" if row.event else ""
    cells = [row.name, row.workers or "-", row.where, row.mutex, event, row.age]
    if lane == "caught":
        cells.insert(2, row.caught)
    return cells


def _table(headers: list[str], rows: list[list[str]], marks: list[str], width: int) -> list[str]:
    """Columns sized to their content; the widest shrink first when the line is too long."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    budget = width - 2 - 2 * (len(widths) - 1)
    while sum(widths) > budget and max(widths) > 4:
        widest = widths.index(max(widths))
        widths[widest] -= 1
    lines = ["  " + _join(headers, widths)]
    lines.extend(mark + _join(cells, widths) for mark, cells in zip(marks, rows, strict=True))
    return lines


def _join(cells: Iterable[str], widths: list[int]) -> str:
    return "  ".join(
        _clip(cell, size).ljust(size) for cell, size in zip(cells, widths, strict=True)
    )


def _clip(text: str, size: int) -> str:
    return text if len(text) <= size else text[: max(0, size - 1)] + "…"


def _tail_text(entry: TailLine) -> str:
    return f"{_clock(entry.time)}  {entry.workspace}  {entry.severity:<7}  {entry.text}"


def _clock(time: datetime.datetime | None) -> str:
    return "--:--:--" if time is None else time.astimezone().strftime("%H:%M:%S")


# The live screen ----------------------------------------------------------------------------


def render_rich(model: ConsoleModel, now: datetime.datetime, console: Console) -> RenderableType:
    """The live screen: a header, a table per lane, the event tail filling the rest."""
    rows = model.rows(now)
    upper: list[RenderableType] = [_rich_header(model, rows)]
    upper.extend(_rich_lane(lane, rows[lane]) for lane in LANES)
    footer = _rich_footer(model)
    height = console.size.height
    used = len(console.render_lines(Group(*upper, footer), console.options, pad=False))
    room = max(3, height - used)
    tail = model.visible_tail()[-max(1, room - 2) :]
    text = Text()
    name_width = max((len(entry.workspace) for entry in tail), default=0)
    for index, entry in enumerate(tail):
        if index:
            text.append("\n")
        text.append(f"{_clock(entry.time)}  ", style="dim")
        text.append(f"{entry.workspace:<{name_width}}  ", style="bold")
        text.append(entry.text, style=SEVERITY_STYLES.get(entry.severity, ""))
    text.no_wrap = True
    text.overflow = "ellipsis"
    panel = Panel(text, title="events", title_align="left", height=room, box=box.ROUNDED)
    return Group(*upper, panel, footer)


def _rich_header(model: ConsoleModel, rows: Mapping[Lane, list[Row]]) -> Text:
    text = Text()
    text.append("pierhead watch ", style="bold")
    text.append(model.pattern)
    text.append("  ")
    text.append(f"● {banner(model.connection)}", style=_CONNECTION_STYLES.get(model.connection, ""))
    text.append("  " + ", ".join(f"{len(rows[lane])} {lane}" for lane in LANES), style="dim")
    filter_line = _filter_line(model)
    if filter_line:
        text.append("\n" + filter_line, style="cyan")
    return text


def _rich_lane(lane: Lane, rows: list[Row]) -> RenderableType:
    title = f"{lane.upper()} ({len(rows)})"
    if not rows:
        return Text(title, style="dim")
    table = Table(
        title=title,
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        expand=True,
        pad_edge=False,
    )
    for header in _headers(lane):
        table.add_column(
            header.lower(),
            no_wrap=True,
            overflow="ellipsis",
            ratio=2 if header in ("LAST EVENT", "CAUGHT") else None,
            justify="right" if header == "AGE" else "left",
        )
    for row in rows:
        event = Text(row.event, style=SEVERITY_STYLES.get(row.severity, ""))
        cells: list[RenderableType] = [
            Text(("▶ " if row.selected else "  ") + row.name, style="bold"),
            Text(row.workers or "-"),
            _rich_where(row),
            Text(row.mutex),
            event,
            Text(row.age, style="dim"),
        ]
        if lane == "caught":
            cells.insert(2, Text(row.caught, style="yellow"))
        table.add_row(*cells, style="reverse" if row.selected else None)
    return table


def _rich_where(row: Row) -> RenderableType:
    if row.progress is None:
        return Text(row.host)
    current, total, label = row.progress
    grid = Table.grid(padding=(0, 1))
    if row.host:
        grid.add_column(no_wrap=True)
    grid.add_column(width=10)
    grid.add_column(no_wrap=True)
    cells: list[RenderableType] = [row.host] if row.host else []
    bar = ProgressBar(total=total, completed=current, width=10)
    cells.extend([bar, f"{label} {_fraction(current, total)}".strip()])
    grid.add_row(*cells)
    return grid


def _rich_footer(model: ConsoleModel) -> Text:
    text = Text()
    if model.notice is not None:
        message, severity = model.notice
        text.append(message + "\n", style=SEVERITY_STYLES.get(severity, ""))
    if model.filter_draft is not None:
        text.append("type a filter, Enter applies, Esc clears", style="dim")
    else:
        text.append("↑/↓ select  c catch  r release  / filter  q quit", style="dim")
    return text
