// The log view's window on one workspace's stream: a bounded, contiguous run of rows in offset
// order, filled from `history` pages and the live subscription. Pure: no DOM, no I/O; the view
// asks it what to fetch and hands it what arrived.
//
// Invariants:
// - rows are in increasing offset order; every offset between the window's `oldest` and
//   `newest` is either an event row or inside exactly one gap row (no duplicates, no holes);
// - the window never holds more than `maxRows` rows: growing at one end trims the other, and
//   what is trimmed is fetched again from `history` when the user scrolls back to it;
// - `attached` means the window ends at the newest event the live stream has delivered, so
//   live events are appended as they come; otherwise they are only counted, and the view pages
//   forward through `history` until the window reaches the live end again. Every delivered
//   event is durable first (protocol §10), so history always has it.

/**
 * @typedef {import("./fold.js").EventMsg} EventMsg
 * @typedef {{type: "event", key: string, offset: number, event: EventMsg}} EventRow
 * @typedef {{type: "gap", key: string, from: number, to: number, why: string}} GapRow
 * @typedef {EventRow | GapRow} Row
 * @typedef {{events: EventMsg[], more: boolean}} Page
 */

/** Rows kept by default: enough to scroll a long way without a fetch, bounded in memory. */
export const DEFAULT_MAX_ROWS = 50_000;

/** @param {EventMsg} event @returns {EventRow} */
function eventRow(event) {
  return { type: "event", key: `e${event.offset}`, offset: event.offset, event };
}

/** @param {number} from @param {number} to @param {string} why @returns {GapRow} */
function gapRow(from, to, why) {
  return { type: "gap", key: `g${from}-${to}`, from, to, why };
}

/** @param {Row} row @returns {number} */
function firstOffsetOf(row) {
  return row.type === "event" ? row.offset : row.from;
}

/** @param {Row} row @returns {number} */
function lastOffsetOf(row) {
  return row.type === "event" ? row.offset : row.to;
}

export class LogWindow {
  /** @param {{maxRows?: number}} [options] */
  constructor({ maxRows = DEFAULT_MAX_ROWS } = {}) {
    this.maxRows = maxRows;
    /** @type {Row[]} */
    this.rows = [];
    /** Whether nothing older than the first row is stored. */
    this.olderExhausted = false;
    /** Whether live events are appended (the window ends at the live end). */
    this.attached = false;
    /** Highest offset the live stream has delivered (or the snapshot's last_offset). */
    this.liveNewest = 0;
    /** Live events delivered since the start: the view counts "N new" from it. */
    this.liveCount = 0;
    /** Bumped on every change, for views that memoise on it. */
    this.version = 0;
  }

  /** Lowest offset the window covers, or 0 when empty. */
  get oldest() {
    return this.rows.length === 0 ? 0 : firstOffsetOf(this.rows[0]);
  }

  /** Highest offset the window covers, or 0 when empty. */
  get newest() {
    return this.rows.length === 0 ? 0 : lastOffsetOf(this.rows[this.rows.length - 1]);
  }

  /** Forget everything (a new epoch of the workspace). */
  reset() {
    this.rows = [];
    this.olderExhausted = false;
    this.attached = false;
    this.liveNewest = 0;
    this.version += 1;
  }

  /**
   * The live stream's position is known to be at least `offset` (a snapshot's last_offset).
   * @param {number} offset
   */
  liveAt(offset) {
    this.liveNewest = Math.max(this.liveNewest, offset);
    if (this.attached && this.newest < this.liveNewest) {
      this.attached = false;
    }
    this.version += 1;
  }

  /**
   * Start at the newest stored events: a newest-first page (`history` without `after`).
   * @param {Page} page
   */
  openAtTail(page) {
    this.rows = [];
    this.olderExhausted = false;
    const ascending = page.events.slice().reverse();
    this.appendEvents(ascending, "retention");
    this.finishOlder(page.more);
    this.settleAttachment(false);
    this.version += 1;
  }

  /**
   * Start at `offset` (a deep link): the newest-first page at or before it and the
   * oldest-first page after it.
   * @param {Page} before events at or below the offset, newest first
   * @param {Page} after events above the offset, oldest first
   */
  openAround(before, after) {
    this.rows = [];
    this.olderExhausted = false;
    this.appendEvents(before.events.slice().reverse(), "retention");
    this.finishOlder(before.more);
    this.appendEvents(after.events, "retention");
    this.settleAttachment(after.more);
    this.version += 1;
  }

  /**
   * An older page (`history` with `before` = this.oldest, newest first) goes in front; the
   * newest rows are trimmed if the window grows past its bound.
   * @param {Page} page
   */
  prependOlder(page) {
    const older = page.events.filter((event) => event.offset < this.oldest).reverse();
    /** @type {Row[]} */
    const front = [];
    let expected = this.oldest;
    for (let index = older.length - 1; index >= 0; index -= 1) {
      const event = older[index];
      if (event.offset < expected - 1) {
        front.push(gapRow(event.offset + 1, expected - 1, "retention"));
      }
      front.push(eventRow(event));
      expected = event.offset;
    }
    front.reverse();
    this.rows = front.concat(this.rows);
    this.finishOlder(page.more);
    if (this.rows.length > this.maxRows) {
      this.rows.length = this.maxRows;
      this.attached = false;
    }
    this.version += 1;
  }

  /**
   * A newer page (`history` with `after` = this.newest, oldest first) goes at the end; the
   * oldest rows are trimmed if the window grows past its bound.
   * @param {Page} page
   */
  appendNewer(page) {
    this.appendEvents(page.events, "retention");
    this.settleAttachment(page.more);
    this.version += 1;
  }

  /**
   * Events from the live subscription, in offset order.
   * @param {EventMsg[]} events
   */
  live(events) {
    for (const event of events) {
      if (event.offset > this.liveNewest) {
        this.liveNewest = event.offset;
        this.liveCount += 1;
      }
    }
    if (this.attached) {
      this.appendEvents(events, "not delivered");
    }
    this.version += 1;
  }

  /**
   * A `gap` frame of the live subscription: offsets `from`..`to` are gone.
   * @param {number} from
   * @param {number} to
   */
  gap(from, to) {
    this.liveNewest = Math.max(this.liveNewest, to);
    if (this.attached && to > this.newest) {
      this.rows.push(gapRow(Math.max(from, this.newest + 1), to, "retention"));
      this.trimOldest();
    }
    this.version += 1;
  }

  /**
   * Rows passing `keep` (event rows only are tested; gap rows always stay visible).
   * @param {(event: EventMsg) => boolean} keep
   * @returns {Row[]}
   */
  filtered(keep) {
    return this.rows.filter((row) => row.type === "gap" || keep(row.event));
  }

  /**
   * The index of the row covering `offset`, else of the first row after it, else -1.
   * @param {number} offset
   * @returns {number}
   */
  indexOf(offset) {
    let low = 0;
    let high = this.rows.length - 1;
    while (low <= high) {
      const middle = (low + high) >> 1;
      if (lastOffsetOf(this.rows[middle]) < offset) {
        low = middle + 1;
      } else {
        high = middle - 1;
      }
    }
    return low < this.rows.length ? low : -1;
  }

  /**
   * Append events in order after the window's end, naming any jump in offsets as a gap.
   * @param {EventMsg[]} events
   * @param {string} why
   */
  appendEvents(events, why) {
    for (const event of events) {
      const newest = this.newest;
      if (event.offset <= newest) {
        continue; // already here: a page and the live stream overlap
      }
      if (newest > 0 && event.offset > newest + 1) {
        this.rows.push(gapRow(newest + 1, event.offset - 1, why));
      }
      this.rows.push(eventRow(event));
    }
    this.trimOldest();
  }

  trimOldest() {
    const excess = this.rows.length - this.maxRows;
    if (excess > 0) {
      this.rows.splice(0, excess);
      this.olderExhausted = false;
    }
  }

  /**
   * After the oldest page: when the store has nothing older but the window does not start at
   * offset 1, the events before it were removed by retention, and the window says so.
   * @param {boolean} more
   */
  finishOlder(more) {
    if (more) {
      this.olderExhausted = false;
      return;
    }
    this.olderExhausted = true;
    const oldest = this.oldest;
    if (oldest > 1) {
      this.rows.unshift(gapRow(1, oldest - 1, "retention"));
    } else if (oldest === 0 && this.liveNewest > 0) {
      // Nothing stored at all, though the stream has reached liveNewest.
      this.rows.push(gapRow(1, this.liveNewest, "retention"));
    }
  }

  /** @param {boolean} more whether the store holds events after the page just added */
  settleAttachment(more) {
    this.liveNewest = Math.max(this.liveNewest, this.newest);
    this.attached = !more && this.newest >= this.liveNewest;
  }
}
