// The catch and mutex controls of the workspace page. Buttons reflect the stream, not the
// click: after a Catch, Release or Break is accepted the button says "pending" until the
// `semaphores` event showing the change arrives. A refusal (`forbidden`, ...) is shown.

import { html } from "../html.js";
import { useEffect, useState } from "../../vendor/preact/hooks.mjs";

/**
 * @typedef {import("../fold.js").WorkspaceState} WorkspaceState
 * @typedef {{what: string, target: (state: WorkspaceState) => boolean} | null} Pending
 */

/**
 * What the page may do with its roles: the reason a button is disabled, or null.
 * @param {string[]} roles
 * @param {string} role
 * @returns {string | null}
 */
export function missingRole(roles, role) {
  return roles.includes(role) ? null : `needs the ${role} role (this session has: ${roles.join(", ") || "none"})`;
}

/**
 * Send a request; keep "pending" until `settled(state)` holds on the stream.
 * @param {any} connection
 * @returns {[string | null, string | null, (frame: object, what: string, settled: (state: WorkspaceState) => boolean) => void, (state: WorkspaceState | null) => void]}
 */
function useStreamedRequest(connection) {
  const [pending, setPending] = useState(/** @type {Pending} */ (null));
  const [error, setError] = useState(/** @type {string | null} */ (null));
  const send = (/** @type {object} */ frame, /** @type {string} */ what, /** @type {(state: WorkspaceState) => boolean} */ settled) => {
    setError(null);
    setPending({ what, target: settled });
    connection.request(frame).catch((/** @type {any} */ failure) => {
      setPending(null);
      setError(`${what} refused: ${failure?.code ?? "error"}${failure?.message ? `: ${failure.message}` : ""}`);
    });
  };
  const observe = (/** @type {WorkspaceState | null} */ state) => {
    if (pending !== null && state !== null && pending.target(state)) {
      setPending(null);
    }
  };
  return [pending === null ? null : pending.what, error, send, observe];
}

/**
 * Caught or not, by whom and why, with Catch (asks a reason) and Release.
 * @param {{connection: any, workspace: string, state: WorkspaceState, roles: string[]}} props
 */
export function SemaphoresPanel({ connection, workspace, state, roles }) {
  const [pending, error, send, observe] = useStreamedRequest(connection);
  const [asking, setAsking] = useState(false);
  const [reason, setReason] = useState("");
  useEffect(() => observe(state), [state]);
  const semaphores = state.semaphores;
  const refusal = missingRole(roles, "operator");
  const catchIt = (/** @type {Event} */ event) => {
    event.preventDefault();
    const frame = { type: "catch", workspace, ...(reason.trim() ? { reason: reason.trim() } : {}) };
    send(frame, "catch", (next) => next.semaphores.caught);
    setAsking(false);
    setReason("");
  };
  const release = () => send({ type: "release", workspace }, "release", (next) => !next.semaphores.caught);
  return html`
    <section class="ws-panel ws-semaphores" aria-label="Semaphores" data-testid="semaphores"
      data-caught=${String(semaphores.caught)}>
      <h2>Semaphores</h2>
      <p class=${semaphores.caught ? "ws-caught" : "ws-free"}>
        ${semaphores.caught ? "Caught" : "Not caught"}
        ${semaphores.by ? html` by <span data-testid="by">${semaphores.by}</span>` : null}
        ${semaphores.reason ? html`: <q data-testid="reason">${semaphores.reason}</q>` : null}
      </p>
      ${pending !== null
        ? html`<button type="button" disabled data-testid="pending">${pending} pending…</button>`
        : semaphores.caught
          ? html`<button type="button" data-testid="release" disabled=${refusal !== null}
              title=${refusal ?? "Release the workspace"} onClick=${release}>Release</button>`
          : asking
            ? html`<form class="ws-ask" onSubmit=${catchIt}>
                <label>Reason <input data-testid="catch-reason" value=${reason} maxlength="4096"
                  onInput=${(/** @type {any} */ event) => setReason(event.currentTarget.value)} /></label>
                <button type="submit" data-testid="catch-confirm">Catch</button>
                <button type="button" onClick=${() => setAsking(false)}>Cancel</button>
              </form>`
            : html`<button type="button" data-testid="catch" disabled=${refusal !== null}
                title=${refusal ?? "Catch the workspace, with a reason"} onClick=${() => setAsking(true)}>Catch…</button>`}
      ${refusal !== null ? html`<p class="ws-why" data-testid="semaphores-why">${refusal}</p>` : null}
      ${error !== null ? html`<p class="ws-error" role="alert" data-testid="semaphores-error">${error}</p>` : null}
    </section>
  `;
}

/**
 * The holder's grace period once its worker left: seconds left until the lease ends (the
 * broker's `grace_until`), "unknown" when the broker did not say (one before that field), or
 * null while the holder's worker is connected or the mutex is free.
 * @param {WorkspaceState} state
 * @param {number} nowMs
 * @returns {number | "unknown" | null}
 */
export function graceLeft(state, nowMs) {
  const { has_mutex: held, holder, grace_until: until } = state.semaphores;
  if (!held || holder === null) {
    return null;
  }
  if (until !== null) {
    return Math.max(0, Math.ceil((Date.parse(until) - nowMs) / 1000));
  }
  const worker = state.workers.find((entry) => entry.run_id === holder);
  return worker !== undefined && worker.connected ? null : "unknown";
}

/**
 * Holder, fence, the grace countdown once its worker left, and Break (admins, confirmed).
 * @param {{connection: any, workspace: string, state: WorkspaceState, roles: string[]}} props
 */
export function MutexPanel({ connection, workspace, state, roles }) {
  const [pending, error, send, observe] = useStreamedRequest(connection);
  const [confirming, setConfirming] = useState(false);
  const [now, setNow] = useState(Date.now());
  useEffect(() => observe(state), [state]);
  const left = graceLeft(state, now);
  const counting = typeof left === "number";
  useEffect(() => {
    if (!counting) {
      return undefined;
    }
    setNow(Date.now());
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [counting, state.semaphores.grace_until]);
  const semaphores = state.semaphores;
  const refusal = missingRole(roles, "admin");
  const fence = semaphores.fence;
  const breakIt = () => {
    setConfirming(false);
    send({ type: "mutex_break", workspace }, "break", (next) => next.semaphores.holder !== semaphores.holder || next.semaphores.fence !== fence);
  };
  return html`
    <section class="ws-panel ws-mutex" aria-label="Mutex" data-testid="mutex"
      data-holder=${semaphores.holder ?? ""} data-fence=${fence}>
      <h2>Mutex</h2>
      <dl>
        <dt>Holder</dt><dd data-testid="holder">${semaphores.has_mutex ? semaphores.holder : "free"}</dd>
        <dt>Fence</dt><dd data-testid="fence">${fence}</dd>
        ${typeof left === "number"
          ? html`<dt>Grace</dt><dd data-testid="grace" data-until=${state.semaphores.grace_until}>its worker left: freed in about ${left} s,
              at <time datetime=${state.semaphores.grace_until}>${state.semaphores.grace_until}</time></dd>`
          : left === "unknown"
            ? html`<dt>Grace</dt><dd data-testid="grace">its worker left; this broker does not say when the lease ends</dd>`
            : null}
        ${semaphores.mutex_change !== null
          ? html`<dt>Last change</dt><dd data-testid="mutex-change">${semaphores.mutex_change.replace("_", " ")}${semaphores.mutex_by ? ` by ${semaphores.mutex_by}` : ""}</dd>`
          : null}
      </dl>
      ${semaphores.has_mutex
        ? pending !== null
          ? html`<button type="button" disabled data-testid="pending">${pending} pending…</button>`
          : confirming
            ? html`<p class="ws-confirm" role="alertdialog">Break the mutex held by ${semaphores.holder}? Its worker is told it lost it.
                <button type="button" data-testid="break-confirm" onClick=${breakIt}>Break</button>
                <button type="button" onClick=${() => setConfirming(false)}>Cancel</button></p>`
            : html`<button type="button" data-testid="break" disabled=${refusal !== null}
                title=${refusal ?? "Break the mutex"} onClick=${() => setConfirming(true)}>Break…</button>`
        : null}
      ${semaphores.has_mutex && refusal !== null ? html`<p class="ws-why" data-testid="mutex-why">${refusal}</p>` : null}
      ${error !== null ? html`<p class="ws-error" role="alert" data-testid="mutex-error">${error}</p>` : null}
    </section>
  `;
}
