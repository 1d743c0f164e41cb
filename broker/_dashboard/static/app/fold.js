// The workspace state fold (docs/protocol.md §12), the same rules as schema/_fold.py: pure, no
// DOM, and checked in the browser against the JSON fixtures the Python fold computes
// (tests/schema/fixtures/fold_cases.json).
//
// States and events are plain objects as JSON.parse gives them from the wire. A snapshot from
// `subscribed` goes through stateFromWire once, which fills in the fields the broker omits
// when they hold their default; from then on every state has every field, and the fold never
// mutates a state or an event it is given (a state is shared with the views).
//
// Offsets, epochs and fences are JavaScript numbers: exact up to 2^53, which a stream would
// take centuries to reach.

import { compareInstants } from "./instant.js";

/** Distinct status keys a state keeps; later new keys are ignored (schema/_limits.py). */
export const MAX_STATUS_KEYS = 256;
/** Distinct progress names a state keeps; later new names are ignored. */
export const MAX_PROGRESS_BARS = 64;

/**
 * @typedef {{caught: boolean, has_mutex: boolean, holder: string | null, fence: number,
 *   by: string | null, reason: string | null, mutex_change: string | null,
 *   mutex_by: string | null, grace_until: string | null}} Semaphores
 * @typedef {{name: string, kind?: string, required?: boolean,
 *   default?: string | number | boolean}} ActionParam
 * @typedef {{name: string, description?: string, params?: string[],
 *   signature?: ActionParam[]}} ActionSpec
 * @typedef {{run_id: string, connected: boolean, connected_at: string, last_seen: string,
 *   client: string, actions: ActionSpec[]}} WorkerEntry
 * @typedef {{kind: string, [field: string]: unknown}} Payload
 * @typedef {{workspace: string, offset: number, create_time: string, received_time: string,
 *   payload: Payload, run_id?: string, seq?: number, series?: string}} EventMsg
 * @typedef {{name: string, epoch: number, created: string, last_offset: number,
 *   details: Record<string, string>, semaphores: Semaphores, workers: WorkerEntry[],
 *   status: Record<string, string>, progress: Record<string, Payload>,
 *   updated: string | null, last_event: Payload | null}} WorkspaceState
 */

/**
 * The state of a workspace with no events yet.
 * @param {string} name
 * @param {number} epoch
 * @param {string} created RFC 3339 time
 * @returns {WorkspaceState}
 */
export function newWorkspaceState(name, epoch, created) {
  return stateFromWire({ name, epoch, created });
}

/**
 * A state as the broker sends it (a `subscribed` snapshot entry), with every omitted field at
 * its default.
 * @param {Record<string, any>} wire
 * @returns {WorkspaceState}
 */
export function stateFromWire(wire) {
  return {
    name: wire.name,
    epoch: wire.epoch,
    created: wire.created,
    last_offset: wire.last_offset ?? 0,
    details: wire.details ?? {},
    semaphores: semaphoresOf(wire.semaphores ?? {}),
    workers: (wire.workers ?? []).map(workerFromWire),
    status: wire.status ?? {},
    progress: wire.progress ?? {},
    updated: wire.updated ?? null,
    last_event: wire.last_event ?? null,
  };
}

/**
 * The plain semaphores carried by a `semaphores` event (or a state on the wire).
 * @param {Record<string, any>} value
 * @returns {Semaphores}
 */
export function semaphoresOf(value) {
  return {
    caught: value.caught ?? false,
    has_mutex: value.has_mutex ?? false,
    holder: value.holder ?? null,
    fence: value.fence ?? 0,
    by: value.by ?? null,
    reason: value.reason ?? null,
    mutex_change: value.mutex_change ?? null,
    mutex_by: value.mutex_by ?? null,
    grace_until: value.grace_until ?? null,
  };
}

/** @param {Record<string, any>} wire @returns {WorkerEntry} */
function workerFromWire(wire) {
  return {
    run_id: wire.run_id,
    connected: wire.connected,
    connected_at: wire.connected_at,
    last_seen: wire.last_seen,
    client: wire.client ?? "",
    actions: wire.actions ?? [],
  };
}

/**
 * Apply one event of `state.name`'s stream and return the new state (the same object when the
 * event was already applied).
 * @param {WorkspaceState} state
 * @param {EventMsg} event
 * @returns {WorkspaceState}
 * @throws {Error} when the event belongs to another workspace
 */
export function foldEvent(state, event) {
  if (event.offset <= state.last_offset) {
    return state;
  }
  if (event.workspace !== state.name) {
    throw new Error(`event of workspace ${event.workspace} folded into ${state.name}`);
  }
  const now = event.received_time;
  let workers = state.workers;
  if (event.run_id !== undefined && event.run_id !== null) {
    workers = touch(workers, event.run_id, now);
  }
  const next = { ...state, last_offset: event.offset, updated: now, workers };
  const payload = /** @type {Record<string, any>} */ (event.payload);
  switch (payload.kind) {
    case "status":
      if (Object.hasOwn(state.status, payload.key) || countOf(state.status) < MAX_STATUS_KEYS) {
        next.status = { ...state.status, [payload.key]: payload.value };
      }
      break;
    case "progress":
      if (
        Object.hasOwn(state.progress, payload.name) ||
        countOf(state.progress) < MAX_PROGRESS_BARS
      ) {
        next.progress = { ...state.progress, [payload.name]: payload };
      }
      break;
    case "event":
      next.last_event = payload;
      break;
    case "details":
      next.details = payload.details;
      break;
    case "semaphores":
      next.semaphores = semaphoresOf(payload);
      break;
    case "presence":
      next.workers = applyPresence(workers, payload, now);
      break;
    default:
    // log, scalar, hyperparameters, hardware, custom, call: only the position, time and
    // last_seen.
  }
  return next;
}

/**
 * Apply events in order, as foldEvent one by one.
 * @param {WorkspaceState} state
 * @param {Iterable<EventMsg>} events
 * @returns {WorkspaceState}
 */
export function foldEvents(state, events) {
  let folded = state;
  for (const event of events) {
    folded = foldEvent(folded, event);
  }
  return folded;
}

/**
 * @param {WorkerEntry[]} workers
 * @param {string} runId
 * @param {string} now
 * @returns {WorkerEntry[]}
 */
function touch(workers, runId, now) {
  const index = workers.findIndex((worker) => worker.run_id === runId);
  if (index < 0 || compareInstants(workers[index].last_seen, now) >= 0) {
    return workers;
  }
  const touched = workers.slice();
  touched[index] = { ...workers[index], last_seen: now };
  return touched;
}

/**
 * @param {WorkerEntry[]} workers
 * @param {Record<string, any>} presence
 * @param {string} now
 * @returns {WorkerEntry[]}
 */
function applyPresence(workers, presence, now) {
  const others = workers.filter((worker) => worker.run_id !== presence.run_id);
  if (presence.state === "expired") {
    return others;
  }
  if (presence.state === "connected") {
    const entry = {
      run_id: presence.run_id,
      connected: true,
      connected_at: now,
      last_seen: now,
      client: presence.client ?? "",
      actions: presence.actions ?? [],
    };
    return [...others, entry];
  }
  // Disconnected: the run stays listed, offline and in place, until it returns or expires.
  return workers.map((worker) =>
    worker.run_id === presence.run_id
      ? {
          ...worker,
          connected: false,
          last_seen: compareInstants(worker.last_seen, now) >= 0 ? worker.last_seen : now,
        }
      : worker,
  );
}

/** @param {object} map @returns {number} */
function countOf(map) {
  return Object.keys(map).length;
}
