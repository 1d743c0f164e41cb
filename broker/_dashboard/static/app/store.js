// The fleet store: every workspace's folded state from one `*` subscription, what the page
// asked for and is still waiting to see on the stream (a pending catch or release), and the
// integrity the status bar shows (where the stream resumed, the gaps). Views re-render through
// useStore(store), at most once per animation frame however many events arrive.

import { useEffect, useState } from "../vendor/preact/hooks.mjs";
import { foldEvent, stateFromWire } from "./fold.js";

/**
 * @typedef {import("./fold.js").WorkspaceState} WorkspaceState
 * @typedef {{action: "catch" | "release", reason: string | null}} PendingChange
 * @typedef {{workspace: string, message: string, code: string}} Failure
 */

export class FleetStore extends EventTarget {
  /**
   * @param {import("./connection.js").BrokerConnection} connection
   * @param {{pattern?: string}} [options]
   */
  constructor(connection, { pattern = "*" } = {}) {
    super();
    this.connection = connection;
    this.pattern = pattern;
    /** @type {Map<string, WorkspaceState>} */
    this.states = new Map();
    /** Whether the first snapshot has arrived. */
    this.loaded = false;
    /** Catches and releases asked for and not yet seen on the stream. @type {Map<string, PendingChange>} */
    this.pending = new Map();
    /** The latest refused or failed request per workspace, shown until the next one. @type {Map<string, Failure>} */
    this.failures = new Map();
    /** Where the stream resumed after the latest reconnect, or null before any. */
    this.resumed = null;
    /** Every gap the broker named. @type {import("./cursors.js").Gap[]} */
    this.gaps = [];
    /** Bumped on every change: what views compare. */
    this.version = 0;
    this.frame = 0;
    /** @type {import("./connection.js").Subscription | null} */
    this.subscription = null;
  }

  /** Subscribe and keep the states folded from now on. */
  start() {
    const subscription = this.connection.subscribe({ pattern: this.pattern, from: "latest" });
    this.subscription = subscription;
    subscription.addEventListener("snapshot", (event) => {
      const detail = /** @type {CustomEvent} */ (event).detail;
      this.states = new Map(detail.states.map((wire) => [wire.name, stateFromWire(wire)]));
      this.loaded = true;
      this.changed();
    });
    subscription.addEventListener("resumed", (event) => {
      this.resumed = /** @type {CustomEvent} */ (event).detail;
      this.changed();
    });
    subscription.addEventListener("events", (event) => {
      this.fold(/** @type {CustomEvent} */ (event).detail.events);
    });
    subscription.addEventListener("joined", (event) => {
      const state = stateFromWire(/** @type {CustomEvent} */ (event).detail.state);
      this.states.set(state.name, state);
      this.changed();
    });
    subscription.addEventListener("removed", (event) => {
      const name = /** @type {CustomEvent} */ (event).detail.workspace;
      this.states.delete(name);
      this.pending.delete(name);
      this.changed();
    });
    subscription.addEventListener("gap", (event) => {
      this.gaps = [...this.gaps, /** @type {CustomEvent} */ (event).detail];
      this.changed();
    });
    this.connection.addEventListener("status", () => this.changed());
  }

  /** @param {import("./fold.js").EventMsg[]} events */
  fold(events) {
    for (const event of events) {
      const state = this.states.get(event.workspace);
      if (state === undefined) {
        continue;
      }
      this.states.set(event.workspace, foldEvent(state, event));
      const pending = this.pending.get(event.workspace);
      if (pending !== undefined && event.payload.kind === "semaphores") {
        // The stream is the truth: the button stops saying "pending" once the change the
        // page asked for is there.
        const caught = Boolean(event.payload.caught);
        if (caught === (pending.action === "catch")) {
          this.pending.delete(event.workspace);
        }
      }
    }
    this.changed();
  }

  /**
   * Catch a workspace. Resolves when the broker accepted it; the state changes when the
   * `semaphores` event arrives. A refusal is kept in `failures` and thrown.
   * @param {string} workspace
   * @param {string} reason
   */
  async catchWorkspace(workspace, reason) {
    /** @type {Record<string, any>} */
    const frame = { type: "catch", workspace };
    if (reason) {
      frame.reason = reason;
    }
    await this.ask(workspace, { action: "catch", reason: reason || null }, frame);
  }

  /** @param {string} workspace */
  async releaseWorkspace(workspace) {
    await this.ask(workspace, { action: "release", reason: null }, { type: "release", workspace });
  }

  /**
   * @param {string} workspace
   * @param {PendingChange} change
   * @param {Record<string, any>} frame
   */
  async ask(workspace, change, frame) {
    this.pending.set(workspace, change);
    this.failures.delete(workspace);
    this.changed();
    try {
      await this.connection.request(frame);
    } catch (error) {
      this.pending.delete(workspace);
      this.noteFailure(workspace, error);
      throw error;
    }
  }

  /**
   * Remember a refused or failed request about a workspace (a catch, a release, an action
   * call): the fleet view puts the workspace under "Needs attention" and shows the message.
   * @param {string} workspace
   * @param {unknown} error a RequestError, an action's failure, or a message
   */
  noteFailure(workspace, error) {
    const code = typeof error === "object" && error !== null && "code" in error ? String(error.code) : "failed";
    const message = error instanceof Error ? error.message : String(error);
    this.failures.set(workspace, { workspace, code, message });
    this.changed();
  }

  /** @param {string} workspace */
  clearFailure(workspace) {
    if (this.failures.delete(workspace)) {
      this.changed();
    }
  }

  /** Tell the views, once per animation frame at most. */
  changed() {
    this.version += 1;
    if (this.frame !== 0) {
      return;
    }
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.dispatchEvent(new CustomEvent("change", { detail: { version: this.version } }));
    });
  }
}

/**
 * A Preact hook: re-render the calling component whenever `store` changes.
 * @param {EventTarget & {version: number}} store
 * @returns {number} the store's version
 */
export function useStore(store) {
  const [version, setVersion] = useState(store.version);
  useEffect(() => {
    const update = () => setVersion(store.version);
    store.addEventListener("change", update);
    update();
    return () => store.removeEventListener("change", update);
  }, [store]);
  return version;
}
