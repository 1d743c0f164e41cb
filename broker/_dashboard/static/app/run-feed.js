// What the run views of one workspace know, fed by the connection: the workspace state folded
// from a subscription to the run kinds only, the scalar and hardware series of the runs the
// page follows (their history in pages, newest first, then live), the latest hyperparameters
// per run and the pace of each progress bar. It never replays the whole workspace: logs and
// events are not asked for, and a run's history stops at HISTORY_EVENTS_PER_RUN events.

import { foldEvents, stateFromWire } from "./fold.js";
import { ProgressPace } from "./rates.js";
import { RunSeries, SERIES_POINT_LIMIT, secondsOf } from "./series.js";

/** The kinds the run views subscribe to. */
export const RUN_KINDS = ["scalar", "hardware", "hyperparameters", "progress", "status", "presence"];
/** Events per history request (the protocol's maximum). */
export const HISTORY_PAGE = 1000;
/** Scalar and hardware events of one run read from history at most (newest first). */
export const HISTORY_EVENTS_PER_RUN = 100_000;
/** How far back the page looks for runs, their hyperparameters and progress samples. */
const LOOKBACK = 200;

/**
 * The run views' data of one workspace. Dispatches "change" whenever something shown changed.
 */
export class RunFeed extends EventTarget {
  /**
   * @param {{connection: any, workspace: string, pointLimit?: number}} options
   *   connection: a BrokerConnection (app/connection.js) or anything with its
   *   subscribe/history methods
   */
  constructor({ connection, workspace, pointLimit = SERIES_POINT_LIMIT }) {
    super();
    this.connection = connection;
    this.workspace = workspace;
    /** @type {any} the workspace state, folded from the run kinds; null before the snapshot */
    this.state = null;
    this.model = new RunSeries(pointLimit);
    /** @type {Map<string, Record<string, unknown>>} latest hyperparameters per run */
    this.params = new Map();
    /** @type {Map<string, number>} offset of the hyperparameters kept per run */
    this.paramsOffset = new Map();
    /** @type {Map<string, ProgressPace>} */
    this.paces = new Map();
    /** @type {Set<string>} every run seen: workers, recent hyperparameters and presence */
    this.runs = new Set();
    /** @type {string[]} the runs the page shows, followed again after a reconnect */
    this.wanted = [];
    /** @type {Set<string>} runs whose history is loaded or loading */
    this.followed = new Set();
    /** @type {Set<string>} runs whose history is still loading */
    this.loading = new Set();
    /** @type {Array<{from_offset: number, to_offset: number}>} */
    this.gaps = [];
    /** @type {string | null} */
    this.error = null;
    this.closed = false;
    /** @type {any} */
    this.subscription = null;
    /** @type {Promise<void>} resolves once the subscription's snapshot is in */
    this.ready = new Promise((resolve) => {
      this.markReady = resolve;
    });
  }

  /** Subscribe to the workspace's run kinds and look back for its runs. */
  start() {
    const subscription = this.connection.subscribe({
      pattern: this.workspace,
      from: "latest",
      kinds: RUN_KINDS,
    });
    this.subscription = subscription;
    subscription.addEventListener("snapshot", (/** @type {any} */ event) => this.onSnapshot(event.detail.states));
    subscription.addEventListener("joined", (/** @type {any} */ event) => this.onSnapshot([event.detail.state]));
    subscription.addEventListener("events", (/** @type {any} */ event) => this.onEvents(event.detail.events));
    subscription.addEventListener("gap", (/** @type {any} */ event) => {
      if (event.detail.workspace === this.workspace) {
        this.gaps.push({ from_offset: event.detail.from_offset, to_offset: event.detail.to_offset });
        this.changed();
      }
    });
    this.ready.then(() => this.lookBack()).catch((error) => this.fail(error));
  }

  /** Stop following: the subscription is closed and late replies are dropped. */
  close() {
    this.closed = true;
    this.subscription?.close();
  }

  /**
   * Keep the points of these runs: their history is loaded once per run (again after a load
   * failed, at the next snapshot), and their live points from now on.
   * @param {string[]} runIds
   */
  follow(runIds) {
    this.wanted = runIds;
    for (const runId of runIds) {
      if (!this.followed.has(runId)) {
        this.followed.add(runId);
        this.loading.add(runId);
        this.ready
          .then(() => this.loadRun(runId))
          .then(() => {
            this.error = null;
          })
          .catch((error) => {
            // Points already loaded stay; the next load skips them by offset.
            this.followed.delete(runId);
            this.fail(error);
          })
          .finally(() => {
            this.loading.delete(runId);
            this.changed();
          });
      }
    }
  }

  /** After every (re)subscribe, and when the workspace is created later. @param {any[]} states */
  onSnapshot(states) {
    const wire = states.find((state) => state.name === this.workspace);
    if (wire !== undefined) {
      this.state = stateFromWire(wire);
      for (const worker of this.state.workers) {
        this.runs.add(worker.run_id);
      }
    }
    this.markReady();
    this.follow(this.wanted);
    this.changed();
  }

  /** @param {any[]} events */
  onEvents(events) {
    const mine = events.filter((event) => event.workspace === this.workspace);
    if (mine.length === 0) {
      return;
    }
    if (this.state !== null) {
      this.state = foldEvents(this.state, mine);
    }
    this.take(mine);
    this.changed();
  }

  /** Everything but the fold, for live and history events alike. @param {any[]} events */
  take(events) {
    this.model.addEvents(events.filter((event) => this.followed.has(event.run_id)));
    for (const event of events) {
      const payload = event.payload;
      if (typeof event.run_id === "string") {
        this.runs.add(event.run_id);
      }
      if (payload.kind === "presence" && typeof payload.run_id === "string") {
        this.runs.add(payload.run_id);
      } else if (payload.kind === "hyperparameters") {
        const kept = this.paramsOffset.get(event.run_id) ?? 0;
        if (event.offset > kept) {
          this.params.set(event.run_id, payload.values ?? {});
          this.paramsOffset.set(event.run_id, event.offset);
        }
      } else if (payload.kind === "progress") {
        let pace = this.paces.get(payload.name);
        if (pace === undefined) {
          pace = new ProgressPace();
          this.paces.set(payload.name, pace);
        }
        pace.add(payload, secondsOf(event.create_time));
      }
    }
  }

  async lookBack() {
    for (const kinds of [["hyperparameters", "presence"], ["progress"]]) {
      const page = await this.history({ kinds, limit: LOOKBACK });
      if (page === null) {
        return;
      }
      this.take([...page.events].reverse());
      this.changed();
    }
  }

  /** @param {string} runId */
  async loadRun(runId) {
    let before;
    let loaded = 0;
    while (loaded < HISTORY_EVENTS_PER_RUN) {
      const query = { kinds: ["scalar", "hardware"], run_id: runId, limit: HISTORY_PAGE };
      const page = await this.history(before === undefined ? query : { ...query, before });
      if (page === null) {
        return;
      }
      this.model.addEvents(page.events);
      loaded += page.events.length;
      this.changed();
      if (!page.more || page.events.length === 0) {
        return;
      }
      before = Math.min(...page.events.map((/** @type {any} */ event) => event.offset));
    }
  }

  /** A history page of this workspace, or null once closed. @param {Record<string, unknown>} query */
  async history(query) {
    if (this.closed) {
      return null;
    }
    const page = await this.connection.history({ workspace: this.workspace, ...query });
    return this.closed ? null : page;
  }

  /** @param {any} error */
  fail(error) {
    if (!this.closed) {
      this.error = error?.code ? `${error.code}: ${error.message}` : String(error);
      this.changed();
    }
  }

  changed() {
    if (!this.closed) {
      this.dispatchEvent(new Event("change"));
    }
  }
}
