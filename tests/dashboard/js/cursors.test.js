// The JavaScript cursors against the cases the SDK's SubscriptionCursors answered
// (tests/sdk/fixtures/cursor_cases.json): every answer and the cursors after every operation.

import { SubscriptionCursors } from "/app/cursors.js";
import { firstDifference } from "./compare.js";

export async function run() {
  const response = await fetch("/__fixtures__/sdk/cursor_cases.json");
  const { cases } = await response.json();
  return [...cases.map(runCase), gapsAreRemembered()];
}

/** @param {{name: string, since: any, operations: Array<Record<string, any>>}} fixture */
function runCase(fixture) {
  try {
    const cursors = new SubscriptionCursors(fixture.since);
    fixture.operations.forEach((operation, index) => {
      const result = apply(cursors, operation);
      const where = `operation ${index + 1} (${operation.op})`;
      const expected = operation.expected ?? null;
      const difference =
        firstDifference(result, expected, "answer") ??
        firstDifference(Object.fromEntries(cursors.epochs), operation.epochs, "epochs") ??
        firstDifference(Object.fromEntries(cursors.offsets), operation.offsets, "offsets");
      if (difference !== null) {
        throw new Error(`${where}: ${difference}`);
      }
    });
    return { name: fixture.name, ok: true, detail: "" };
  } catch (error) {
    return { name: fixture.name, ok: false, detail: String(error) };
  }
}

/** @param {SubscriptionCursors} cursors @param {Record<string, any>} operation */
function apply(cursors, operation) {
  switch (operation.op) {
    case "start":
      return cursors.start();
    case "subscribed":
      cursors.subscribed(operation.snapshot);
      return null;
    case "joined":
      cursors.joined(operation.state);
      return null;
    case "removed":
      cursors.removed(operation.workspace);
      return null;
    case "accept":
      return cursors.accept(operation.event);
    case "skip_to":
      cursors.skipTo(operation.workspace, operation.offset);
      return null;
    default:
      throw new Error(`unknown operation ${operation.op}`);
  }
}

function gapsAreRemembered() {
  const name = "a gap frame is remembered and skipped";
  const cursors = new SubscriptionCursors({ a: { epoch: 1, offset: 3 } });
  cursors.subscribed([{ name: "a", epoch: 1, last_offset: 40 }]);
  cursors.gap({ sub: 1, workspace: "a", from_offset: 4, to_offset: 20 });
  const accepted = [cursors.accept({ workspace: "a", offset: 20 }), cursors.accept({ workspace: "a", offset: 21 })];
  const difference =
    firstDifference(cursors.gaps, [{ workspace: "a", from_offset: 4, to_offset: 20 }], "gaps") ??
    firstDifference(accepted, [false, true], "accepted") ??
    firstDifference(cursors.start(), { a: { epoch: 1, offset: 21 } }, "start");
  return { name, ok: difference === null, detail: difference ?? "" };
}
