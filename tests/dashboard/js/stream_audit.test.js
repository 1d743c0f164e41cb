// The audit of mutex changes and calls from the stream's own attribution (app/audit.js), the
// grace countdown from the broker's grace_until (views/mutex.js), and typed action forms from
// an action's signature (app/action-args.js).

import { auditEntries } from "/app/audit.js";
import { formFields, initialValues, typedArguments } from "/app/action-args.js";
import { stateFromWire } from "/app/fold.js";
import { graceLeft } from "/app/views/mutex.js";
import { firstDifference } from "./compare.js";

/** @param {number} offset @param {object} payload */
function event(offset, payload) {
  return {
    workspace: "w",
    offset,
    create_time: "2026-01-01T00:00:00Z",
    received_time: "2026-01-01T00:00:00Z",
    payload,
  };
}

/** @param {unknown} actual @param {unknown} expected */
function same(actual, expected) {
  const difference = firstDifference(actual, expected);
  if (difference !== null) {
    throw new Error(difference);
  }
}

const GRACE_UNTIL = "2026-01-01T00:00:30Z";

/** @type {Record<string, () => string>} */
const CASES = {
  "mutex changes name who made them, calls their caller, action and outcome"() {
    const entries = auditEntries([
      event(1, { kind: "semaphores", has_mutex: true, holder: "run-a", fence: 1, mutex_change: "granted", mutex_by: "run-a" }),
      event(2, { kind: "semaphores", has_mutex: true, holder: "run-a", fence: 1, mutex_change: "holder_left", mutex_by: "run-a", grace_until: GRACE_UNTIL }),
      event(3, { kind: "semaphores", caught: true, has_mutex: true, holder: "run-a", fence: 1, by: "bob", reason: "look", grace_until: GRACE_UNTIL }),
      event(4, { kind: "semaphores", caught: true, fence: 1, by: "bob", reason: "look", mutex_change: "broken", mutex_by: "alice" }),
      event(5, { kind: "semaphores", caught: true, has_mutex: true, holder: "run-b", fence: 2, by: "bob", reason: "look", mutex_change: "granted", mutex_by: "run-b" }),
      event(6, { kind: "semaphores", caught: true, fence: 2, by: "bob", reason: "look", mutex_change: "released", mutex_by: "run-b" }),
      event(7, { kind: "semaphores", caught: true, has_mutex: true, holder: "run-c", fence: 3, by: "bob", reason: "look", mutex_change: "granted", mutex_by: "run-c" }),
      event(8, { kind: "semaphores", caught: true, fence: 3, by: "bob", reason: "look", mutex_change: "expired" }),
      event(9, { kind: "log", message: "not audited" }),
      event(10, { kind: "call", call: 4, action: "skip_host", run_id: "run-b", outcome: "ok", caller: "carol", args: { host: "db-5" } }),
      event(11, { kind: "call", call: 5, action: "skip_host", run_id: "run-b", outcome: "failed", caller: "carol", args: {}, error: { type: "KeyError", message: "'db-9'" } }),
    ]);
    const text = entries.map((entry) => `${entry.offset}:${entry.what}:${entry.by ?? ""}:${entry.holder ?? ""}`);
    same(text, [
      "1:mutex granted:run-a:run-a",
      "2:mutex holder left:run-a:run-a",
      "3:caught:bob:run-a",
      "4:mutex broken:alice:run-a",
      "5:mutex granted:run-b:run-b",
      "6:mutex released:run-b:run-b",
      "7:mutex granted:run-c:run-c",
      "8:mutex expired::run-c",
      "10:call:carol:",
      "11:call:carol:",
    ]);
    same(entries[1].reason, `lease ends ${GRACE_UNTIL}`);
    same(entries[8].call, { action: "skip_host", run_id: "run-b", args: { host: "db-5" }, outcome: "ok", error: null });
    same(entries[9].reason, "failed: KeyError: 'db-9'");
    return `${entries.length} entries`;
  },
  "the grace countdown is the broker's grace_until, not a guessed period"() {
    const now = Date.parse("2026-01-01T00:00:00Z");
    const held = (/** @type {object} */ semaphores, connected = false) =>
      stateFromWire({
        name: "w",
        epoch: 1,
        created: "2026-01-01T00:00:00Z",
        semaphores: { has_mutex: true, holder: "run-a", fence: 1, ...semaphores },
        workers: [{ run_id: "run-a", connected, connected_at: "2026-01-01T00:00:00Z", last_seen: "2025-12-31T23:00:00Z" }],
      });
    same(graceLeft(held({ grace_until: GRACE_UNTIL }), now), 30);
    same(graceLeft(held({ grace_until: GRACE_UNTIL }), now + 29_500), 1);
    same(graceLeft(held({ grace_until: GRACE_UNTIL }), now + 45_000), 0);
    same(graceLeft(held({}, true), now), null);
    same(graceLeft(held({}), now), "unknown");
    same(graceLeft(held({ has_mutex: false, holder: null }), now), null);
    return "ok";
  },
  "a signature gives typed fields; without one, JSON-or-text fields"() {
    const spec = {
      name: "set_lr",
      params: ["value", "warmup", "fast", "note", "extra"],
      signature: [
        { name: "value", kind: "number" },
        { name: "warmup", kind: "integer", required: false, default: 100 },
        { name: "fast", kind: "boolean", required: false, default: true },
        { name: "note", kind: "string" },
        { name: "extra" },
      ],
    };
    const fields = formFields(spec);
    same(fields.map((field) => `${field.name}:${field.kind}:${field.required}:${field.default}`), [
      "value:number:true:null",
      "warmup:integer:false:100",
      "fast:boolean:false:true",
      "note:string:true:null",
      "extra:json:true:null",
    ]);
    same(initialValues(fields), { value: "", warmup: "", fast: true, note: "", extra: "" });
    same(typedArguments(fields, { value: "0.5", warmup: "", fast: false, note: "123", extra: "[1]" }), {
      value: 0.5,
      fast: false,
      note: "123",
      extra: [1],
    });
    same(typedArguments(fields, { value: "abc", warmup: "7", fast: true, note: "", extra: "x" }), {
      value: "abc",
      warmup: 7,
      fast: true,
      extra: "x",
    });
    same(formFields({ name: "old", params: ["host"] }), [{ name: "host", kind: "json", required: true, default: null }]);
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
