// An in-memory stand-in for the dashboard's BrokerConnection (the contract of app/connection.js)
// for tests of views with fixture data: one store of events per workspace answering `history`
// as the broker does (§6), subscriptions that get a snapshot and then every appended event,
// and requests that are recorded and answered (catch/release become `semaphores` events).

import { foldEvent, newWorkspaceState, semaphoresOf } from "/app/fold.js";

const CREATED = "2026-01-01T00:00:00Z";

/** @param {number} offset @returns {string} a broker time that grows with the offset */
export function timeAt(offset) {
  const seconds = 1_767_225_600 + offset;
  return new Date(seconds * 1000).toISOString().replace(".000Z", ".000001Z");
}

export class FakeConnection extends EventTarget {
  /** @param {{roles?: string[]}} [options] */
  constructor({ roles = ["watcher", "operator", "admin"] } = {}) {
    super();
    this.status = { state: "open", roles, session: "fake", server: "fake", limits: {}, draining: false };
    /** @type {Map<string, {epoch: number, events: any[], retainedFrom: number}>} */
    this.workspaces = new Map();
    /** @type {Set<any>} */
    this.subscriptions = new Set();
    /** @type {any[]} every request frame, in order */
    this.requests = [];
    /** @type {any[]} every history query, in order */
    this.historyQueries = [];
    /** Whether an accepted catch, release or break shows up on the stream at once; a test
     * sets it false to see the page wait for the stream. */
    this.echo = true;
    /** @type {string | null} an error code every request is refused with, when set */
    this.refusal = null;
  }

  /** @param {string} name */
  ensure(name) {
    let workspace = this.workspaces.get(name);
    if (workspace === undefined) {
      workspace = { epoch: 1, events: [], retainedFrom: 1 };
      this.workspaces.set(name, workspace);
    }
    return workspace;
  }

  /**
   * Store events (payloads, with optional envelope fields) and deliver them live.
   * @param {string} name
   * @param {Array<{payload: object, run_id?: string}>} items
   */
  append(name, items) {
    const workspace = this.ensure(name);
    const events = items.map((item) => {
      const offset = workspace.events.length + workspace.retainedFrom;
      const event = {
        workspace: name,
        offset,
        create_time: timeAt(offset),
        received_time: timeAt(offset),
        ...item,
      };
      workspace.events.push(event);
      return event;
    });
    for (const subscription of this.subscriptions) {
      if (subscription.pattern === name) {
        subscription.dispatchEvent(new CustomEvent("events", { detail: { events } }));
      }
    }
    return events;
  }

  /**
   * Drop the oldest stored events up to and including `offset` (retention).
   * @param {string} name
   * @param {number} offset
   */
  retain(name, offset) {
    const workspace = this.ensure(name);
    const drop = offset - workspace.retainedFrom + 1;
    workspace.events.splice(0, drop);
    workspace.retainedFrom = offset + 1;
  }

  /** @param {string} name @returns {object} the live state, folded from every event */
  state(name) {
    const workspace = this.ensure(name);
    return workspace.events.reduce(foldEvent, newWorkspaceState(name, workspace.epoch, CREATED));
  }

  /** @param {{pattern: string, from?: unknown}} options */
  subscribe({ pattern }) {
    const subscription = new EventTarget();
    Object.assign(subscription, {
      pattern,
      cursors: {},
      close: () => this.subscriptions.delete(subscription),
    });
    this.subscriptions.add(subscription);
    queueMicrotask(() => {
      const states = this.workspaces.has(pattern) ? [this.state(pattern)] : [];
      subscription.dispatchEvent(new CustomEvent("snapshot", { detail: { states } }));
    });
    return subscription;
  }

  /** @param {Record<string, any>} query */
  async history(query) {
    this.historyQueries.push(query);
    const workspace = this.ensure(query.workspace);
    const limit = query.limit ?? 100;
    let events = workspace.events.filter(
      (event) =>
        (query.kinds === undefined || query.kinds.includes(event.payload.kind)) &&
        (query.before === undefined || event.offset < query.before) &&
        (query.after === undefined || event.offset > query.after),
    );
    if (query.after === undefined) {
      events = events.reverse();
    }
    return { events: events.slice(0, limit), more: events.length > limit };
  }

  /** @param {Record<string, any>} frame */
  async request(frame) {
    this.requests.push(frame);
    if (this.refusal !== null) {
      const error = new Error(`refused: ${this.refusal}`);
      Object.assign(error, { code: this.refusal });
      throw error;
    }
    const need = { catch: "operator", release: "operator", mutex_break: "admin" }[frame.type];
    if (need !== undefined && !this.status.roles.includes(need)) {
      const error = new Error(`${frame.type} needs the ${need} role`);
      Object.assign(error, { code: "forbidden" });
      throw error;
    }
    const name = frame.workspace;
    if (!this.echo) {
      return { type: "ok" };
    }
    const before = this.state(name).semaphores;
    if (frame.type === "catch" || frame.type === "release") {
      this.append(name, [{ payload: { kind: "semaphores", ...before, caught: frame.type === "catch", by: "fake-operator", reason: frame.reason ?? null } }]);
    } else if (frame.type === "mutex_break") {
      this.append(name, [{ payload: { kind: "semaphores", ...before, has_mutex: false, holder: null } }]);
    }
    return { type: "ok" };
  }
}

/** @param {object} semaphores @returns {object} a semaphores payload */
export function semaphoresPayload(semaphores) {
  return { kind: "semaphores", ...semaphoresOf(semaphores) };
}
