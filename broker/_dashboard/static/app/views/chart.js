// One uPlot line chart as a Preact component, for the run views' scalars and hardware.
//
// For tests and tools, the chart's <figure class="run-chart" data-chart="NAME"> carries the
// uPlot instance as its `uplot` property: `figure.uplot.data` is what the chart draws from
// (`[xs, ys of line 0, ...]`) and `figure.uplot.series[i + 1].label` names line i.

import { useEffect, useRef } from "../../vendor/preact/hooks.mjs";
import { html } from "../html.js";
import uPlot from "../../vendor/uplot/uPlot.esm.js";

/** Line colours, one per run, in the order runs are picked. */
export const RUN_COLOURS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"];

/** The colour of the run at `index` among the picked runs. @param {number} index */
export function runColour(index) {
  return RUN_COLOURS[index % RUN_COLOURS.length];
}

/**
 * @typedef {{label: string, colour: string, faded?: boolean}} ChartLine
 */

/**
 * A line chart. The uPlot instance is made again when the lines, the axis kind or the scale
 * change, and only fed new data otherwise.
 * @param {{name: string, columns: Array<Array<number | null>>, lines: ChartLine[],
 *   time: boolean, logY?: boolean, xRange?: {min: number, max: number} | null,
 *   syncKey?: string, height?: number}} props
 */
export function LineChart({ name, columns, lines, time, logY = false, xRange = null, syncKey, height = 220 }) {
  const figure = useRef(/** @type {HTMLElement | null} */ (null));
  const box = useRef(/** @type {HTMLDivElement | null} */ (null));
  const chart = useRef(/** @type {uPlot | null} */ (null));
  const shape = JSON.stringify([lines, time, logY, syncKey ?? null, height]);

  useEffect(() => {
    const target = box.current;
    if (target === null) {
      return undefined;
    }
    const options = {
      width: Math.max(target.clientWidth, 320),
      height,
      scales: { x: { time }, y: logY ? { distr: 3 } : {} },
      series: [
        {},
        ...lines.map((line) => ({
          label: line.label,
          stroke: line.faded ? `${line.colour}4d` : line.colour,
          width: line.faded ? 1 : 1.5,
          spanGaps: true,
          points: { show: false },
        })),
      ],
      cursor: syncKey === undefined ? {} : { sync: { key: syncKey } },
      legend: { live: true },
    };
    const made = new uPlot(options, drawable(columns, logY), target);
    chart.current = made;
    if (figure.current !== null) {
      Object.defineProperty(figure.current, "uplot", { value: made, configurable: true });
    }
    return () => {
      made.destroy();
      chart.current = null;
    };
  }, [shape]);

  useEffect(() => {
    const made = chart.current;
    if (made === null) {
      return;
    }
    made.setData(drawable(columns, logY), xRange === null);
    if (xRange !== null) {
      made.setScale("x", xRange);
    }
  }, [columns, xRange?.min, xRange?.max, shape]);

  return html`<figure class="run-chart" data-chart=${name} ref=${figure}>
    <figcaption>${name}</figcaption>
    <div class="run-chart-plot" ref=${box}></div>
  </figure>`;
}

/**
 * The columns as uPlot can draw them: on a log scale a value at or below zero has no place
 * and becomes a hole (null).
 * @param {Array<Array<number | null>>} columns @param {boolean} logY
 */
export function drawable(columns, logY) {
  if (!logY) {
    return columns;
  }
  return [columns[0], ...columns.slice(1).map((ys) => ys.map((y) => (y !== null && y > 0 ? y : null)))];
}
