// Scalar and hardware points per run and series, kept for the run charts; EMA smoothing; and
// the column layout uPlot draws. Pure: no DOM, no clock, no connection.
//
// Memory bound: a series keeps at most SERIES_POINT_LIMIT points. Below the bound every point
// is kept exactly. When a new point would pass it, the older half of the series is thinned to
// every second point (the newest half stays exact), so a long run keeps its whole shape in a
// fixed amount of memory; `thinned` counts the points let go.

/** Points one series keeps at most (per run and series name). */
export const SERIES_POINT_LIMIT = 20_000;
/** Charts' columns kept computed; past it the cache starts again (a slider makes many keys). */
const COLUMN_CACHE_LIMIT = 256;

/**
 * One point of a series, as the worker sent it.
 * @typedef {{offset: number, step: number | null, time: number, value: number}} SeriesPoint
 * `time` is the event's create_time in seconds since the epoch (uPlot's time unit).
 */

/** Seconds since the epoch of an RFC 3339 time, or NaN. @param {string} text */
export function secondsOf(text) {
  return Date.parse(text) / 1000;
}

/** The points of one series of one run, ordered by offset, without duplicates. */
export class Series {
  /** @param {number} [limit] */
  constructor(limit = SERIES_POINT_LIMIT) {
    if (!(limit >= 4)) {
      throw new RangeError(`a series must keep at least 4 points, not ${limit}`);
    }
    this.limit = limit;
    /** @type {SeriesPoint[]} */
    this.points = [];
    this.thinned = 0;
    /** Bumped on every change, so a chart can tell whether to compute its columns again. */
    this.version = 0;
  }

  /** Add a point; a point whose offset is already held is ignored. @param {SeriesPoint} point */
  add(point) {
    const points = this.points;
    const last = points.length === 0 ? null : points[points.length - 1];
    if (last === null || point.offset > last.offset) {
      points.push(point);
    } else {
      const index = insertionIndex(points, point.offset);
      if (index < points.length && points[index].offset === point.offset) {
        return;
      }
      points.splice(index, 0, point);
    }
    this.version += 1;
    if (points.length > this.limit) {
      this.thin();
    }
  }

  /** Keep every second point of the older half. */
  thin() {
    const half = Math.floor(this.points.length / 2);
    const older = this.points.slice(0, half).filter((_, index) => index % 2 === 1);
    this.thinned += half - older.length;
    this.points = older.concat(this.points.slice(half));
  }
}

/** @param {SeriesPoint[]} points @param {number} offset */
function insertionIndex(points, offset) {
  let low = 0;
  let high = points.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (points[middle].offset < offset) {
      low = middle + 1;
    } else {
      high = middle;
    }
  }
  return low;
}

/**
 * Every scalar and hardware series of the runs a page follows: run id -> series name -> Series.
 * Scalars are keyed by their payload's `name`; hardware samples by the metric names of
 * hardwareMetrics(). Events of other kinds, and events without a run, are ignored.
 */
export class RunSeries {
  /** @param {number} [limit] points per series */
  constructor(limit = SERIES_POINT_LIMIT) {
    this.limit = limit;
    /** @type {Map<string, Map<string, Series>>} */
    this.scalars = new Map();
    /** @type {Map<string, Map<string, Series>>} */
    this.hardware = new Map();
    /** @type {Map<string, {versions: string, columns: Array<Array<number | null>>}>} */
    this.columnCache = new Map();
  }

  /**
   * chartColumns() of one series name over the runs, the same array again while none of its
   * series changed (so a chart redraws only when its data did).
   * @param {"scalars" | "hardware"} table
   * @param {string} name @param {string[]} runIds
   * @param {"step" | "time"} xMode @param {number} weight
   */
  columnsOf(table, name, runIds, xMode, weight) {
    const series = runIds.map((runId) => this[table].get(runId)?.get(name));
    const key = JSON.stringify([table, name, runIds, xMode, weight]);
    const versions = series.map((each) => each?.version ?? -1).join(",");
    const cached = this.columnCache.get(key);
    if (cached !== undefined && cached.versions === versions) {
      return cached.columns;
    }
    if (this.columnCache.size >= COLUMN_CACHE_LIMIT) {
      this.columnCache.clear();
    }
    const columns = chartColumns(series.map((each) => each?.points ?? []), xMode, weight);
    this.columnCache.set(key, { versions, columns });
    return columns;
  }

  /**
   * Take the events of a history page or a live batch, in any order; true if one was new.
   * @param {Array<any>} events EventMsg objects as decoded from the wire
   */
  addEvents(events) {
    let changed = false;
    for (const event of events) {
      const runId = event.run_id;
      const payload = event.payload;
      if (typeof runId !== "string" || payload === null || typeof payload !== "object") {
        continue;
      }
      const time = secondsOf(event.create_time);
      if (payload.kind === "scalar" && typeof payload.value === "number") {
        const step = typeof payload.step === "number" ? payload.step : null;
        const point = { offset: event.offset, step, time, value: payload.value };
        changed = this.put(this.scalars, runId, String(payload.name), point) || changed;
      } else if (payload.kind === "hardware") {
        for (const [metric, value] of hardwareMetrics(payload)) {
          const point = { offset: event.offset, step: null, time, value };
          changed = this.put(this.hardware, runId, metric, point) || changed;
        }
      }
    }
    return changed;
  }

  /**
   * @param {Map<string, Map<string, Series>>} table
   * @param {string} runId @param {string} name @param {SeriesPoint} point
   */
  put(table, runId, name, point) {
    let byName = table.get(runId);
    if (byName === undefined) {
      byName = new Map();
      table.set(runId, byName);
    }
    let series = byName.get(name);
    if (series === undefined) {
      series = new Series(this.limit);
      byName.set(name, series);
    }
    const before = series.points.length + series.thinned;
    series.add(point);
    return series.points.length + series.thinned !== before;
  }

  /** Scalar series names over the given runs, sorted. @param {string[]} runIds */
  scalarNames(runIds) {
    return namesOf(this.scalars, runIds);
  }

  /** Hardware metric names over the given runs, in hardwareMetrics() order. @param {string[]} runIds */
  hardwareNames(runIds) {
    return namesOf(this.hardware, runIds).sort(compareMetrics);
  }

  /** The earliest and latest time over every series of the runs, or null. @param {string[]} runIds */
  timeRange(runIds) {
    let low = Infinity;
    let high = -Infinity;
    for (const table of [this.scalars, this.hardware]) {
      for (const runId of runIds) {
        for (const series of table.get(runId)?.values() ?? []) {
          if (series.points.length > 0) {
            low = Math.min(low, series.points[0].time);
            high = Math.max(high, series.points[series.points.length - 1].time);
          }
        }
      }
    }
    return low <= high ? { min: low, max: high } : null;
  }
}

/** @param {Map<string, Map<string, Series>>} table @param {string[]} runIds */
function namesOf(table, runIds) {
  const names = new Set();
  for (const runId of runIds) {
    for (const name of table.get(runId)?.keys() ?? []) {
      names.add(name);
    }
  }
  return [...names].sort();
}

/** @param {string} a @param {string} b */
function compareMetrics(a, b) {
  const rank = (/** @type {string} */ name) =>
    name.startsWith("cpu") ? 0 : name.startsWith("ram") ? 1 : 2;
  return rank(a) - rank(b) || a.localeCompare(b, "en", { numeric: true });
}

/**
 * The metrics of a hardware payload as [name, value] pairs: `cpu %`, `ram %` (used of total),
 * `ram GB`, and per GPU `gpu<i> load %`, `gpu<i> memory GB`, `gpu<i> temperature °C`; absent
 * fields give no metric.
 * @param {any} payload
 * @returns {Array<[string, number]>}
 */
export function hardwareMetrics(payload) {
  /** @type {Array<[string, number]>} */
  const metrics = [];
  const gb = (/** @type {number} */ bytes) => bytes / 1e9;
  if (typeof payload.cpu_percent === "number") {
    metrics.push(["cpu %", payload.cpu_percent]);
  }
  if (typeof payload.memory_used_bytes === "number") {
    if (typeof payload.memory_total_bytes === "number" && payload.memory_total_bytes > 0) {
      metrics.push(["ram %", (100 * payload.memory_used_bytes) / payload.memory_total_bytes]);
    }
    metrics.push(["ram GB", gb(payload.memory_used_bytes)]);
  }
  for (const gpu of Array.isArray(payload.gpus) ? payload.gpus : []) {
    const prefix = `gpu${gpu.index}`;
    if (typeof gpu.utilization_percent === "number") {
      metrics.push([`${prefix} load %`, gpu.utilization_percent]);
    }
    if (typeof gpu.memory_used_bytes === "number") {
      metrics.push([`${prefix} memory GB`, gb(gpu.memory_used_bytes)]);
    }
    if (typeof gpu.temperature_c === "number") {
      metrics.push([`${prefix} temperature °C`, gpu.temperature_c]);
    }
  }
  return metrics;
}

/**
 * Exponential moving average with TensorBoard's debiasing: `last = last * weight + (1 - weight)
 * * value`, divided by `1 - weight ** n` for the n-th finite value. Weight 0 returns the values;
 * a null or non-finite value stays as it is and does not move the average.
 * @param {Array<number | null>} values
 * @param {number} weight in [0, 1)
 * @returns {Array<number | null>}
 */
export function ema(values, weight) {
  if (!(weight >= 0 && weight < 1)) {
    throw new RangeError(`smoothing weight must be in [0, 1), not ${weight}`);
  }
  let last = 0;
  let count = 0;
  return values.map((value) => {
    if (value === null || !Number.isFinite(value)) {
      return value;
    }
    last = last * weight + (1 - weight) * value;
    count += 1;
    return weight === 0 ? value : last / (1 - weight ** count);
  });
}

/**
 * The x of a point: its step (or, for a scalar sent without one, its offset) or its time.
 * @param {SeriesPoint} point @param {"step" | "time"} xMode
 */
export function xOf(point, xMode) {
  if (xMode === "time") {
    return point.time;
  }
  return point.step ?? point.offset;
}

/**
 * uPlot's columns for several lines on one x axis: `[xs, ys of line 0, ys of line 1, ...]`, the
 * xs the sorted union of every line's xs, null where a line has no point at an x. Two points
 * of one line at the same x (a step sent twice) keep the later one.
 * @param {Array<SeriesPoint[]>} lines
 * @param {"step" | "time"} xMode
 * @returns {Array<Array<number | null>>}
 */
export function alignColumns(lines, xMode) {
  const xs = [...new Set(lines.flatMap((points) => points.map((p) => xOf(p, xMode))))].sort(
    (a, b) => a - b,
  );
  const column = new Map(xs.map((x, index) => [x, index]));
  const ys = lines.map((points) => {
    /** @type {Array<number | null>} */
    const values = new Array(xs.length).fill(null);
    for (const point of points) {
      values[/** @type {number} */ (column.get(xOf(point, xMode)))] = point.value;
    }
    return values;
  });
  return [xs, ...ys];
}

/**
 * Columns for a chart of several runs: per run the raw line, then (when `weight` > 0) its
 * smoothed line computed over that run's own points.
 * @param {Array<SeriesPoint[]>} lines one per run
 * @param {"step" | "time"} xMode
 * @param {number} weight smoothing weight, 0 for none
 */
export function chartColumns(lines, xMode, weight) {
  const [xs, ...raw] = alignColumns(lines, xMode);
  if (weight === 0) {
    return [xs, ...raw];
  }
  const columns = [xs];
  for (const values of raw) {
    columns.push(values, ema(values, weight));
  }
  return columns;
}
