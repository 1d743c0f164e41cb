// A chart's columns kept from frame to frame (ChartColumns): after every batch of points they
// equal the full recompute, drawable(chartColumns(...)), on the same points; live appends are
// merged into the tail without a full build; thinning, a history page older than the live
// points and a step that goes back are built again in full.

import { ChartColumns, RunSeries, Series, chartColumns, drawable } from "/app/series.js";
import { firstDifference } from "./compare.js";

/** @param {string} name @param {unknown} actual @param {unknown} expected */
function check(name, actual, expected) {
  const difference = firstDifference(actual, expected);
  return { name, ok: difference === null, detail: difference ?? "" };
}

/** A seeded generator of numbers in [0, 1) (mulberry32), so a failure can be replayed. @param {number} seed */
function random(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The full recompute a chart's columns must equal.
 * @param {Array<Series | undefined>} series @param {"step" | "time"} xMode
 * @param {number} weight @param {boolean} logY
 */
function reference(series, xMode, weight, logY) {
  return drawable(chartColumns(series.map((each) => each?.points ?? []), xMode, weight), logY);
}

/**
 * Feed batches of points to series and a ChartColumns, comparing after every batch; the first
 * difference found (with the batch it was in), or null.
 * @param {Array<Array<Array<{run: number, point: import("/app/series.js").SeriesPoint}>>>} batches
 * @param {{runs: number, limit: number, xMode: "step" | "time", weight: number, logY: boolean}} options
 */
function replay(batches, { runs, limit, xMode, weight, logY }) {
  /** @type {Array<Series | undefined>} */
  const series = new Array(runs).fill(undefined);
  const chart = new ChartColumns(xMode, weight, logY);
  chart.update(series);
  let previous = chart.columns;
  for (const [number, batch] of batches.entries()) {
    for (const { run, point } of batch) {
      series[run] ??= new Series(limit);
      /** @type {Series} */ (series[run]).add(point);
    }
    const changed = chart.update(series);
    const difference = firstDifference(chart.columns, reference(series, xMode, weight, logY));
    if (difference !== null) {
      return { difference: `batch ${number}: ${difference}`, builds: chart.builds };
    }
    if (changed !== (chart.columns !== previous)) {
      return { difference: `batch ${number}: update() said ${changed}`, builds: chart.builds };
    }
    previous = chart.columns;
  }
  return { difference: null, builds: chart.builds, thinned: series.map((each) => each?.thinned ?? 0) };
}

/** @param {number} offset @param {number | null} step @param {number} value @param {number} [time] */
function point(offset, step, value, time = 1_700_000_000 + offset / 100) {
  return { offset, step, time, value };
}

export async function run() {
  return [
    liveAppendsAreMergedNotRebuilt(),
    aStepSentTwiceKeepsTheLaterValue(),
    acrossThinning(),
    olderHistoryAndStepsGoingBack(),
    overlaidRunsOnTime(),
    randomisedAgainstTheFullRecompute(),
    columnsOfKeepsOneChartPerSettings(),
  ];
}

function liveAppendsAreMergedNotRebuilt() {
  const outcomes = [];
  for (const weight of [0, 0.6, 0.99]) {
    for (const logY of [false, true]) {
      /** @type {Array<Array<{run: number, point: any}>>} */
      const batches = [];
      let offset = 0;
      for (let frame = 0; frame < 40; frame += 1) {
        const batch = [];
        for (let each = 0; each < 7; each += 1) {
          offset += 1;
          // Values cross zero, so a log axis has holes to leave out.
          batch.push({ run: 0, point: point(offset, offset, Math.sin(offset / 9) * 3) });
        }
        batches.push(batch);
      }
      const { difference, builds } = replay(batches, { runs: 1, limit: 20_000, xMode: "step", weight, logY });
      outcomes.push({ weight, logY, difference, builds });
    }
  }
  return check(
    "live points are merged into the columns without a full build and equal the full recompute",
    outcomes,
    outcomes.map(({ weight, logY }) => ({ weight, logY, difference: null, builds: 1 })),
  );
}

function aStepSentTwiceKeepsTheLaterValue() {
  const batches = [
    [{ run: 0, point: point(1, 0, 1) }, { run: 0, point: point(2, 1, 5) }],
    [{ run: 0, point: point(3, 1, 7) }],
    [{ run: 0, point: point(4, 1, 2) }, { run: 0, point: point(5, 2, 4) }, { run: 0, point: point(6, 2, 6) }],
  ];
  const outcome = replay(batches, { runs: 1, limit: 100, xMode: "step", weight: 0.5, logY: false });
  return check(
    "a step sent again replaces the value there, smoothed from the average before it",
    [outcome.difference, outcome.builds],
    [null, 1],
  );
}

function acrossThinning() {
  /** @type {Array<Array<{run: number, point: any}>>} */
  const batches = [];
  let offset = 0;
  for (let frame = 0; frame < 60; frame += 1) {
    const batch = [];
    for (let each = 0; each < 5; each += 1) {
      offset += 1;
      batch.push({ run: 0, point: point(offset, offset, 10 / offset) });
      batch.push({ run: 1, point: point(offset + 10_000, offset, 20 / offset) });
    }
    batches.push(batch);
  }
  const outcome = replay(batches, { runs: 2, limit: 16, xMode: "step", weight: 0.6, logY: false });
  return check(
    "across thinning the columns are built again and equal the full recompute",
    [outcome.difference, outcome.thinned?.every((count) => count > 200), outcome.builds > 1, outcome.builds < 60],
    [null, true, true, true],
  );
}

function olderHistoryAndStepsGoingBack() {
  const batches = [
    // Live points first, then a history page of older ones, then a restart at step 0.
    [50, 51, 52].map((step) => ({ run: 0, point: point(step, step, step / 10) })),
    [10, 11, 12].map((step) => ({ run: 0, point: point(step, step, -step) })),
    [53].map((step) => ({ run: 0, point: point(step, step, 1) })),
    [60, 61].map((offset, index) => ({ run: 0, point: point(offset, index, 3) })),
    [62].map((offset) => ({ run: 0, point: point(offset, 52, 4) })),
    [63].map((offset) => ({ run: 0, point: point(offset, 80, 5) })),
  ];
  const outcome = replay(batches, { runs: 1, limit: 100, xMode: "step", weight: 0.6, logY: true });
  return check(
    "an older history page and a step going back are built again and equal the full recompute",
    outcome.difference,
    null,
  );
}

function overlaidRunsOnTime() {
  // Two runs whose points interleave in time, one behind the other, on the wall-clock axis:
  // a lagging run's points go into the tail of the columns, between the other run's xs.
  const next = random(7);
  /** @type {Array<Array<{run: number, point: any}>>} */
  const batches = [];
  let offset = 0;
  const clocks = [100, 100];
  for (let frame = 0; frame < 80; frame += 1) {
    const batch = [];
    for (let each = 0; each < 6; each += 1) {
      const run = next() < 0.5 ? 0 : 1;
      clocks[run] += next() < 0.2 ? 0 : Math.round(next() * 5) / 4;
      offset += 1;
      batch.push({ run, point: point(offset, null, next() * 4 - 1, clocks[run]) });
    }
    batches.push(batch);
  }
  const outcome = replay(batches, { runs: 2, limit: 20_000, xMode: "time", weight: 0.8, logY: true });
  return check(
    "runs overlaid on wall-clock time merge into the tail and equal the full recompute",
    [outcome.difference, outcome.builds],
    [null, 1],
  );
}

function randomisedAgainstTheFullRecompute() {
  const failures = [];
  for (let seed = 1; seed <= 60; seed += 1) {
    const next = random(seed);
    const runs = 1 + Math.floor(next() * 3);
    const xMode = next() < 0.5 ? "step" : "time";
    const weight = [0, 0.3, 0.9][Math.floor(next() * 3)];
    const logY = next() < 0.5;
    const limit = 8 + Math.floor(next() * 40);
    const steps = new Array(runs).fill(0);
    const offsets = new Array(runs).fill(0).map((_, run) => (run + 1) * 100_000);
    /** @type {Array<Array<{run: number, point: any}>>} */
    const batches = [];
    for (let frame = 0; frame < 50; frame += 1) {
      const batch = [];
      const size = Math.floor(next() * 8);
      for (let each = 0; each < size; each += 1) {
        const run = Math.floor(next() * runs);
        const roll = next();
        // Mostly forward; sometimes the same step again, a step back, or an older offset
        // (a history page arriving after live points); sometimes no step at all.
        steps[run] += roll < 0.1 ? 0 : roll < 0.15 ? -Math.floor(next() * 5) : 1 + Math.floor(next() * 3);
        const older = next() < 0.05;
        offsets[run] += older ? 0 : 1 + Math.floor(next() * 2);
        const offset = older ? offsets[run] - 1 - Math.floor(next() * 50) : offsets[run];
        const step = next() < 0.05 ? null : steps[run];
        const value = next() < 0.1 ? 0 : Math.round((next() * 10 - 2) * 1000) / 1000;
        batch.push({ run, point: point(offset, step, value, 1_700_000_000 + steps[run] / 4) });
      }
      batches.push(batch);
    }
    const outcome = replay(batches, { runs, limit, xMode, weight, logY });
    if (outcome.difference !== null) {
      failures.push({ seed, runs, xMode, weight, logY, limit, difference: outcome.difference });
    }
  }
  return check("random batches of points give the columns of the full recompute after every batch", failures, []);
}

function columnsOfKeepsOneChartPerSettings() {
  const model = new RunSeries();
  /** @param {number} offset @param {number} step @param {number} value */
  const scalar = (offset, step, value) => ({
    workspace: "w",
    offset,
    create_time: "2026-01-01T00:00:00Z",
    received_time: "2026-01-01T00:00:00Z",
    run_id: "a",
    payload: { kind: "scalar", name: "loss", value, step },
  });
  model.addEvents([scalar(1, 0, 4), scalar(2, 1, 3)]);
  const smoothed = model.columnsOf("scalars", "loss", ["a"], "step", 0.5, true);
  const [xs, raw] = smoothed;
  model.addEvents([scalar(3, 2, -1), scalar(4, 3, 2)]);
  const after = model.columnsOf("scalars", "loss", ["a"], "step", 0.5, true);
  const plain = model.columnsOf("scalars", "loss", ["a"], "step", 0, false);
  const series = model.scalars.get("a")?.get("loss");
  return check(
    "columnsOf() appends to a chart's columns in place and answers each setting apart",
    [after !== smoothed, after[0] === xs, after[1] === raw, after, plain],
    [
      true,
      true,
      true,
      drawable(chartColumns([series?.points ?? []], "step", 0.5), true),
      chartColumns([series?.points ?? []], "step", 0),
    ],
  );
}
