// Hardware of the picked runs (CPU, RAM, per-GPU load, memory and temperature): one chart per
// metric, on wall-clock time, sharing the scalars' time range and cursor.

import { html } from "../html.js";
import { alignColumns } from "../series.js";
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
      const lines = runIds.map((runId) => model.hardware.get(runId)?.get(metric)?.points ?? []);
      return html`<${LineChart}
        key=${metric}
        name=${metric}
        columns=${alignColumns(lines, "time")}
        lines=${runIds.map((runId, index) => ({ label: runId, colour: runColour(index) }))}
        time=${true}
        xRange=${xRange}
        syncKey=${syncKey}
        height=${160}
      />`;
    })}
  </div>`;
}
