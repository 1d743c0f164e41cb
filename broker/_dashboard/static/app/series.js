// Scalar and hardware points per run and series, kept for the run charts; EMA smoothing; and
// the column layout uPlot draws. Pure: no DOM, no clock, no connection.
//
// Memory bound: a series keeps at most SERIES_POINT_LIMIT points. Below the bound every point
// is kept exactly. When a new point would pass it, the older half of the series is thinned to
// every second point (the newest half stays exact), so a long run keeps its whole shape in a
// fixed amount of memory; `thinned` counts the points let go.
//
// Per frame cost: a chart's columns (ChartColumns) are kept from one frame to the next. Points
// appended to a series at or past its line's largest x are merged into the columns' tail and
// smoothed from the EMA's kept state, so a live frame costs what it brought, not the series'
// length. The columns are built again in full only when that cannot be done: a series was
// thinned or took a point before its end, or a point went back on the x axis.

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
    /**
     * Bumped when points were dropped or one was put before the end (thinning, a history page
     * older than the live points): a chart's columns are then built again, not appended to.
     */
    this.reshaped = 0;
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
      this.reshaped += 1;
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
    this.reshaped += 1;
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
    /** @type {Map<string, ChartColumns>} */
    this.columnCache = new Map();
  }

  /**
   * The columns a chart of one series name over the runs draws: drawable() of
   * chartColumns(), kept up to date from frame to frame (ChartColumns). The same outer array
   * comes back while none of its series changed, so a chart redraws only when its data did;
   * the column arrays inside it may be reused, extended in place, from one change to the next.
   * @param {"scalars" | "hardware"} table
   * @param {string} name @param {string[]} runIds
   * @param {"step" | "time"} xMode @param {number} weight @param {boolean} [logY]
   */
  columnsOf(table, name, runIds, xMode, weight, logY = false) {
    const key = `${table}\u0000${name}\u0000${runIds.join("\u0000")}\u0000${xMode}\u0000${weight}\u0000${logY}`;
    let chart = this.columnCache.get(key);
    if (chart === undefined) {
      if (this.columnCache.size >= COLUMN_CACHE_LIMIT) {
        this.columnCache.clear();
      }
      chart = new ChartColumns(xMode, weight, logY);
      this.columnCache.set(key, chart);
    }
    const byRun = this[table];
    chart.update(runIds.map((runId) => byRun.get(runId)?.get(name)));
    return chart.columns;
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

/**
 * The columns as a chart draws them: on a log y axis a value at or below zero (or not a number)
 * has no place and becomes a hole (null). Without a log axis, the columns as they are.
 * @param {Array<Array<number | null>>} columns @param {boolean} logY
 */
export function drawable(columns, logY) {
  if (!logY) {
    return columns;
  }
  return [columns[0], ...columns.slice(1).map((ys) => ys.map(drawnOnLog))];
}

/** @param {number | null} y */
function drawnOnLog(y) {
  return y !== null && y > 0 ? y : null;
}

/**
 * Where a line of a chart has got to: the points of its series taken so far, its largest x, and
 * the EMA's state after its value at that x and before it (a later point at the same x
 * replaces that value, so the average is taken again from the state before it).
 */
class LineState {
  /** @param {Series | undefined} series */
  constructor(series) {
    this.series = series;
    this.version = -1;
    this.reshaped = series?.reshaped ?? 0;
    /** Points of the series already in the columns. */
    this.taken = 0;
    this.maxX = -Infinity;
    this.last = 0;
    this.count = 0;
    this.lastBefore = 0;
    this.countBefore = 0;
  }
}

/**
 * One chart's columns, kept from frame to frame. After every update() they equal
 * `drawable(chartColumns(points of each series, xMode, weight), logY)`; but points appended to a
 * series at or past the largest x of its line are merged into the columns' tail, and their
 * smoothed values continue from the kept EMA state, instead of everything being computed again.
 * The columns are built again in full when a series was reshaped (thinned, or given a point
 * before its end), a point goes back on the x axis, or the run set changes (a new ChartColumns).
 */
export class ChartColumns {
  /** @param {"step" | "time"} xMode @param {number} weight @param {boolean} logY */
  constructor(xMode, weight, logY) {
    if (!(weight >= 0 && weight < 1)) {
      throw new RangeError(`smoothing weight must be in [0, 1), not ${weight}`);
    }
    this.xMode = xMode;
    this.weight = weight;
    this.logY = logY;
    /** @type {Array<Array<number | null>>} a new outer array after every change */
    this.columns = [[]];
    /** @type {LineState[]} */
    this.lines = [];
    /** Full builds so far (appends are not counted). */
    this.builds = 0;
    /** Whether the columns can be appended to: every x in them is a finite number, not -0. */
    this.appendable = false;
  }

  /**
   * Bring the columns up to date; true if they changed.
   * @param {Array<Series | undefined>} series one per line (run), undefined for a run without any
   */
  update(series) {
    const lines = this.lines;
    if (this.builds === 0 || lines.length !== series.length) {
      this.build(series);
      return true;
    }
    let changed = false;
    let appendable = this.appendable;
    for (let index = 0; index < series.length; index += 1) {
      const each = series[index];
      let line = lines[index];
      if (line.series !== each) {
        if (line.series !== undefined) {
          appendable = false;
        }
        line = new LineState(each);
        lines[index] = line;
      }
      if (each === undefined || each.version === line.version) {
        continue;
      }
      changed = true;
      if (!appendable || each.reshaped !== line.reshaped) {
        appendable = false;
        continue;
      }
      let maxX = line.maxX;
      const points = each.points;
      for (let at = line.taken; at < points.length; at += 1) {
        const x = xOf(points[at], this.xMode);
        if (!(x >= maxX) || !isPlainX(x)) {
          appendable = false;
          break;
        }
        maxX = x;
      }
    }
    if (!changed) {
      return false;
    }
    if (appendable) {
      this.append();
    } else {
      this.build(series);
    }
    return true;
  }

  /** Merge the lines' new points into the columns' tail. */
  append() {
    const xMode = this.xMode;
    const xs = /** @type {number[]} */ (this.columns[0]);
    /** @type {number[]} */
    const fresh = [];
    let sorted = true;
    for (const line of this.lines) {
      const points = line.series?.points ?? [];
      for (let at = line.taken; at < points.length; at += 1) {
        const x = xOf(points[at], xMode);
        if (fresh.length > 0 && x < fresh[fresh.length - 1]) {
          sorted = false;
        }
        fresh.push(x);
      }
    }
    if (fresh.length === 0) {
      this.lines.forEach((line) => this.caughtUp(line));
      return;
    }
    if (!sorted) {
      fresh.sort((a, b) => a - b);
    }
    // Every column keeps its head up to the first new x; the tail is merged with the new xs,
    // a hole for each line at each x it has no value at yet.
    const start = lowerBound(xs, fresh[0], 0);
    const tailXs = xs.slice(start);
    const tails = this.columns.map((column) => column.slice(start));
    for (const column of this.columns) {
      column.length = start;
    }
    let old = 0;
    for (let at = 0; at < fresh.length || old < tailXs.length; ) {
      const x = old < tailXs.length && (at >= fresh.length || tailXs[old] <= fresh[at]) ? tailXs[old] : fresh[at];
      const kept = old < tailXs.length && tailXs[old] === x;
      for (let column = 0; column < tails.length; column += 1) {
        this.columns[column].push(kept ? tails[column][old] : column === 0 ? x : null);
      }
      if (kept) {
        old += 1;
      }
      while (at < fresh.length && fresh[at] === x) {
        at += 1;
      }
    }
    const width = this.weight > 0 ? 2 : 1;
    this.lines.forEach((line, index) => {
      const series = line.series;
      if (series === undefined) {
        return;
      }
      const raw = this.columns[1 + index * width];
      const smooth = this.columns[2 + index * width];
      const points = series.points;
      for (let at = line.taken; at < points.length; at += 1) {
        const point = points[at];
        const x = xOf(point, xMode);
        const slot = lowerBound(xs, x, start);
        raw[slot] = this.drawn(point.value);
        if (x === line.maxX) {
          // A later point at the same x replaces the value there.
          line.last = line.lastBefore;
          line.count = line.countBefore;
        } else {
          line.lastBefore = line.last;
          line.countBefore = line.count;
          line.maxX = x;
        }
        if (width === 2) {
          smooth[slot] = this.drawn(this.smooth(line, point.value));
        }
      }
      this.caughtUp(line);
    });
    this.columns = this.columns.slice();
  }

  /**
   * The columns from the series' points, and each line's state.
   * @param {Array<Series | undefined>} series
   */
  build(series) {
    this.builds += 1;
    this.lines = series.map((each) => new LineState(each));
    const lines = series.map((each) => each?.points ?? []);
    const union = this.unionOfXs(lines);
    this.appendable = union !== null;
    const [xs, ...raw] =
      union === null
        ? alignColumns(lines, this.xMode)
        : [
            union,
            ...lines.map((points) => {
              /** @type {Array<number | null>} */
              const values = new Array(union.length).fill(null);
              for (const point of points) {
                values[lowerBound(union, xOf(point, this.xMode), 0)] = point.value;
              }
              return values;
            }),
          ];
    const all = [xs];
    raw.forEach((values, index) => {
      const line = this.lines[index];
      /** @type {Array<number | null>} */
      const smoothed = this.weight > 0 ? new Array(values.length) : [];
      for (let slot = 0; slot < values.length; slot += 1) {
        const value = values[slot];
        if (value === null) {
          smoothed[slot] = null;
          continue;
        }
        line.lastBefore = line.last;
        line.countBefore = line.count;
        line.maxX = /** @type {number} */ (xs[slot]);
        if (this.weight > 0) {
          smoothed[slot] = this.smooth(line, value);
        }
      }
      this.caughtUp(line);
      all.push(values);
      if (this.weight > 0) {
        all.push(smoothed);
      }
    });
    this.columns = drawable(all, this.logY);
  }

  /**
   * The sorted distinct xs of every point, or null when one is not a finite number or is -0
   * (then alignColumns() decides, and the columns are built in full at every change).
   * @param {Array<SeriesPoint[]>} lines
   */
  unionOfXs(lines) {
    let total = 0;
    for (const points of lines) {
      total += points.length;
    }
    const every = new Float64Array(total);
    let at = 0;
    for (const points of lines) {
      for (const point of points) {
        const x = xOf(point, this.xMode);
        if (!isPlainX(x)) {
          return null;
        }
        every[at] = x;
        at += 1;
      }
    }
    every.sort();
    /** @type {number[]} */
    const xs = [];
    for (const x of every) {
      if (xs.length === 0 || x !== xs[xs.length - 1]) {
        xs.push(x);
      }
    }
    return xs;
  }

  /**
   * The next value of a line's EMA, as ema() computes it: a value that is not a finite number
   * is drawn as it is and does not move the average.
   * @param {LineState} line @param {number} value
   */
  smooth(line, value) {
    if (!Number.isFinite(value)) {
      return value;
    }
    const weight = this.weight;
    line.last = line.last * weight + (1 - weight) * value;
    line.count += 1;
    return line.last / (1 - weight ** line.count);
  }

  /** A value as this chart draws it. @param {number} value */
  drawn(value) {
    return this.logY ? drawnOnLog(value) : value;
  }

  /** Note that the columns now hold every point of the line's series. @param {LineState} line */
  caughtUp(line) {
    if (line.series !== undefined) {
      line.taken = line.series.points.length;
      line.version = line.series.version;
      line.reshaped = line.series.reshaped;
    }
  }
}

/** @param {number} x */
function isPlainX(x) {
  return Number.isFinite(x) && !Object.is(x, -0);
}

/**
 * The first index at or after `from` whose x is not below `x`.
 * @param {Array<number | null>} xs sorted @param {number} x @param {number} from
 */
function lowerBound(xs, x, from) {
  let low = from;
  let high = xs.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (/** @type {number} */ (xs[middle]) < x) {
      low = middle + 1;
    } else {
      high = middle;
    }
  }
  return low;
}
