// Progress rate and time left, from the progress events of one bar. Pure: times are passed in.
//
// A worker may send its own `rate` (units per second); it is used as it is. Otherwise the rate
// is measured over the last RATE_WINDOW samples of the bar: (newest current - oldest current) /
// (newest time - oldest time). A bar that went backwards (a restarted epoch) starts a new window.

/** Samples a bar keeps to measure its rate. */
export const RATE_WINDOW = 20;

/**
 * @typedef {{current: number, time: number}} ProgressSample
 * `time` in seconds (create_time of the progress event).
 */

/** The samples of one progress bar and what they say about its pace. */
export class ProgressPace {
  constructor() {
    /** @type {ProgressSample[]} */
    this.samples = [];
    /** @type {number | null} the rate the worker sent with its latest sample */
    this.reportedRate = null;
    /** @type {number | null} */
    this.total = null;
  }

  /**
   * Take a progress payload sent at `time` (seconds); samples older than the newest are ignored.
   * @param {{current: number, total?: number | null, rate?: number | null}} payload
   * @param {number} time
   */
  add(payload, time) {
    const newest = this.samples.at(-1);
    if (newest !== undefined && time < newest.time) {
      return;
    }
    if (newest !== undefined && payload.current < newest.current) {
      this.samples = [];
    }
    this.samples.push({ current: payload.current, time });
    if (this.samples.length > RATE_WINDOW) {
      this.samples.shift();
    }
    this.reportedRate = typeof payload.rate === "number" ? payload.rate : null;
    this.total = typeof payload.total === "number" ? payload.total : null;
  }

  /** Units per second: the worker's, else measured; null until two samples apart in time. */
  rate() {
    if (this.reportedRate !== null) {
      return this.reportedRate;
    }
    const oldest = this.samples[0];
    const newest = this.samples.at(-1);
    if (oldest === undefined || newest === undefined || newest.time <= oldest.time) {
      return null;
    }
    return (newest.current - oldest.current) / (newest.time - oldest.time);
  }

  /** Seconds until current reaches total at the current rate; 0 when done; null when unknown. */
  etaSeconds() {
    const newest = this.samples.at(-1);
    if (newest === undefined || this.total === null) {
      return null;
    }
    const left = this.total - newest.current;
    if (left <= 0) {
      return 0;
    }
    const rate = this.rate();
    return rate === null || rate <= 0 ? null : left / rate;
  }
}

/**
 * A duration for people: `42s`, `3m 05s`, `2h 07m`, `3d 4h`; "—" for null.
 * @param {number | null} seconds
 */
export function formatDuration(seconds) {
  if (seconds === null || !Number.isFinite(seconds)) {
    return "—";
  }
  const whole = Math.round(seconds);
  const pad = (/** @type {number} */ n) => String(n).padStart(2, "0");
  if (whole < 60) {
    return `${whole}s`;
  }
  if (whole < 3600) {
    return `${Math.floor(whole / 60)}m ${pad(whole % 60)}s`;
  }
  if (whole < 86400) {
    return `${Math.floor(whole / 3600)}h ${pad(Math.floor((whole % 3600) / 60))}m`;
  }
  return `${Math.floor(whole / 86400)}d ${Math.floor((whole % 86400) / 3600)}h`;
}

/**
 * A rate for people with three significant digits: per second (`12.5/s`), or per minute below
 * one a second (`15.0/min`); "—" for null.
 * @param {number | null} rate
 */
export function formatRate(rate) {
  if (rate === null || !Number.isFinite(rate)) {
    return "—";
  }
  if (rate !== 0 && rate < 1) {
    return `${(rate * 60).toPrecision(3)}/min`;
  }
  return `${rate.toPrecision(3)}/s`;
}
