// The audit: who caught, released, took or lost the mutex, from the workspace's `semaphores`
// events (app/audit.js), each with a link to the state at that moment.

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
        <thead><tr><th>Offset</th><th>Time</th><th>What</th><th>Who</th><th>Reason</th><th>Mutex</th></tr></thead>
        <tbody>
          ${entries.map(
            (entry) => html`<tr key=${`${entry.offset}-${entry.what}`} data-offset=${entry.offset} data-what=${entry.what}>
              <td><button type="button" class="log-offset" title="The state right after this"
                onClick=${() => onSelect(entry.offset)}>${entry.offset}</button></td>
              <td><time datetime=${entry.time}>${entry.time}</time></td>
              <td>${entry.what}</td>
              <td data-testid="who">${entry.by ?? ""}</td>
              <td>${entry.reason ?? ""}</td>
              <td>${entry.holder === null ? "" : `${entry.holder} (fence ${entry.fence})`}</td>
            </tr>`,
          )}
        </tbody>
      </table>
      <p class="ws-note">Who freed a mutex (released, expired or broken) and action calls are not
        recorded in the stream, so they are not listed here.</p>
      ${feed.auditExhausted
        ? null
        : html`<button type="button" data-testid="audit-older" disabled=${feed.loading.has("audit")}
            onClick=${() => feed.loadAudit()}>Older entries</button>`}
    </section>
  `;
}
