// Progress rate and ETA: the worker's own rate wins, else measured over a window of samples;
// a bar that goes back starts again; durations and rates for people.

import { ProgressPace, RATE_WINDOW, formatDuration, formatRate } from "/app/rates.js";
import { firstDifference } from "./compare.js";

/** @param {string} name @param {unknown} actual @param {unknown} expected */
function check(name, actual, expected) {
  const difference = firstDifference(actual, expected);
  return { name, ok: difference === null, detail: difference ?? "" };
}

export async function run() {
  return [measured(), reported(), restarted(), windowed(), unknown(), formats()];
}

function measured() {
  const pace = new ProgressPace();
  pace.add({ current: 10, total: 110 }, 100);
  pace.add({ current: 30, total: 110 }, 104);
  return check("rate is measured between samples and ETA is what is left at that rate", [pace.rate(), pace.etaSeconds()], [5, 16]);
}

function reported() {
  const pace = new ProgressPace();
  pace.add({ current: 10, total: 110, rate: 2 }, 100);
  return check("the rate the worker sent is used as it is", [pace.rate(), pace.etaSeconds()], [2, 50]);
}

function restarted() {
  const pace = new ProgressPace();
  pace.add({ current: 40, total: 40 }, 100);
  pace.add({ current: 2, total: 40 }, 101);
  pace.add({ current: 6, total: 40 }, 103);
  return check("a bar that went back (a new epoch) measures from its restart", [pace.rate(), pace.etaSeconds()], [2, 17]);
}

function windowed() {
  const pace = new ProgressPace();
  for (let second = 0; second < 100; second += 1) {
    pace.add({ current: second < 50 ? second : 50 + (second - 50) * 3 }, second);
  }
  // The window holds the last RATE_WINDOW samples, all at 3 a second.
  return check("the rate covers the latest window of samples only", [pace.samples.length, pace.rate()], [RATE_WINDOW, 3]);
}

function unknown() {
  const pace = new ProgressPace();
  pace.add({ current: 5 }, 100);
  const alone = [pace.rate(), pace.etaSeconds()];
  pace.add({ current: 5, total: 10 }, 101);
  const stalled = [pace.rate(), pace.etaSeconds()];
  pace.add({ current: 10, total: 10 }, 102);
  return check(
    "no rate from one sample, no ETA without a total or while stalled, 0 when done",
    [alone, stalled, pace.etaSeconds()],
    [[null, null], [0, null], 0],
  );
}

function formats() {
  return check(
    "durations and rates read as people write them",
    [formatDuration(42), formatDuration(185), formatDuration(7620), formatDuration(273600), formatDuration(null), formatRate(12.5), formatRate(0.25), formatRate(null)],
    ["42s", "3m 05s", "2h 07m", "3d 4h", "—", "12.5/s", "15.0/min", "—"],
  );
}
