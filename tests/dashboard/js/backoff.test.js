// Full-jitter backoff with the random source injected: the caps double from the initial delay
// to the maximum, every delay is the draw times the cap, and reset starts again.

import { Backoff } from "/app/backoff.js";
import { firstDifference } from "./compare.js";

export async function run() {
  return [capsDoubleToTheMaximum(), drawsScaleTheCap(), resetStartsAgain(), badBoundsAreRefused()];
}

/** @param {string} name @param {unknown} actual @param {unknown} expected */
function check(name, actual, expected) {
  const difference = firstDifference(actual, expected);
  return { name, ok: difference === null, detail: difference ?? "" };
}

function capsDoubleToTheMaximum() {
  const backoff = new Backoff({ initialMs: 100, maximumMs: 1000, random: () => 1 });
  const delays = Array.from({ length: 6 }, () => backoff.nextDelayMs());
  return check("caps double to the maximum", delays, [100, 200, 400, 800, 1000, 1000]);
}

function drawsScaleTheCap() {
  const draws = [0, 0.5, 0.25];
  const backoff = new Backoff({ initialMs: 100, maximumMs: 10_000, random: () => draws.shift() });
  const delays = [backoff.nextDelayMs(), backoff.nextDelayMs(), backoff.nextDelayMs()];
  return check("each delay is the draw times the cap (full jitter)", delays, [0, 100, 100]);
}

function resetStartsAgain() {
  const backoff = new Backoff({ initialMs: 50, maximumMs: 10_000, random: () => 1 });
  for (let attempt = 0; attempt < 100; attempt += 1) {
    backoff.nextDelayMs();
  }
  const capped = backoff.nextDelayMs();
  backoff.reset();
  return check("reset starts from the initial delay", [capped, backoff.nextDelayMs()], [10_000, 50]);
}

function badBoundsAreRefused() {
  const refused = [
    { initialMs: 0, maximumMs: 10 },
    { initialMs: 20, maximumMs: 10 },
    { initialMs: Number.NaN, maximumMs: 10 },
  ].map((options) => {
    try {
      new Backoff(options);
      return false;
    } catch (error) {
      return error instanceof RangeError;
    }
  });
  return check("bounds other than 0 < initial <= maximum are refused", refused, [true, true, true]);
}
