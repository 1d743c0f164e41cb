// Action call arguments from form fields (the rule of `pierhead call key=value`), and why a
// call is refused.

import { argumentValue, callArguments, callRefusal } from "/app/action-args.js";
import { firstDifference } from "./compare.js";

/** @param {string} name @param {unknown} actual @param {unknown} expected */
function check(name, actual, expected) {
  const difference = firstDifference(actual, expected);
  return { name, ok: difference === null, detail: difference ?? "" };
}

export async function run() {
  return [values(), emptyFieldsLeftOut(), refusals()];
}

function values() {
  return check(
    "a field that parses as JSON is JSON, anything else is its text",
    ["0.01", "true", "[1, 2]", '"7"', "db-5", "{bad", "<img src=x onerror=alert(1)>"].map(argumentValue),
    [0.01, true, [1, 2], "7", "db-5", "{bad", "<img src=x onerror=alert(1)>"],
  );
}

function emptyFieldsLeftOut() {
  return check(
    "empty fields are left out so the action's defaults apply; unknown fields are ignored",
    callArguments(["host", "force", "count"], { host: "db-5", force: "  ", other: "1" }),
    { host: "db-5" },
  );
}

function refusals() {
  const cases = [
    callRefusal({ connected: false, workerOnline: true, roles: ["operator"] }),
    callRefusal({ connected: true, workerOnline: true, roles: null }),
    callRefusal({ connected: true, workerOnline: true, roles: ["watcher"] }),
    callRefusal({ connected: true, workerOnline: false, roles: ["watcher", "operator"] }),
    callRefusal({ connected: true, workerOnline: true, roles: ["watcher", "operator"] }),
  ];
  return check("a call is refused with its reason: not connected, no operator role, worker offline", cases, [
    "not connected to the broker",
    "not connected to the broker",
    "your token lacks the operator role, which calling an action needs",
    "the worker that offers it is offline",
    null,
  ]);
}
