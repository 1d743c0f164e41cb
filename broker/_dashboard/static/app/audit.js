// The audit of a workspace: who caught, released, took, freed or broke its mutex, and who
// called which action, read from the `semaphores` and `call` events of its stream. Pure:
// events in, entries out.
//
// A `semaphores` event carries the complete semaphores after a change: `by`/`reason` of the
// latest catch or release, and `mutex_change`/`mutex_by` naming what this change did to the
// mutex and who did it (docs/protocol.md §9). Events from a broker before those fields have
// none; their mutex changes are told by comparing holders, without who. A `call` event is one
// action call's ending: caller, action, run, arguments, outcome.

import { semaphoresOf } from "./fold.js";

/**
 * @typedef {import("./fold.js").Semaphores} Semaphores
 * @typedef {import("./fold.js").EventMsg} EventMsg
 * @typedef {{offset: number, time: string, what: string, by: string | null,
 *   reason: string | null, holder: string | null, fence: number,
 *   call?: {action: string, run_id: string, args: Record<string, unknown>, outcome: string,
 *     error: {type: string, message?: string} | null}}} AuditEntry
 */

/** What each `mutex_change` is called in the audit. */
export const MUTEX_CHANGES = Object.freeze({
  granted: "mutex granted",
  released: "mutex released",
  broken: "mutex broken",
  expired: "mutex expired",
  holder_left: "mutex holder left",
  holder_back: "mutex holder back",
});

/** The kinds of event the audit reads. */
export const AUDIT_KINDS = Object.freeze(["semaphores", "call"]);

/**
 * The audit entries of `events` (any kinds; only `semaphores` and `call` count), oldest first.
 * `before` is the semaphores in force before the first of them (defaults when unknown).
 * @param {EventMsg[]} events in offset order
 * @param {Semaphores} [before]
 * @returns {AuditEntry[]}
 */
export function auditEntries(events, before = semaphoresOf({})) {
  /** @type {AuditEntry[]} */
  const entries = [];
  let previous = before;
  for (const event of events) {
    const payload = /** @type {Record<string, any>} */ (event.payload);
    if (payload.kind === "call") {
      entries.push(callEntry(event, payload));
      continue;
    }
    if (payload.kind !== "semaphores") {
      continue;
    }
    const next = semaphoresOf(payload);
    const named = next.mutex_change === null ? undefined : MUTEX_CHANGES[/** @type {keyof typeof MUTEX_CHANGES} */ (next.mutex_change)];
    if (named !== undefined) {
      entries.push({
        offset: event.offset,
        time: event.received_time,
        what: named,
        by: next.mutex_by,
        reason: next.grace_until === null ? null : `lease ends ${next.grace_until}`,
        holder: next.holder ?? previous.holder,
        fence: next.fence,
      });
    } else {
      for (const what of changes(previous, next)) {
        const aboutCatch = what === "caught" || what === "released" || what === "caught again";
        entries.push({
          offset: event.offset,
          time: event.received_time,
          what,
          by: aboutCatch ? next.by : null,
          reason: aboutCatch ? next.reason : null,
          holder: what === "mutex freed" ? previous.holder : next.holder,
          fence: next.fence,
        });
      }
    }
    previous = next;
  }
  return entries;
}

/**
 * @param {EventMsg} event
 * @param {Record<string, any>} payload a `call` payload
 * @returns {AuditEntry}
 */
function callEntry(event, payload) {
  const error = payload.error ?? null;
  return {
    offset: event.offset,
    time: event.received_time,
    what: "call",
    by: payload.caller || null,
    reason: error === null ? payload.outcome : `${payload.outcome}: ${error.type}: ${error.message ?? ""}`,
    holder: null,
    fence: 0,
    call: {
      action: payload.action,
      run_id: payload.run_id,
      args: payload.args ?? {},
      outcome: payload.outcome,
      error,
    },
  };
}

/**
 * What changed between two semaphores, in words the audit shows.
 * @param {Semaphores} previous
 * @param {Semaphores} next
 * @returns {string[]}
 */
export function changes(previous, next) {
  /** @type {string[]} */
  const found = [];
  if (!previous.caught && next.caught) {
    found.push("caught");
  } else if (previous.caught && !next.caught) {
    found.push("released");
  }
  if (previous.holder !== next.holder || previous.fence !== next.fence) {
    if (next.holder === null) {
      found.push("mutex freed");
    } else if (previous.holder === null) {
      found.push("mutex granted");
    } else {
      found.push("mutex passed");
    }
  }
  if (found.length === 0) {
    // A catch of a caught workspace or a release of a free one: still an operator's act.
    found.push(next.caught ? "caught again" : "released");
  }
  return found;
}
