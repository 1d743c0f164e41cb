// Hyperparameters flattened to dotted keys and compared between two runs.

import { diffParams, flattenParams } from "/app/params-diff.js";
import { deepFreeze, firstDifference } from "./compare.js";

/** @param {string} name @param {unknown} actual @param {unknown} expected */
function check(name, actual, expected) {
  const difference = firstDifference(actual, expected);
  return { name, ok: difference === null, detail: difference ?? "" };
}

export async function run() {
  return [flattens(), diffs()];
}

function flattens() {
  const flat = flattenParams(deepFreeze({ lr: 0.1, optimizer: { name: "adam", betas: [0.9, 0.99] }, tags: null }));
  return check("nested maps become dotted keys; lists and null are values", [...flat.entries()], [
    ["lr", 0.1],
    ["optimizer.name", "adam"],
    ["optimizer.betas", [0.9, 0.99]],
    ["tags", null],
  ]);
}

function diffs() {
  const rows = diffParams(
    deepFreeze({ lr: 0.1, batch: 64, optimizer: { name: "adam" }, seed: 1 }),
    deepFreeze({ lr: 0.01, batch: 64, optimizer: { name: "adam", momentum: 0.9 }, note: "<b>x</b>" }),
  );
  return check("two runs' parameters side by side, each key marked same, changed or one-sided", rows, [
    { key: "batch", left: "64", right: "64", change: "same" },
    { key: "lr", left: "0.1", right: "0.01", change: "changed" },
    { key: "note", left: "", right: '"<b>x</b>"', change: "only_right" },
    { key: "optimizer.momentum", left: "", right: "0.9", change: "only_right" },
    { key: "optimizer.name", left: '"adam"', right: '"adam"', change: "same" },
    { key: "seed", left: "1", right: "", change: "only_left" },
  ]);
}
