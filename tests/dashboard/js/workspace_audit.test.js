// The audit (app/audit.js) and the text helpers of the log (app/event-lines.js).

import { auditEntries } from "/app/audit.js";
import { levelOf, safeHref } from "/app/event-lines.js";

/** @param {number} offset @param {object} semaphores */
function semaphores(offset, semaphores) {
  return {
    workspace: "w",
    offset,
    create_time: "2026-01-01T00:00:00Z",
    received_time: "2026-01-01T00:00:00Z",
    payload: { kind: "semaphores", ...semaphores },
  };
}

/** @param {boolean} condition @param {string} message */
function check(condition, message) {
  if (!condition) {
    throw new Error(message);
  }
}

/** @type {Record<string, () => string>} */
const CASES = {
  "catches, releases and mutex changes are named with who and why"() {
    const entries = auditEntries([
      semaphores(1, { has_mutex: true, holder: "run-a", fence: 1 }),
      semaphores(2, { caught: true, has_mutex: true, holder: "run-a", fence: 1, by: "alice", reason: "odd" }),
      semaphores(3, { caught: true, has_mutex: false, fence: 1, by: "alice", reason: "odd" }),
      semaphores(4, { caught: false, fence: 1, by: "bob" }),
      semaphores(5, { caught: false, fence: 1, by: "carol" }),
    ]);
    const text = entries.map((entry) => `${entry.offset}:${entry.what}:${entry.by ?? ""}:${entry.holder ?? ""}`).join(" ");
    check(
      text === "1:mutex granted::run-a 2:caught:alice:run-a 3:mutex freed::run-a 4:released:bob: 5:released:carol:",
      text,
    );
    check(entries[1].reason === "odd", "reason lost");
    return text;
  },
  "only http and https URLs become links"() {
    const cases = {
      "https://ci.example/build/7": "https://ci.example/build/7",
      "http://ci.example/": "http://ci.example/",
      "javascript:alert(1)": null,
      " JavaScript:alert(1)": null,
      "data:text/html,<script>alert(1)</script>": null,
      "/relative": null,
      "<img src=x onerror=alert(1)>": null,
    };
    for (const [text, expected] of Object.entries(cases)) {
      check(safeHref(text) === expected, `${text}: ${safeHref(text)}`);
    }
    return `${Object.keys(cases).length} URLs`;
  },
  "levels come from log levels and event severities"() {
    const of = (/** @type {object} */ payload) => levelOf({ payload });
    check(of({ kind: "log", level: "critical" }) === "critical", "log level");
    check(of({ kind: "event", severity: "error" }) === "error", "event severity");
    check(of({ kind: "scalar", name: "loss", value: 1 }) === "debug", "scalar");
    check(of({ kind: "presence", state: "disconnected" }) === "warning", "presence");
    return "ok";
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
