// A workspace state drawn as text: details, semaphores, workers, status, progress, the last
// event, and the whole state as JSON. The live page and time travel show states alike.

import { html } from "../html.js";
import { safeHref, semaphoresText } from "../event-lines.js";

/** Details whose value is a link when it is an http(s) URL. */
const URL_DETAILS = new Set(["deployment_url"]);

/**
 * The worker's details, each a text; an http(s) URL is a link that opens with no opener and
 * no referrer, any other URL (`javascript:`, `data:`) stays text.
 * @param {{details: Record<string, string>}} props
 */
export function WorkspaceDetails({ details }) {
  const entries = Object.entries(details);
  if (entries.length === 0) {
    return html`<p class="ws-note" data-testid="details">No details posted.</p>`;
  }
  return html`<dl class="ws-details" data-testid="details">
    ${entries.map(([key, value]) => {
      const href = URL_DETAILS.has(key) ? safeHref(value) : null;
      return html`<dt>${key}</dt><dd data-key=${key}>${href !== null
        ? html`<a href=${href} rel="noopener noreferrer" target="_blank">${value}</a>`
        : value}</dd>`;
    })}
  </dl>`;
}

/**
 * @param {{state: import("../fold.js").WorkspaceState}} props
 */
export function StateView({ state }) {
  const progress = Object.values(state.progress);
  return html`<div class="ws-state" data-testid="state" data-last-offset=${state.last_offset}>
    <h3>Details</h3>
    <${WorkspaceDetails} details=${state.details} />
    <h3>Semaphores</h3>
    <p data-testid="state-semaphores">${semaphoresText(state.semaphores)}</p>
    <h3>Workers</h3>
    <ul data-testid="state-workers">
      ${state.workers.map(
        (worker) => html`<li key=${worker.run_id}>${worker.run_id} ${worker.connected ? "connected" : "disconnected"}
          ${worker.client ? ` · ${worker.client}` : ""} · last seen ${worker.last_seen}</li>`,
      )}
    </ul>
    <h3>Status</h3>
    <dl data-testid="state-status">
      ${Object.entries(state.status).map(([key, value]) => html`<dt>${key}</dt><dd>${value}</dd>`)}
    </dl>
    ${progress.length > 0
      ? html`<h3>Progress</h3><ul data-testid="state-progress">
          ${progress.map(
            (bar) => html`<li key=${bar.name}>${bar.name}: ${bar.current}${bar.total === undefined ? "" : ` / ${bar.total}`}</li>`,
          )}
        </ul>`
      : null}
    <h3>Last event</h3>
    <p data-testid="state-last-event">${state.last_event === null ? "none" : `${state.last_event.severity ?? "info"}: ${state.last_event.message}`}</p>
    <details>
      <summary>The whole state (offset ${state.last_offset})</summary>
      <pre data-testid="state-json">${JSON.stringify(state, null, 2)}</pre>
    </details>
  </div>`;
}
