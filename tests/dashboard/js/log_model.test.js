// The log window (app/log-model.js): contiguous rows with gaps named, bounded in memory at
// both ends, attached to the live stream only when it holds everything delivered.

import { LogWindow } from "/app/log-model.js";

/** @param {number} offset */
function event(offset) {
  return {
    workspace: "w",
    offset,
    create_time: "2026-01-01T00:00:00Z",
    received_time: "2026-01-01T00:00:00Z",
    payload: { kind: "log", message: `line ${offset}` },
  };
}

/** @param {number} from @param {number} to inclusive, ascending */
function range(from, to) {
  const events = [];
  for (let offset = from; offset <= to; offset += 1) {
    events.push(event(offset));
  }
  return events;
}

/** @param {LogWindow} log @returns {string} the rows as "1,2,3,[4-9],10" */
function shape(log) {
  return log.rows.map((row) => (row.type === "gap" ? `[${row.from}-${row.to}]` : String(row.offset))).join(",");
}

/** @param {boolean} condition @param {string} message */
function check(condition, message) {
  if (!condition) {
    throw new Error(message);
  }
}

/** @type {Record<string, () => string>} */
const CASES = {
  "the tail page opens attached and live events append without duplicates"() {
    const log = new LogWindow();
    log.liveAt(5);
    log.openAtTail({ events: range(3, 5).reverse(), more: true });
    check(log.attached, "not attached at the tail");
    log.live([event(5), event(6), event(7)]);
    check(shape(log) === "3,4,5,6,7", shape(log));
    return shape(log);
  },
  "events delivered before the first page leave the window behind until it pages forward"() {
    const log = new LogWindow();
    log.liveAt(5);
    log.live([event(6), event(7)]);
    log.openAtTail({ events: range(1, 5).reverse(), more: false });
    check(!log.attached, "attached although 6 and 7 are missing");
    log.appendNewer({ events: range(6, 7), more: false });
    check(log.attached && shape(log) === "1,2,3,4,5,6,7", shape(log));
    return shape(log);
  },
  "retention before the oldest stored event is a gap row"() {
    const log = new LogWindow();
    log.liveAt(9);
    log.openAtTail({ events: range(6, 9).reverse(), more: false });
    check(shape(log) === "[1-5],6,7,8,9", shape(log));
    check(log.olderExhausted, "older not exhausted");
    return shape(log);
  },
  "a jump inside a page and a gap frame are named with their range"() {
    const log = new LogWindow();
    log.liveAt(4);
    log.openAtTail({ events: [event(4), event(1)], more: false });
    log.gap(5, 8);
    log.live([event(9)]);
    check(shape(log) === "1,[2-3],4,[5-8],9", shape(log));
    return shape(log);
  },
  "older pages go in front and trim the newest rows past the bound, detaching"() {
    const log = new LogWindow({ maxRows: 5 });
    log.liveAt(10);
    log.openAtTail({ events: range(8, 10).reverse(), more: true });
    log.prependOlder({ events: range(4, 7).reverse(), more: true });
    check(shape(log) === "4,5,6,7,8", shape(log));
    check(!log.attached, "still attached after trimming the newest");
    log.live([event(11)]);
    check(shape(log) === "4,5,6,7,8" && log.liveCount === 1, shape(log));
    return shape(log);
  },
  "live events past the bound trim the oldest rows, and older can be fetched again"() {
    const log = new LogWindow({ maxRows: 3 });
    log.liveAt(3);
    log.openAtTail({ events: range(1, 3).reverse(), more: false });
    log.live(range(4, 6));
    check(shape(log) === "4,5,6" && !log.olderExhausted, shape(log));
    log.prependOlder({ events: range(1, 3).reverse(), more: false });
    check(shape(log) === "1,2,3", shape(log));
    return shape(log);
  },
  "a deep link opens around its offset and pages forward to the live end"() {
    const log = new LogWindow();
    log.liveAt(100);
    log.openAround({ events: range(48, 50).reverse(), more: true }, { events: range(51, 53), more: true });
    check(!log.attached && log.indexOf(50) === 2, `index ${log.indexOf(50)}`);
    log.appendNewer({ events: range(54, 100), more: false });
    check(log.attached && log.newest === 100, `newest ${log.newest}`);
    return `${log.rows.length} rows`;
  },
  "100,000 lines are held within the bound"() {
    const log = new LogWindow({ maxRows: 50_000 });
    log.liveAt(0);
    log.openAtTail({ events: [], more: false });
    log.live(range(1, 100_000));
    check(log.rows.length === 50_000 && log.oldest === 50_001 && log.newest === 100_000, `${log.oldest}-${log.newest}`);
    return "50,000 rows kept";
  },
};

export function run() {
  return Object.entries(CASES).map(([name, body]) => {
    try {
      return { name, ok: true, detail: body() };
    } catch (error) {
      return { name, ok: false, detail: String(error) };
    }
  });
}
