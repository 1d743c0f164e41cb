// The page's paint meter, for benchmarks and for anyone asking "is the page keeping up?":
// how many of the stream's events the page took in, how many of those have reached the screen,
// and how long each took from its create_time to the screen. Views render on animation frames
// (the stores batch per frame, charts draw in an effect one frame later), so an event counts
// as drawn once SETTLE_FRAMES frames have been painted since it arrived. Memory is bounded: a
// histogram of whole milliseconds, not a list of samples.

/** Frames painted after an event's arrival before it counts as on screen. */
export const SETTLE_FRAMES = 3;
/** Latencies at or above this many milliseconds share the histogram's last bucket. */
export const HISTOGRAM_MS = 60_000;

export class PaintMeter {
  constructor() {
    /** Distinct events taken in (by workspace and offset). */
    this.taken = 0;
    /** Of those, the events on screen. */
    this.drawn = 0;
    /** Drawn events by latency in whole milliseconds; the last bucket holds the rest. */
    this.histogram = new Uint32Array(HISTOGRAM_MS + 1);
    /** The highest offset taken per workspace: two subscriptions see the same event once. */
    this.offsets = new Map();
    /** create_time in epoch milliseconds of events waiting for frames, by frames left. */
    this.waiting = Array.from({ length: SETTLE_FRAMES }, () => /** @type {number[]} */ ([]));
    this.scheduled = false;
  }

  /**
   * Meter every subscription the connection opens from now on (the fleet store's, the views').
   * @param {{subscribe: (options: any) => EventTarget}} connection
   */
  watch(connection) {
    const subscribe = connection.subscribe.bind(connection);
    connection.subscribe = (/** @type {any} */ options) => {
      const subscription = subscribe(options);
      subscription.addEventListener("events", (event) => this.take(/** @type {CustomEvent} */ (event).detail.events));
      return subscription;
    };
  }

  /**
   * Events as they arrive from the broker.
   * @param {Array<{workspace: string, offset: number, create_time: string}>} events
   */
  take(events) {
    const newest = this.waiting[SETTLE_FRAMES - 1];
    for (const event of events) {
      if (event.offset <= (this.offsets.get(event.workspace) ?? 0)) {
        continue;
      }
      this.offsets.set(event.workspace, event.offset);
      this.taken += 1;
      newest.push(Date.parse(event.create_time));
    }
    this.schedule();
  }

  schedule() {
    if (this.scheduled) {
      return;
    }
    this.scheduled = true;
    requestAnimationFrame(() => this.frame());
  }

  frame() {
    this.scheduled = false;
    // After this frame's rendering: a message posted now runs once it is painted.
    const settled = this.waiting.shift() ?? [];
    this.waiting.push([]);
    const channel = new MessageChannel();
    channel.port1.onmessage = () => this.settle(settled);
    channel.port2.postMessage(null);
    if (this.waiting.some((times) => times.length > 0)) {
      this.schedule();
    }
  }

  /** @param {number[]} createTimes */
  settle(createTimes) {
    const now = performance.timeOrigin + performance.now();
    for (const created of createTimes) {
      const ms = Math.min(HISTOGRAM_MS, Math.max(0, Math.round(now - created)));
      this.histogram[ms] += 1;
    }
    this.drawn += createTimes.length;
  }

  /** Start counting afresh (the offsets seen are kept). */
  reset() {
    this.taken = 0;
    this.drawn = 0;
    this.histogram.fill(0);
  }

  /** The counts and the non-empty buckets as [[ms, count], ...]: plain data for a test or a tool. */
  read() {
    /** @type {Array<[number, number]>} */
    const buckets = [];
    this.histogram.forEach((count, ms) => {
      if (count > 0) {
        buckets.push([ms, count]);
      }
    });
    return { taken: this.taken, drawn: this.drawn, latencyMs: buckets };
  }
}
