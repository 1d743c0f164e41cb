// The audit of a workspace: who caught, released, took or lost its mutex, read from the
// `semaphores` events of its stream. Pure: events in, entries out.
//
// What the stream can and cannot say: a `semaphores` event carries the complete semaphores
// after a change, with `by`/`reason` of the latest catch or release (the token's name when
// auth is on). A change of mutex holder keeps the old `by`, so who broke a mutex, and whether
// it was released, broken or expired, is not on the stream; action calls are not stored as
// events at all. The entries say exactly what the stream says and no more.

import { semaphoresOf } from "./fold.js";

/**
 * @typedef {import("./fold.js").Semaphores} Semaphores
 * @typedef {import("./fold.js").EventMsg} EventMsg
 * @typedef {{offset: number, time: string, what: string, by: string | null,
 *   reason: string | null, holder: string | null, fence: number}} AuditEntry
 */

/**
 * The audit entries of `events` (any kinds; only `semaphores` count), oldest first.
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
    if (event.payload.kind !== "semaphores") {
      continue;
    }
    const next = semaphoresOf(event.payload);
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
    previous = next;
  }
  return entries;
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
