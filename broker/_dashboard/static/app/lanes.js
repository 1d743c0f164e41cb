// Which lane each workspace of the fleet goes in, and the cells of its row: pure, no DOM.
//
// The cells and the filter are `pierhead watch`'s (pierhead/_console_view.py ConsoleModel,
// checked against fixtures that the Python model computes: tests/dashboard/console_fixtures.py).
// The lanes build on its lane rule (caught / active: a worker connected / idle):
//   - Needs attention: caught, the last event is an error, the mutex is held by a run that is
//     not connected, or a request of this page about it failed (a refused catch, a failed
//     action);
//   - Active: otherwise, a worker is connected;
//   - Quiet: otherwise.

/** @typedef {import("./fold.js").WorkspaceState} WorkspaceState */
/** @typedef {"attention" | "active" | "quiet"} Lane */

/** The lanes, in screen order. @type {Lane[]} */
export const LANES = ["attention", "active", "quiet"];

/** @type {Record<Lane, string>} */
export const LANE_TITLES = { attention: "Needs attention", active: "Active", quiet: "Quiet" };

/**
 * The console's lane (ConsoleModel lane_of).
 * @param {WorkspaceState} state
 * @returns {"caught" | "active" | "idle"}
 */
export function consoleLaneOf(state) {
  if (state.semaphores.caught) {
    return "caught";
  }
  return state.workers.some((worker) => worker.connected) ? "active" : "idle";
}

/**
 * Why a workspace needs attention (empty when it does not).
 * @param {WorkspaceState} state
 * @param {{message: string} | undefined} [failure] a failed request of this page about it
 * @returns {string[]}
 */
export function attentionReasons(state, failure) {
  const reasons = [];
  const semaphores = state.semaphores;
  if (semaphores.caught) {
    reasons.push("caught");
  }
  if (state.last_event !== null && state.last_event.severity === "error") {
    reasons.push("last event is an error");
  }
  if (semaphores.has_mutex) {
    const holder = state.workers.find((worker) => worker.run_id === semaphores.holder);
    if (holder === undefined || !holder.connected) {
      reasons.push("mutex held by a worker that is gone");
    }
  }
  if (failure !== undefined) {
    reasons.push("request failed");
  }
  return reasons;
}

/**
 * @param {WorkspaceState} state
 * @param {{message: string} | undefined} [failure]
 * @returns {Lane}
 */
export function laneOf(state, failure) {
  if (attentionReasons(state, failure).length > 0) {
    return "attention";
  }
  return consoleLaneOf(state) === "active" ? "active" : "quiet";
}

/**
 * Whether a name passes the filter (ConsoleModel.matches): a shell glob when it holds `*`, `?`
 * or `[`, else a substring; case-insensitive either way.
 * @param {string} name
 * @param {string} filter
 */
export function matches(name, filter) {
  if (!filter) {
    return true;
  }
  if (/[*?[]/.test(filter)) {
    return globToRegExp(filter.toLowerCase()).test(name.toLowerCase());
  }
  return name.toLowerCase().includes(filter.toLowerCase());
}

/**
 * Python's fnmatch.translate for `*`, `?`, `[seq]` and `[!seq]`, anchored.
 * @param {string} pattern
 * @returns {RegExp}
 */
export function globToRegExp(pattern) {
  let source = "";
  for (let index = 0; index < pattern.length; index += 1) {
    const char = pattern[index];
    if (char === "*") {
      source += "[\\s\\S]*";
    } else if (char === "?") {
      source += "[\\s\\S]";
    } else if (char === "[") {
      const end = pattern.indexOf("]", index + 2);
      if (end < 0) {
        source += "\\[";
        continue;
      }
      let set = pattern.slice(index + 1, end).replace(/\\/g, "\\\\");
      if (set.startsWith("!")) {
        set = `^${set.slice(1)}`;
      } else if (set.startsWith("^")) {
        set = `\\${set}`;
      }
      source += `[${set}]`;
      index = end;
    } else {
      source += char.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
    }
  }
  return new RegExp(`^${source}$`);
}

/**
 * The visible workspaces by lane, each lane sorted by name.
 * @param {Iterable<WorkspaceState>} states
 * @param {{filter?: string, failures?: Map<string, {message: string}>}} [options]
 * @returns {Record<Lane, WorkspaceState[]>}
 */
export function fleetLanes(states, { filter = "", failures = new Map() } = {}) {
  /** @type {Record<Lane, WorkspaceState[]>} */
  const lanes = { attention: [], active: [], quiet: [] };
  const sorted = [...states].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const state of sorted) {
    if (matches(state.name, filter)) {
      lanes[laneOf(state, failures.get(state.name))].push(state);
    }
  }
  return lanes;
}

/**
 * The selection after a move (ConsoleModel._move): clamped to the visible list.
 * @param {string[]} visible names in screen order
 * @param {string | null} selected
 * @param {number} step
 * @returns {string | null}
 */
export function moveSelection(visible, selected, step) {
  if (visible.length === 0) {
    return null;
  }
  const current = selected !== null ? visible.indexOf(selected) : -1;
  const index = current < 0 ? 0 : current;
  return visible[Math.max(0, Math.min(visible.length - 1, index + step))];
}

/**
 * The selected workspace: the one chosen if still visible, else the first (ConsoleModel).
 * @param {string[]} visible
 * @param {string | null} chosen
 */
export function selectedOf(visible, chosen) {
  if (chosen !== null && visible.includes(chosen)) {
    return chosen;
  }
  return visible.length > 0 ? visible[0] : null;
}

/**
 * @typedef {{name: string, workers: string, host: string,
 *   progress: {current: number, total: number | null, label: string} | null,
 *   mutex: string, caught: string, event: string, severity: string}} RowCells
 */

/**
 * A row's cells as the console computes them (ConsoleModel `_row`), less the age.
 * @param {WorkspaceState} state
 * @returns {RowCells}
 */
export function rowCells(state) {
  const semaphores = state.semaphores;
  const workers = state.workers.map((worker) =>
    worker.connected ? worker.run_id : `${worker.run_id} (offline)`,
  );
  const host = state.details.current_host || state.status.current_host || "";
  const mutex = semaphores.has_mutex ? `${semaphores.holder || "?"} fence ${semaphores.fence}` : "";
  let caught = "";
  if (semaphores.caught) {
    caught = semaphores.reason || "no reason given";
    if (semaphores.by) {
      caught = `${caught} (by ${semaphores.by})`;
    }
  }
  const lastEvent = state.last_event;
  return {
    name: state.name,
    workers: workers.join(", "),
    host,
    progress: progressOf(state),
    mutex,
    caught,
    event: lastEvent === null ? "" : String(lastEvent.message ?? ""),
    severity: lastEvent === null ? "info" : String(lastEvent.severity ?? "info"),
  };
}

/**
 * The progress a row shows: the details' host counts, else the first progress bar.
 * @param {WorkspaceState} state
 * @returns {{current: number, total: number | null, label: string} | null}
 */
export function progressOf(state) {
  const { progress_hosts_completed: completed, progress_hosts_total: total } = state.details;
  if (completed !== undefined && total !== undefined) {
    const current = pythonFloat(completed);
    const all = pythonFloat(total);
    if (current !== null && all !== null) {
      return { current, total: all, label: "hosts" };
    }
  }
  for (const [name, bar] of Object.entries(state.progress)) {
    return { current: Number(bar.current), total: bar.total == null ? null : Number(bar.total), label: name };
  }
  return null;
}

/**
 * `X/Y` as the console writes it (Python's `:g`).
 * @param {number} current
 * @param {number | null} total
 */
export function fraction(current, total) {
  return total === null ? formatG(current) : `${formatG(current)}/${formatG(total)}`;
}

/**
 * How long ago, in the largest whole unit: `42s`, `3m`, `5h`, `2d` (the console's `age`).
 * @param {number} momentMs
 * @param {number} nowMs
 */
export function age(momentMs, nowMs) {
  const seconds = Math.max(0, Math.floor((nowMs - momentMs) / 1000));
  for (const [unit, size] of /** @type {[string, number][]} */ ([
    ["d", 86400],
    ["h", 3600],
    ["m", 60],
  ])) {
    if (seconds >= size) {
      return `${Math.floor(seconds / size)}${unit}`;
    }
  }
  return `${seconds}s`;
}

/** @param {number} value */
function formatG(value) {
  if (!Number.isFinite(value)) {
    return String(value);
  }
  const exponent = value === 0 ? 0 : Math.floor(Math.log10(Math.abs(value)));
  if (exponent < -4 || exponent >= 6) {
    const [mantissa, power] = value.toExponential(5).split("e");
    const trimmed = mantissa.includes(".") ? mantissa.replace(/\.?0+$/, "") : mantissa;
    const sign = power.startsWith("-") ? "-" : "+";
    const digits = power.replace(/^[+-]/, "").padStart(2, "0");
    return `${trimmed}e${sign}${digits}`;
  }
  return String(Number(value.toPrecision(6)));
}

/**
 * Python's float() of a text, or null where it raises (only plain decimal numbers here).
 * @param {string} text
 */
function pythonFloat(text) {
  const trimmed = String(text).trim().replace(/_/g, "");
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(trimmed)) {
    return null;
  }
  return Number(trimmed);
}
