// One uPlot line chart as a Preact component, for the run views' scalars and hardware.
//
// For tests and tools, the chart's <figure class="run-chart" data-chart="NAME"> carries the
// uPlot instance as its `uplot` property: `figure.uplot.data` is what the chart draws from
// (`[xs, ys of line 0, ...]`) and `figure.uplot.series[i + 1].label` names line i.

import { useLayoutEffect, useRef } from "../../vendor/preact/hooks.mjs";
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
 * change, and only fed new data otherwise: once per render whose `columns` (a new array after
 * every change, app/series.js columnsOf(), already drawable on a log axis) or x range changed.
 * Both happen in layout effects, in the render's own task, so the chart is drawn in the frame
 * that rendered it rather than a task later.
 * @param {{name: string, columns: Array<Array<number | null>>, lines: ChartLine[],
 *   time: boolean, logY?: boolean, xRange?: {min: number, max: number} | null,
 *   syncKey?: string, height?: number}} props
 */
export function LineChart({ name, columns, lines, time, logY = false, xRange = null, syncKey, height = 220 }) {
  const figure = useRef(/** @type {HTMLElement | null} */ (null));
  const box = useRef(/** @type {HTMLDivElement | null} */ (null));
  const chart = useRef(/** @type {uPlot | null} */ (null));
  /** What the chart last drew: its columns and x range. */
  const fed = useRef(/** @type {{columns: unknown, min?: number, max?: number}} */ ({ columns: null }));
  const shape = JSON.stringify([lines, time, logY, syncKey ?? null, height]);

  useLayoutEffect(() => {
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
    const made = new uPlot(options, columns, target);
    if (xRange !== null) {
      made.setScale("x", xRange);
    }
    fed.current = { columns, min: xRange?.min, max: xRange?.max };
    chart.current = made;
    if (figure.current !== null) {
      Object.defineProperty(figure.current, "uplot", { value: made, configurable: true });
    }
    return () => {
      made.destroy();
      chart.current = null;
    };
  }, [shape]);

  useLayoutEffect(() => {
    const made = chart.current;
    const last = fed.current;
    if (made === null || (last.columns === columns && last.min === xRange?.min && last.max === xRange?.max)) {
      return;
    }
    fed.current = { columns, min: xRange?.min, max: xRange?.max };
    made.setData(columns, xRange === null);
    if (xRange !== null) {
      made.setScale("x", xRange);
    }
  }, [columns, xRange?.min, xRange?.max, shape]);

  return html`<figure class="run-chart" data-chart=${name} ref=${figure}>
    <figcaption>${name}</figcaption>
    <div class="run-chart-plot" ref=${box}></div>
  </figure>`;
}
