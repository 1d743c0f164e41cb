// Where a subscription has got to in each workspace: the same bookkeeping as the SDK's
// sdk/_cursors.py, checked in the browser against the cases the Python code answers
// (tests/sdk/fixtures/cursor_cases.json). No I/O: the connection asks it what to send and
// tells it what arrived.
//
// The cursor of a workspace is the last offset handed to the page, in that workspace's epoch.
// Every (re)subscribe names them all, so the broker sends exactly what the page has not seen;
// anything at or below a cursor that still arrives (a resend racing a reconnect) is dropped.

/**
 * @typedef {{epoch: number, offset: number}} Cursor
 * @typedef {"latest" | "earliest" | Record<string, Cursor>} StartPosition
 * @typedef {{workspace: string, from_offset: number, to_offset: number}} Gap
 */

export class SubscriptionCursors {
  /** @param {StartPosition} since */
  constructor(since) {
    /** @type {StartPosition} */
    this.since = since;
    this.subscribedOnce = false;
    /** @type {Map<string, number>} */
    this.epochs = new Map();
    /** @type {Map<string, number>} */
    this.offsets = new Map();
    /** Every gap the broker named, in order, for the page to show. @type {Gap[]} */
    this.gaps = [];
    if (typeof since === "object") {
      for (const [name, cursor] of Object.entries(since)) {
        this.epochs.set(name, cursor.epoch);
        this.offsets.set(name, cursor.offset);
      }
    }
  }

  /**
   * The `from` of the next subscribe.
   * @returns {StartPosition}
   */
  start() {
    if (!this.subscribedOnce && typeof this.since === "string") {
      return this.since;
    }
    /** @type {Record<string, Cursor>} */
    const cursors = {};
    for (const [name, offset] of this.offsets) {
      Object.defineProperty(cursors, name, {
        value: { epoch: this.epochs.get(name), offset },
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return cursors;
  }

  /**
   * The broker's snapshot: learn epochs; a first `latest` starts after each state.
   * @param {Array<{name: string, epoch: number, last_offset?: number}>} snapshot
   */
  subscribed(snapshot) {
    const firstLatest = !this.subscribedOnce && this.since === "latest";
    this.subscribedOnce = true;
    for (const state of snapshot) {
      if (this.epochs.get(state.name) !== state.epoch) {
        // A workspace new to the page, or re-created: whatever came before is void.
        this.epochs.set(state.name, state.epoch);
        this.offsets.delete(state.name);
      }
      if (firstLatest) {
        this.offsets.set(state.name, state.last_offset ?? 0);
      }
    }
  }

  /** @param {{name: string, epoch: number, last_offset?: number}} state */
  joined(state) {
    this.epochs.set(state.name, state.epoch);
    this.offsets.set(state.name, state.last_offset ?? 0);
  }

  /** @param {string} workspace */
  removed(workspace) {
    this.epochs.delete(workspace);
    this.offsets.delete(workspace);
  }

  /**
   * Whether the event is new to the page; advances the cursor if so.
   * @param {{workspace: string, offset: number}} event
   * @returns {boolean}
   */
  accept(event) {
    if (!this.epochs.has(event.workspace)) {
      return false; // of an epoch this subscription no longer follows
    }
    if (event.offset <= (this.offsets.get(event.workspace) ?? 0)) {
      return false;
    }
    this.offsets.set(event.workspace, event.offset);
    return true;
  }

  /**
   * A gap: the offsets up to `offset` are gone; delivery goes on after them.
   * @param {string} workspace
   * @param {number} offset
   */
  skipTo(workspace, offset) {
    if (this.epochs.has(workspace)) {
      this.offsets.set(workspace, Math.max(offset, this.offsets.get(workspace) ?? 0));
    }
  }

  /**
   * A `gap` frame: remembered for the page, then skipped.
   * @param {Gap} gap
   */
  gap(gap) {
    this.gaps.push({
      workspace: gap.workspace,
      from_offset: gap.from_offset,
      to_offset: gap.to_offset,
    });
    this.skipTo(gap.workspace, gap.to_offset);
  }
}
