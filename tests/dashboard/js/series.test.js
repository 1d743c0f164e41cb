// Scalar and hardware series per run: ordered by offset without duplicates, bounded with the
// newest half exact, hardware payloads as metrics, EMA and the column layout uPlot draws.

import {
  RunSeries,
  Series,
  alignColumns,
  chartColumns,
  ema,
  hardwareMetrics,
} from "/app/series.js";
import { deepFreeze, firstDifference } from "./compare.js";

/** @param {string} name @param {unknown} actual @param {unknown} expected */
function check(name, actual, expected) {
  const difference = firstDifference(actual, expected);
  return { name, ok: difference === null, detail: difference ?? "" };
}

/** @param {number} offset @param {string} run @param {any} payload */
function event(offset, run, payload, time = "2026-01-01T00:00:00Z") {
  return { workspace: "w", offset, create_time: time, received_time: time, run_id: run, payload };
}

/** @param {number} offset @param {string} run @param {string} name @param {number} value @param {number} [step] */
function scalar(offset, run, name, value, step) {
  return event(offset, run, step === undefined ? { kind: "scalar", name, value } : { kind: "scalar", name, value, step });
}

export async function run() {
  return [
    keptPerRunAndName(),
    historyAndLiveOverlap(),
    boundKeepsNewestHalfExact(),
    belowTheBoundEverythingIsKept(),
    hardwareAsMetrics(),
    emaWeightZeroIsIdentity(),
    emaSkipsHoles(),
    emaRefusesBadWeight(),
    columnsJoinRunsOnX(),
    smoothedColumnsFollowRaw(),
    timeAxisUsesCreateTime(),
    columnsComputedAgainOnlyOnChange(),
  ];
}

function keptPerRunAndName() {
  const model = new RunSeries();
  model.addEvents(deepFreeze([
    scalar(1, "a", "loss", 2.5, 0),
    scalar(2, "a", "acc", 0.1, 0),
    scalar(3, "b", "loss", 3.5, 0),
    event(4, "a", { kind: "log", message: "x" }),
    { workspace: "w", offset: 5, create_time: "2026-01-01T00:00:00Z", received_time: "2026-01-01T00:00:00Z", payload: { kind: "scalar", name: "loss", value: 9 } },
  ]));
  const values = (/** @type {string} */ run, /** @type {string} */ name) =>
    model.scalars.get(run)?.get(name)?.points.map((point) => point.value);
  return check(
    "scalars are kept per run and name; other kinds and runless events are not",
    [values("a", "loss"), values("a", "acc"), values("b", "loss"), model.scalarNames(["a", "b"])],
    [[2.5], [0.1], [3.5], ["acc", "loss"]],
  );
}

function historyAndLiveOverlap() {
  const model = new RunSeries();
  model.addEvents([scalar(7, "a", "loss", 7, 7), scalar(8, "a", "loss", 8, 8)]);
  const page = [6, 5, 4, 7].map((offset) => scalar(offset, "a", "loss", offset, offset));
  const changed = model.addEvents(page);
  const again = model.addEvents([scalar(8, "a", "loss", 8, 8)]);
  const offsets = model.scalars.get("a")?.get("loss")?.points.map((point) => point.offset);
  return check(
    "history pages and live events merge in offset order without duplicates",
    [offsets, changed, again],
    [[4, 5, 6, 7, 8], true, false],
  );
}

function boundKeepsNewestHalfExact() {
  const series = new Series(8);
  for (let offset = 1; offset <= 9; offset += 1) {
    series.add({ offset, step: offset, time: 0, value: offset });
  }
  return check(
    "past the bound the older half is thinned and the newer half stays exact",
    [series.points.map((point) => point.offset), series.thinned],
    [[2, 4, 5, 6, 7, 8, 9], 2],
  );
}

function belowTheBoundEverythingIsKept() {
  const series = new Series(1000);
  for (let offset = 1; offset <= 1000; offset += 1) {
    series.add({ offset, step: offset, time: 0, value: offset / 3 });
  }
  const exact = series.points.every((point, index) => point.offset === index + 1 && point.value === (index + 1) / 3);
  return check("up to the bound every point is kept exactly", [series.points.length, exact, series.thinned], [1000, true, 0]);
}

function hardwareAsMetrics() {
  const payload = deepFreeze({
    kind: "hardware",
    cpu_percent: 50,
    memory_used_bytes: 4e9,
    memory_total_bytes: 16e9,
    gpus: [{ index: 0, utilization_percent: 90, memory_used_bytes: 2e9, temperature_c: 70 }, { index: 1, temperature_c: 40 }],
  });
  return check("a hardware payload becomes CPU, RAM and per-GPU metrics", hardwareMetrics(payload), [
    ["cpu %", 50],
    ["ram %", 25],
    ["ram GB", 4],
    ["gpu0 load %", 90],
    ["gpu0 memory GB", 2],
    ["gpu0 temperature °C", 70],
    ["gpu1 temperature °C", 40],
  ]);
}

function emaWeightZeroIsIdentity() {
  return check("smoothing weight 0 leaves the values as they are", ema([3, 1, 2], 0), [3, 1, 2]);
}

function emaSkipsHoles() {
  const smoothed = ema([1, null, 3], 0.5);
  // 1; hole kept; then last = 0.5*0.5 + 0.5*3 = 1.75, debiased by 1 - 0.25: 7/3.
  return check("holes stay holes and do not move the average", smoothed, [1, null, 1.75 / 0.75]);
}

function emaRefusesBadWeight() {
  const refused = [1, -0.1, Number.NaN].map((weight) => {
    try {
      ema([1], weight);
      return false;
    } catch (error) {
      return error instanceof RangeError;
    }
  });
  return check("a smoothing weight outside [0, 1) is refused", refused, [true, true, true]);
}

function columnsJoinRunsOnX() {
  const a = [{ offset: 1, step: 0, time: 10, value: 1 }, { offset: 2, step: 2, time: 11, value: 2 }];
  const b = [{ offset: 9, step: 1, time: 12, value: 5 }, { offset: 10, step: 2, time: 13, value: 6 }];
  return check("runs are joined on the union of their steps, holes as null", alignColumns([a, b], "step"), [
    [0, 1, 2],
    [1, null, 2],
    [null, 5, 6],
  ]);
}

function smoothedColumnsFollowRaw() {
  const a = [1, 2, 3].map((step) => ({ offset: step, step, time: 0, value: step * step }));
  const [xs, raw, smoothed] = chartColumns([a], "step", 0.5);
  return check("with smoothing each run has its raw column then its smoothed one", [xs, raw, smoothed], [
    [1, 2, 3],
    [1, 4, 9],
    ema([1, 4, 9], 0.5),
  ]);
}

function timeAxisUsesCreateTime() {
  const model = new RunSeries();
  model.addEvents([scalar(1, "a", "loss", 1), event(2, "a", { kind: "scalar", name: "loss", value: 2 }, "2026-01-01T00:00:01.5Z")]);
  const points = model.scalars.get("a")?.get("loss")?.points ?? [];
  const base = Date.parse("2026-01-01T00:00:00Z") / 1000;
  return check(
    "the time axis is create_time in seconds; a scalar without a step is placed at its offset",
    [alignColumns([points], "time")[0], alignColumns([points], "step")[0], model.timeRange(["a"])],
    [[base, base + 1.5], [1, 2], { min: base, max: base + 1.5 }],
  );
}

function columnsComputedAgainOnlyOnChange() {
  const model = new RunSeries();
  model.addEvents([scalar(1, "a", "loss", 1, 0), scalar(2, "b", "loss", 2, 0)]);
  const first = model.columnsOf("scalars", "loss", ["a", "b"], "step", 0);
  const same = model.columnsOf("scalars", "loss", ["a", "b"], "step", 0);
  model.addEvents([scalar(2, "b", "loss", 2, 0)]);
  const afterDuplicate = model.columnsOf("scalars", "loss", ["a", "b"], "step", 0);
  model.addEvents([scalar(3, "b", "loss", 3, 1)]);
  const changed = model.columnsOf("scalars", "loss", ["a", "b"], "step", 0);
  return check(
    "a chart's columns are the same array until one of its series changes",
    [first === same, first === afterDuplicate, first === changed, changed],
    [true, true, false, [[0, 1], [1, null], [2, 3]]],
  );
}
