// The audit: who caught, released, took, freed or broke the mutex, and who called which
// action, from the workspace's `semaphores` and `call` events (app/audit.js), each with a link
// to the state at that moment.

import { html } from "../html.js";

/**
 * @param {{feed: import("../workspace-feed.js").WorkspaceFeed, onSelect: (offset: number) => void}} props
 */
export function AuditLog({ feed, onSelect }) {
  const entries = feed.audit();
  return html`
    <section class="ws-panel ws-audit" aria-label="Audit" data-testid="audit">
      <h2>Audit</h2>
      <table>
        <thead><tr><th>Offset</th><th>Time</th><th>What</th><th>Who</th><th>Reason or outcome</th><th>Mutex or run</th></tr></thead>
        <tbody>
          ${entries.map(
            (entry) => html`<tr key=${`${entry.offset}-${entry.what}`} data-offset=${entry.offset} data-what=${entry.what}
              data-outcome=${entry.call?.outcome}>
              <td><button type="button" class="log-offset" title="The state right after this"
                onClick=${() => onSelect(entry.offset)}>${entry.offset}</button></td>
              <td><time datetime=${entry.time}>${entry.time}</time></td>
              <td>${entry.call === undefined
                ? entry.what
                : html`call <span data-testid="action">${entry.call.action}</span>(${argumentsText(entry.call.args)})`}</td>
              <td data-testid="who">${entry.by ?? ""}</td>
              <td data-testid="detail">${entry.reason ?? ""}</td>
              <td>${entry.call !== undefined
                ? entry.call.run_id
                : entry.holder === null ? "" : `${entry.holder} (fence ${entry.fence})`}</td>
            </tr>`,
          )}
        </tbody>
      </table>
      ${feed.auditExhausted
        ? null
        : html`<button type="button" data-testid="audit-older" disabled=${feed.loading.has("audit")}
            onClick=${() => feed.loadAudit()}>Older entries</button>`}
    </section>
  `;
}

/** @param {Record<string, unknown>} args @returns {string} */
function argumentsText(args) {
  return Object.entries(args)
    .map(([name, value]) => `${name}=${JSON.stringify(value)}`)
    .join(", ");
}
