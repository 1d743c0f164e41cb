// Progress bars of a workspace: X/Y, a bar, the rate and the time left.

import { html } from "../html.js";
import { formatDuration, formatRate } from "../rates.js";

/**
 * @param {{bars: Record<string, {current: number, total?: number | null}>,
 *   paces: Map<string, import("../rates.js").ProgressPace>}} props
 *   bars: the state's latest progress payload per name; paces: what the page measured of them
 */
export function ProgressList({ bars, paces }) {
  const names = Object.keys(bars).sort();
  if (names.length === 0) {
    return html`<p class="runs-empty">No progress reported.</p>`;
  }
  return html`<ul class="progress-list">
    ${names.map((name) => {
      const bar = bars[name];
      const pace = paces.get(name);
      const total = typeof bar.total === "number" ? bar.total : null;
      const rate = pace?.rate() ?? (typeof bar.rate === "number" ? bar.rate : null);
      const eta = pace?.etaSeconds() ?? null;
      return html`<li class="progress-item" data-progress=${name} key=${name}>
        <span class="progress-name">${name}</span>
        <progress max=${total ?? undefined} value=${total === null ? undefined : bar.current}></progress>
        <span class="progress-count">${total === null ? `${bar.current}` : `${bar.current}/${total}`}</span>
        <span class="progress-rate" title="rate">${formatRate(rate)}</span>
        <span class="progress-eta" title="time left">ETA ${formatDuration(eta)}</span>
      </li>`;
    })}
  </ul>`;
}
