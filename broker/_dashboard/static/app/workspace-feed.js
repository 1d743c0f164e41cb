// One workspace's stream for the workspace page: a subscription to exactly that workspace
// (folded into its live state), the log window, the timeline of milestones, the audit and the
// integrity record (cursor, resumes, gaps). The views read it and ask it to fetch history;
// it says "change" whenever anything they show may have changed.

import { AUDIT_KINDS, auditEntries } from "./audit.js";
import { foldEvents, semaphoresOf, stateFromWire } from "./fold.js";
import { LogWindow } from "./log-model.js";

/**
 * @typedef {import("./fold.js").EventMsg} EventMsg
 * @typedef {import("./fold.js").WorkspaceState} WorkspaceState
 * @typedef {import("./audit.js").AuditEntry} AuditEntry
 * @typedef {{workspace: string, from_offset: number, to_offset: number}} GapNotice
 * @typedef {{offset: number, recovered: boolean}} ResumeNotice
 */

/** The kinds the timeline shows (milestones, not measurements or log lines). */
export const MILESTONE_KINDS = Object.freeze(["event", "status", "details", "semaphores", "presence"]);
/** Events per history page the log view asks for. */
export const LOG_PAGE = 500;
/** Milestones per timeline page, and the most the timeline keeps. */
export const TIMELINE_PAGE = 100;
export const TIMELINE_MAX = 1000;
/** Audit events (semaphores and calls) per audit page, and the most kept. */
export const AUDIT_PAGE = 200;
export const AUDIT_MAX = 2000;

export class WorkspaceFeed extends EventTarget {
  /**
   * @param {{connection: any, workspace: string, maxRows?: number}} options
   */
  constructor({ connection, workspace, maxRows }) {
    super();
    this.connection = connection;
    this.workspace = workspace;
    /** @type {WorkspaceState | null} the live state; null until the snapshot */
    this.state = null;
    /** Whether the subscription's snapshot named the workspace at all. */
    this.missing = false;
    this.log = new LogWindow({ maxRows });
    /** @type {EventMsg[]} milestones, oldest first */
    this.timeline = [];
    this.timelineExhausted = false;
    /** @type {EventMsg[]} semaphores and call events, oldest first (the audit's source) */
    this.auditEvents = [];
    /** @type {import("./fold.js").Semaphores} semaphores before the first kept event */
    this.auditBaseline = semaphoresOf({});
    this.auditExhausted = false;
    /** @type {GapNotice[]} */
    this.gaps = [];
    /** @type {ResumeNotice | null} */
    this.resumed = null;
    /** @type {string | null} the last history failure, shown by the views */
    this.error = null;
    /** @type {number | null} the log's deep-link offset, while it is opened there */
    this.anchor = null;
    /** @type {Set<string>} history loads in flight, by name, so none runs twice */
    this.loading = new Set();
    /** @type {Map<string, Map<string, () => Promise<void>>>} loads asked for while one of their
     * name ran, by name and then by what they do (the latest of each), in the order asked */
    this.queued = new Map();
    this.subscription = null;
    this.opened = false;
  }

  /**
   * Subscribe and open the log at the tail, or around `at` when given.
   * @param {{at?: number | null}} [options]
   */
  start({ at = null } = {}) {
    this.anchor = at;
    const subscription = this.connection.subscribe({ pattern: this.workspace, from: "latest" });
    this.subscription = subscription;
    subscription.addEventListener("snapshot", (/** @type {any} */ event) =>
      this.onSnapshot(event.detail.states),
    );
    subscription.addEventListener("events", (/** @type {any} */ event) =>
      this.onEvents(event.detail.events),
    );
    subscription.addEventListener("joined", (/** @type {any} */ event) =>
      this.onSnapshot([event.detail.state]),
    );
    subscription.addEventListener("gap", (/** @type {any} */ event) => this.onGap(event.detail));
    subscription.addEventListener("resumed", (/** @type {any} */ event) =>
      this.onResumed(event.detail),
    );
  }

  close() {
    this.subscription?.close();
    this.subscription = null;
  }

  /** @param {Array<Record<string, any>>} states */
  onSnapshot(states) {
    const wire = (states ?? []).find((state) => state.name === this.workspace);
    if (wire === undefined) {
      this.missing = this.state === null;
      this.changed();
      return;
    }
    this.missing = false;
    const fresh = stateFromWire(wire);
    const newEpoch = this.state !== null && this.state.epoch !== fresh.epoch;
    if (newEpoch) {
      this.log.reset();
      this.timeline = [];
      this.auditEvents = [];
      this.opened = false;
    }
    // A resubscribe's snapshot is newer than what the page folded; replayed events that follow
    // are at or below it and leave it unchanged (protocol §11).
    if (this.state === null || newEpoch || fresh.last_offset >= this.state.last_offset) {
      this.state = fresh;
    }
    this.log.liveAt(fresh.last_offset);
    if (!this.opened) {
      this.opened = true;
      if (this.anchor !== null) {
        this.openAt(this.anchor);
      } else {
        this.openTail();
      }
      this.loadTimeline();
      this.loadAudit();
    }
    this.changed();
  }

  /** @param {EventMsg[]} events */
  onEvents(events) {
    const mine = events.filter((event) => event.workspace === this.workspace);
    if (mine.length === 0 || this.state === null) {
      return;
    }
    this.state = foldEvents(this.state, mine);
    this.log.live(mine);
    const milestones = mine.filter((event) => MILESTONE_KINDS.includes(event.payload.kind));
    if (milestones.length > 0) {
      this.timeline = keepNewest(this.timeline.concat(milestones), TIMELINE_MAX);
    }
    const audited = mine.filter((event) => AUDIT_KINDS.includes(event.payload.kind));
    if (audited.length > 0) {
      this.auditEvents = this.auditEvents.concat(audited);
      this.trimAudit();
    }
    this.changed();
    if (!this.log.attached && this.log.rows.length > 0 && this.anchor === null) {
      // The window was at the tail and fell behind (events arrived before its first page):
      // catch up from the store.
      this.loadNewer();
    }
  }

  /** @param {GapNotice} gap */
  onGap(gap) {
    if (gap.workspace !== this.workspace) {
      return;
    }
    this.gaps = this.gaps.concat([
      { workspace: gap.workspace, from_offset: gap.from_offset, to_offset: gap.to_offset },
    ]);
    this.log.gap(gap.from_offset, gap.to_offset);
    this.changed();
  }

  /** @param {{recovered: boolean, cursors?: Record<string, {offset: number}>}} detail */
  onResumed(detail) {
    const cursor = detail.cursors?.[this.workspace];
    this.resumed = {
      offset: cursor?.offset ?? this.state?.last_offset ?? 0,
      recovered: detail.recovered,
    };
    this.changed();
  }

  // History --------------------------------------------------------------------------------

  /** Open the log at the newest stored events, following the live stream. */
  openTail() {
    this.anchor = null;
    this.run(
      "log",
      async () => {
        const page = await this.history({ limit: LOG_PAGE });
        this.log.openAtTail(page);
        await this.catchUp();
      },
      "open",
    );
  }

  /**
   * Open the log around `offset` (a deep link).
   * @param {number} offset
   */
  openAt(offset) {
    this.anchor = offset;
    this.run(
      "log",
      async () => {
        const before = await this.history({ before: offset + 1, limit: LOG_PAGE });
        const after = await this.history({ after: offset, limit: LOG_PAGE });
        this.log.openAround(before, after);
      },
      "open",
    );
  }

  /** Page the log back: the page before its first row. */
  loadOlder() {
    if (this.log.olderExhausted || this.log.rows.length === 0) {
      return;
    }
    this.run(
      "log",
      async () => {
        if (this.log.olderExhausted) {
          return;
        }
        const page = await this.history({ before: this.log.oldest, limit: LOG_PAGE });
        this.log.prependOlder(page);
      },
      "older",
    );
  }

  /** Page the log forward: the page after its last row, until it reaches the live end. */
  loadNewer() {
    if (this.log.attached || this.log.rows.length === 0) {
      return;
    }
    this.run(
      "log",
      async () => {
        if (this.log.attached) {
          return;
        }
        const page = await this.history({ after: this.log.newest, limit: LOG_PAGE });
        this.log.appendNewer(page);
      },
      "newer",
    );
  }

  /** Page forward until the window holds every delivered event, then it follows live. */
  async catchUp() {
    while (!this.log.attached) {
      const page = await this.history({ after: this.log.newest, limit: LOG_PAGE });
      this.log.appendNewer(page);
      if (page.events.length === 0) {
        break;
      }
    }
  }

  /** Older milestones for the timeline. */
  loadTimeline() {
    this.run("timeline", async () => {
      const before = this.timeline.length > 0 ? this.timeline[0].offset : undefined;
      const page = await this.history({ before, limit: TIMELINE_PAGE, kinds: [...MILESTONE_KINDS] });
      const older = page.events.filter((event) => before === undefined || event.offset < before);
      const known = new Set(this.timeline.map((event) => event.offset));
      const merged = older.reverse().filter((event) => !known.has(event.offset));
      this.timeline = merged.concat(this.timeline).slice(0, TIMELINE_MAX);
      this.timelineExhausted = !page.more;
    });
  }

  /** Older semaphores and call events for the audit. On a page that has more, its oldest
   * semaphores event is kept as the baseline the next entry is compared with, and what is older
   * than it waits for the next page. */
  loadAudit() {
    this.run("audit", async () => {
      const before = this.auditEvents.length > 0 ? this.auditEvents[0].offset : undefined;
      const page = await this.history({ before, limit: AUDIT_PAGE, kinds: [...AUDIT_KINDS] });
      const known = new Set(this.auditEvents.map((event) => event.offset));
      let older = page.events
        .filter((event) => !known.has(event.offset) && (before === undefined || event.offset < before))
        .reverse();
      const first = older.findIndex((event) => event.payload.kind === "semaphores");
      if (page.more && first >= 0) {
        this.auditBaseline = semaphoresOf(older[first].payload);
        older = older.slice(first + 1);
      } else {
        this.auditBaseline = semaphoresOf({});
      }
      this.auditEvents = older.concat(this.auditEvents);
      this.auditExhausted = !page.more;
      this.trimAudit();
    });
  }

  /** @returns {AuditEntry[]} newest first */
  audit() {
    return auditEntries(this.auditEvents, this.auditBaseline).reverse();
  }

  trimAudit() {
    const excess = this.auditEvents.length - AUDIT_MAX;
    if (excess > 0) {
      const dropped = this.auditEvents.slice(0, excess).filter((event) => event.payload.kind === "semaphores");
      if (dropped.length > 0) {
        this.auditBaseline = semaphoresOf(dropped[dropped.length - 1].payload);
      }
      this.auditEvents = this.auditEvents.slice(excess);
      this.auditExhausted = false;
    }
  }

  /**
   * A history page of this workspace.
   * @param {Record<string, any>} query
   * @returns {Promise<{events: EventMsg[], more: boolean}>}
   */
  history(query) {
    const request = { workspace: this.workspace };
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined) {
        Object.assign(request, { [key]: value });
      }
    }
    return this.connection.history(request);
  }

  /**
   * Run one history task of a name at a time; failures are kept for the view. Tasks asked for
   * while another of their name runs are run after it, in the order asked, the latest of each
   * `key` only: the view asks once per scroll event, and a request dropped while the window was
   * busy would leave a view scrolled to its edge waiting for a page nothing would fetch, or a
   * deep link never opened.
   * @param {string} name
   * @param {() => Promise<void>} task
   * @param {string} key what the task does (`open`, `older`, `newer`), for its name
   */
  run(name, task, key = name) {
    if (this.loading.has(name)) {
      const waiting = this.queued.get(name) ?? new Map();
      waiting.delete(key);
      waiting.set(key, task);
      this.queued.set(name, waiting);
      return;
    }
    this.loading.add(name);
    this.changed();
    task()
      .then(() => {
        this.error = null;
      })
      .catch((/** @type {any} */ error) => {
        this.error = `${name}: ${error?.code ?? "error"}: ${error?.message ?? String(error)}`;
      })
      .finally(() => {
        this.loading.delete(name);
        const waiting = this.queued.get(name);
        const next = waiting?.entries().next();
        this.changed();
        if (waiting !== undefined && next !== undefined && !next.done) {
          const [nextKey, nextTask] = next.value;
          waiting.delete(nextKey);
          this.run(name, nextTask, nextKey);
        }
      });
  }

  changed() {
    this.dispatchEvent(new Event("change"));
  }
}

/**
 * @template T
 * @param {T[]} items
 * @param {number} most
 * @returns {T[]}
 */
function keepNewest(items, most) {
  return items.length > most ? items.slice(items.length - most) : items;
}
