// The timeline of a workspace's milestones: `event`, `status`, `details`, `semaphores` and
// presence events, newest first, older ones on demand.

import { html } from "../html.js";
import { levelOf, payloadText } from "../event-lines.js";

/**
 * @param {{feed: import("../workspace-feed.js").WorkspaceFeed, onSelect: (offset: number) => void}} props
 */
export function Timeline({ feed, onSelect }) {
  const items = feed.timeline.slice().reverse();
  return html`
    <section class="ws-panel ws-timeline" aria-label="Timeline" data-testid="timeline">
      <h2>Timeline</h2>
      <ol>
        ${items.map(
          (event) => html`<li key=${event.offset} class=${`level-${levelOf(event)} kind-${event.payload.kind}`}
              data-offset=${event.offset} data-kind=${event.payload.kind}>
            <button type="button" class="log-offset" title="Time travel to this offset"
              onClick=${() => onSelect(event.offset)}>${event.offset}</button>
            <time datetime=${event.received_time}>${event.received_time}</time>
            <span class="ws-kind">${event.payload.kind}</span>
            <span class="ws-text">${payloadText(event.payload)}</span>
          </li>`,
        )}
      </ol>
      ${feed.timelineExhausted
        ? null
        : html`<button type="button" data-testid="timeline-older" disabled=${feed.loading.has("timeline")}
            onClick=${() => feed.loadTimeline()}>Older milestones</button>`}
    </section>
  `;
}
