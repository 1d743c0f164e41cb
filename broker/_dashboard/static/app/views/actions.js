// The actions panel of a workspace (embedded by the workspace page): a form per action each
// worker declared, its result or failure inline, and the calls made from this page. A form
// is disabled, with the reason beside it, when the worker is offline, the page is not
// connected, or the token lacks the operator role.
//
// Calls are not events of the workspace stream, so the history lists the calls made from this
// page (kept per connection and workspace while the page lives), newest first. A failed call
// is noted in the fleet store (the fleet lists the workspace under "Needs attention") until
// the next call succeeds.

import { useState } from "../../vendor/preact/hooks.mjs";
import { html } from "../html.js";
import { callArguments, callRefusal } from "../action-args.js";
import { useStore } from "../store.js";
import { linkRunsStylesheet } from "./runs-style.js";

linkRunsStylesheet();

/** How long the broker waits for a worker's answer to a call from the page (seconds). */
export const CALL_TIMEOUT_S = 30;
/** Calls the history keeps per workspace (the oldest go first). */
export const CALL_HISTORY_LIMIT = 100;

/**
 * @typedef {{number: number, time: string, runId: string, action: string,
 *   args: Record<string, unknown>, outcome: "pending" | "ok" | "failed", text: string}} CallRecord
 */

/** @type {WeakMap<object, Map<string, CallRecord[]>>} calls per connection, then workspace */
const callHistories = new WeakMap();
let callCounter = 0;

/** @param {object} connection @param {string} workspace */
function historyOf(connection, workspace) {
  let byWorkspace = callHistories.get(connection);
  if (byWorkspace === undefined) {
    byWorkspace = new Map();
    callHistories.set(connection, byWorkspace);
  }
  let calls = byWorkspace.get(workspace);
  if (calls === undefined) {
    calls = [];
    byWorkspace.set(workspace, calls);
  }
  return calls;
}

/**
 * The actions panel. The workers and their actions come from the fleet store's state of the
 * workspace; the roles from the connection's status (the store re-renders on both).
 * @param {{connection: any, store: any, workspace: string}} props
 */
export function ActionsPanel({ connection, store, workspace }) {
  useStore(store);
  const workers = store.states.get(workspace)?.workers ?? [];
  const status = connection.status;
  const [, setTick] = useState(0);
  const calls = historyOf(connection, workspace);
  const connected = status.state === "open";
  const roles = Array.isArray(status.roles) ? status.roles : null;

  /** @param {string} runId @param {string} action @param {Record<string, unknown>} args */
  const call = async (runId, action, args) => {
    callCounter += 1;
    /** @type {CallRecord} */
    const record = { number: callCounter, time: new Date().toISOString(), runId, action, args, outcome: "pending", text: "" };
    calls.unshift(record);
    calls.splice(CALL_HISTORY_LIMIT);
    setTick((tick) => tick + 1);
    try {
      const reply = await connection.request({
        type: "call",
        workspace,
        run_id: runId,
        action,
        args,
        timeout_s: CALL_TIMEOUT_S,
      });
      if (reply.ok) {
        record.outcome = "ok";
        record.text = JSON.stringify(reply.result ?? null, null, 2);
        store.clearFailure(workspace);
      } else {
        record.outcome = "failed";
        record.text = `${reply.error?.type ?? "error"}: ${reply.error?.message ?? ""}`;
        store.noteFailure(workspace, `action ${action} of ${runId} failed: ${record.text}`);
      }
    } catch (error) {
      record.outcome = "failed";
      const failure = /** @type {any} */ (error);
      record.text = `${failure?.code ?? "error"}: ${failure?.message ?? String(error)}`;
      store.noteFailure(workspace, error);
    }
    setTick((tick) => tick + 1);
  };

  const offered = workers.filter((worker) => (worker.actions ?? []).length > 0);
  return html`<section class="actions-panel" data-workspace=${workspace}>
    <h2>Actions</h2>
    ${offered.length === 0 ? html`<p class="runs-empty">No worker offers an action.</p>` : null}
    ${offered.flatMap((worker) =>
      worker.actions.map(
        (/** @type {any} */ spec) => html`<${ActionForm}
          key=${`${worker.run_id}/${spec.name}`}
          runId=${worker.run_id}
          spec=${spec}
          refusal=${callRefusal({ connected, workerOnline: worker.connected, roles })}
          last=${calls.find((record) => record.runId === worker.run_id && record.action === spec.name)}
          onCall=${call}
        />`,
      ),
    )}
    <${CallHistory} calls=${calls} />
  </section>`;
}

/**
 * @param {{runId: string, spec: {name: string, description?: string, params?: string[]},
 *   refusal: string | null, last: CallRecord | undefined,
 *   onCall: (runId: string, action: string, args: Record<string, unknown>) => void}} props
 */
function ActionForm({ runId, spec, refusal, last, onCall }) {
  const [fields, setFields] = useState(/** @type {Record<string, string>} */ ({}));
  const params = spec.params ?? [];
  const pending = last?.outcome === "pending";
  const disabled = refusal !== null || pending;
  /** @param {Event} event */
  const submit = (event) => {
    event.preventDefault();
    if (!disabled) {
      onCall(runId, spec.name, callArguments(params, fields));
    }
  };
  return html`<form class="action-form" data-action=${spec.name} data-run=${runId} onSubmit=${submit}>
    <fieldset disabled=${refusal !== null}>
      <legend><span class="action-name">${spec.name}</span> <span class="action-run">${runId}</span></legend>
      ${spec.description ? html`<p class="action-description">${spec.description}</p>` : null}
      ${params.map(
        (param) => html`<label key=${param} class="action-param">
          <span>${param}</span>
          <input name=${param} value=${fields[param] ?? ""} placeholder="JSON or text; empty for the default"
            onInput=${(/** @type {Event} */ event) =>
              setFields({ ...fields, [param]: /** @type {HTMLInputElement} */ (event.currentTarget).value })} />
        </label>`,
      )}
      <button type="submit" disabled=${disabled}>${pending ? "pending…" : "Call"}</button>
    </fieldset>
    ${refusal === null ? null : html`<p class="action-refusal">${refusal}</p>`}
    ${last === undefined || last.outcome === "pending"
      ? null
      : html`<pre class=${`action-outcome action-${last.outcome}`} data-outcome=${last.outcome}>${last.text}</pre>`}
  </form>`;
}

/** @param {{calls: CallRecord[]}} props */
function CallHistory({ calls }) {
  if (calls.length === 0) {
    return null;
  }
  return html`<table class="call-history">
    <caption>Calls from this page</caption>
    <thead><tr><th>time</th><th>action</th><th>run</th><th>arguments</th><th>outcome</th></tr></thead>
    <tbody>${calls.map(
      (record) => html`<tr key=${record.number} data-call=${record.number} data-outcome=${record.outcome}>
        <td>${record.time}</td><td>${record.action}</td><td>${record.runId}</td>
        <td>${JSON.stringify(record.args)}</td><td>${record.outcome === "pending" ? "pending" : record.text}</td>
      </tr>`,
    )}</tbody>
  </table>`;
}
