// Hardware of the picked runs (CPU, RAM, per-GPU load, memory and temperature): one chart per
// metric, on wall-clock time, sharing the scalars' time range and cursor.

import { html } from "../html.js";
import { LineChart, runColour } from "./chart.js";

/**
 * One chart per hardware metric of the picked runs, a line per run, on wall-clock time.
 * @param {{model: import("../series.js").RunSeries, runIds: string[],
 *   xRange: {min: number, max: number} | null, syncKey: string}} props
 */
export function HardwareCharts({ model, runIds, xRange, syncKey }) {
  const metrics = model.hardwareNames(runIds);
  if (metrics.length === 0) {
    return html`<p class="runs-empty">No hardware reported.</p>`;
  }
  return html`<div class="chart-grid">
    ${metrics.map((metric) => {
      return html`<${LineChart}
        key=${metric}
        name=${metric}
        columns=${model.columnsOf("hardware", metric, runIds, "time", 0)}
        lines=${runIds.map((runId, index) => ({ label: runId, colour: runColour(index) }))}
        time=${true}
        xRange=${xRange}
        syncKey=${syncKey}
        height=${160}
      />`;
    })}
  </div>`;
}
