// Time travel: a scrubber over the workspace's offsets that shows the exact state as it was
// right after any past event, rebuilt by folding the stored history (app/timetravel.js).

import { html } from "../html.js";
import { useEffect, useMemo, useState } from "../../vendor/preact/hooks.mjs";
import { StateRebuilder } from "../timetravel.js";
import { payloadText } from "../event-lines.js";
import { StateView } from "./workspace-state.js";

/**
 * @param {{feed: import("../workspace-feed.js").WorkspaceFeed,
 *   state: import("../fold.js").WorkspaceState, at: number | null,
 *   onSelect: (offset: number | null) => void}} props
 */
export function TimeTravel({ feed, state, at, onSelect }) {
  const rebuilder = useMemo(
    () =>
      new StateRebuilder({
        name: state.name,
        epoch: state.epoch,
        created: state.created,
        fetchPage: (query) => feed.history(query),
      }),
    [state.name, state.epoch],
  );
  const [draft, setDraft] = useState(at ?? state.last_offset);
  const [result, setResult] = useState(
    /** @type {{at: number, rebuilt: import("../timetravel.js").Rebuilt} | null} */ (null),
  );
  const [failure, setFailure] = useState(/** @type {string | null} */ (null));
  useEffect(() => setDraft(at ?? state.last_offset), [at, at === null ? state.last_offset : 0]);
  useEffect(() => {
    if (at === null) {
      setResult(null);
      return undefined;
    }
    let current = true;
    setFailure(null);
    rebuilder
      .stateAt(at)
      .then((rebuilt) => current && setResult({ at, rebuilt }))
      .catch((/** @type {any} */ error) => current && setFailure(`${error?.code ?? "error"}: ${error?.message ?? error}`));
    return () => {
      current = false;
    };
  }, [rebuilder, at]);
  const shown = result !== null && result.at === at ? result.rebuilt : null;
  const commit = (/** @type {number} */ offset) => onSelect(Math.max(0, Math.min(offset, state.last_offset)));
  return html`
    <section class="ws-panel ws-timetravel" aria-label="Time travel" data-testid="timetravel">
      <h2>Time travel</h2>
      <div class="ws-scrubber">
        <input type="range" min="0" max=${state.last_offset} value=${draft} data-testid="scrubber"
          aria-label="Offset" onInput=${(/** @type {any} */ event) => setDraft(Number(event.currentTarget.value))}
          onChange=${(/** @type {any} */ event) => commit(Number(event.currentTarget.value))} />
        <input type="number" min="0" max=${state.last_offset} value=${draft} data-testid="offset-input"
          aria-label="Offset number" onChange=${(/** @type {any} */ event) => commit(Number(event.currentTarget.value))} />
        ${at !== null ? html`<button type="button" data-testid="live" onClick=${() => onSelect(null)}>Back to live</button>` : null}
      </div>
      ${at === null
        ? html`<p class="ws-note">Showing the live state (offset ${state.last_offset}). Pick an offset to see the state as it was then.</p>`
        : failure !== null
          ? html`<p class="ws-error" role="alert">${failure}</p>`
          : shown === null
            ? html`<p data-testid="rebuilding">Rebuilding the state at offset ${at}…</p>`
            : html`<div data-testid="past-state" data-offset=${at} data-exact=${String(shown.exact)}>
                <p>State right after offset <strong>${at}</strong>${shown.offset < at ? ` (the store ends at ${shown.offset})` : ""}${shown.event ? html`: <span class="ws-kind">${shown.event.payload.kind}</span> <span>${payloadText(shown.event.payload)}</span>` : null}</p>
                ${shown.lost !== null
                  ? html`<p class="ws-error" data-testid="inexact">Not exact: offsets ${shown.lost.from}–${shown.lost.to} were removed by retention, so this state is folded from offset ${shown.lost.to + 1} on.</p>`
                  : null}
                <${StateView} state=${shown.state} />
              </div>`}
    </section>
  `;
}
