// Hyperparameters: one run's as a table, or two runs' side by side with what differs marked.

import { html } from "../html.js";
import { diffParams } from "../params-diff.js";

const CHANGE_TEXT = { same: "", changed: "differs", only_left: "only left", only_right: "only right" };

/**
 * @param {{runIds: string[], params: Map<string, Record<string, unknown>>}} props
 *   runIds: the picked runs (the first two are compared); params: latest hyperparameters per run
 */
export function HyperparamsTable({ runIds, params }) {
  const shown = runIds.filter((runId) => params.has(runId));
  if (shown.length === 0) {
    return html`<p class="runs-empty">No hyperparameters reported.</p>`;
  }
  const [left, right] = shown;
  if (right === undefined) {
    const rows = diffParams(params.get(left) ?? {}, {});
    return html`<table class="params-table">
      <thead><tr><th>parameter</th><th>${left}</th></tr></thead>
      <tbody>${rows.map((row) => html`<tr key=${row.key} data-param=${row.key}><td>${row.key}</td><td>${row.left}</td></tr>`)}</tbody>
    </table>`;
  }
  const rows = diffParams(params.get(left) ?? {}, params.get(right) ?? {});
  const differing = rows.filter((row) => row.change !== "same").length;
  return html`<table class="params-table params-diff">
    <caption>${differing} of ${rows.length} differ</caption>
    <thead><tr><th>parameter</th><th>${left}</th><th>${right}</th><th></th></tr></thead>
    <tbody>${rows.map(
      (row) => html`<tr key=${row.key} data-param=${row.key} data-change=${row.change} class=${`param-${row.change}`}>
        <td>${row.key}</td><td>${row.left}</td><td>${row.right}</td><td>${CHANGE_TEXT[row.change]}</td>
      </tr>`,
    )}</tbody>
  </table>`;
}
