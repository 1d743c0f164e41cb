// The run views' settings in the URL, read and written back.

import { DEFAULT_SMOOTHING, parseRunsQuery, runsQueryString } from "/app/runs-query.js";
import { firstDifference } from "./compare.js";

/** @param {string} name @param {unknown} actual @param {unknown} expected */
function check(name, actual, expected) {
  const difference = firstDifference(actual, expected);
  return { name, ok: difference === null, detail: difference ?? "" };
}

export async function run() {
  return [reads(), defaults(), roundTrip()];
}

function reads() {
  return check(
    "runs, axis, log and smoothing are read from the query",
    [
      parseRunsQuery("?runs=a,b:1,a&x=time&log=1&smooth=0.9"),
      parseRunsQuery(new URLSearchParams("smooth=5")).smooth,
      parseRunsQuery({ smooth: "-1", x: "nonsense" }),
    ],
    [
      { runs: ["a", "b:1"], x: "time", log: true, smooth: 0.9 },
      0.999,
      { runs: [], x: "step", log: false, smooth: 0 },
    ],
  );
}

function defaults() {
  return check(
    "an empty or unreadable query gives the defaults",
    [parseRunsQuery(""), parseRunsQuery(null), parseRunsQuery("smooth=abc").smooth],
    [
      { runs: [], x: "step", log: false, smooth: DEFAULT_SMOOTHING },
      { runs: [], x: "step", log: false, smooth: DEFAULT_SMOOTHING },
      DEFAULT_SMOOTHING,
    ],
  );
}

function roundTrip() {
  const settings = { runs: ["a", "b"], x: /** @type {const} */ ("time"), log: true, smooth: 0 };
  return check(
    "settings written to the query read back the same; defaults are left out",
    [runsQueryString(settings), parseRunsQuery(runsQueryString(settings)), runsQueryString(parseRunsQuery(""))],
    ["?runs=a,b&x=time&log=1&smooth=0", settings, ""],
  );
}
