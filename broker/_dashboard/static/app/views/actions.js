// The actions panel of a workspace (embedded by the workspace page): a form per action each
// worker declared, with typed inputs when the worker described its parameters, its result or
// failure inline, and the call history of the workspace. A form is disabled, with the reason
// beside it, when the worker is offline, the page is not connected, or the token lacks the
// operator role.
//
// The history is the workspace's `call` events (one per call that reached a worker, whoever
// made it, docs/protocol.md §8): the newest page from `history`, then live from a
// subscription filtered to that kind. Only the caller gets a call's result, so the result
// shown inline in a form is that of the calls made from this page (kept per connection and
// workspace while the page lives). A failed call from this page is noted in the fleet store
// (the fleet lists the workspace under "Needs attention") until the next call succeeds.

import { useEffect, useState } from "../../vendor/preact/hooks.mjs";
import { html } from "../html.js";
import { callRefusal, formFields, initialValues, typedArguments } from "../action-args.js";
import { useStore } from "../store.js";


/** How long the broker waits for a worker's answer to a call from the page (seconds). */
export const CALL_TIMEOUT_S = 30;
/** Calls the history shows (the oldest go first). */
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
  const history = useCallHistory(connection, workspace);
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
    <${CallHistory} events=${history} />
  </section>`;
}

/**
 * The workspace's `call` events, newest first: a history page, then live ones.
 * @param {any} connection
 * @param {string} workspace
 * @returns {Array<Record<string, any>>}
 */
function useCallHistory(connection, workspace) {
  const [events, setEvents] = useState(/** @type {Array<Record<string, any>>} */ ([]));
  useEffect(() => {
    /** @type {Map<number, Record<string, any>>} */
    const byOffset = new Map();
    let current = true;
    const add = (/** @type {Array<Record<string, any>>} */ more) => {
      let added = false;
      for (const event of more) {
        if (event.workspace === workspace && event.payload?.kind === "call" && !byOffset.has(event.offset)) {
          byOffset.set(event.offset, event);
          added = true;
        }
      }
      if (added && current) {
        const newest = [...byOffset.values()].sort((a, b) => b.offset - a.offset).slice(0, CALL_HISTORY_LIMIT);
        byOffset.clear();
        for (const event of newest) {
          byOffset.set(event.offset, event);
        }
        setEvents(newest);
      }
    };
    setEvents([]);
    const subscription = connection.subscribe({ pattern: workspace, from: "latest", kinds: ["call"] });
    subscription.addEventListener("events", (/** @type {any} */ event) => add(event.detail.events));
    connection
      .history({ workspace, kinds: ["call"], limit: CALL_HISTORY_LIMIT })
      .then((/** @type {{events: Array<Record<string, any>>}} */ page) => add(page.events))
      .catch(() => {
        // No such workspace yet, or the connection dropped: the live calls still come in.
      });
    return () => {
      current = false;
      subscription.close();
    };
  }, [connection, workspace]);
  return events;
}

/**
 * @param {{runId: string, spec: {name: string, description?: string, params?: string[],
 *   signature?: Array<Record<string, any>>},
 *   refusal: string | null, last: CallRecord | undefined,
 *   onCall: (runId: string, action: string, args: Record<string, unknown>) => void}} props
 */
function ActionForm({ runId, spec, refusal, last, onCall }) {
  const fields = formFields(spec);
  const [values, setValues] = useState(() => initialValues(fields));
  const pending = last?.outcome === "pending";
  const disabled = refusal !== null || pending;
  /** @param {Event} event */
  const submit = (event) => {
    event.preventDefault();
    if (!disabled) {
      onCall(runId, spec.name, typedArguments(fields, values));
    }
  };
  return html`<form class="action-form" data-action=${spec.name} data-run=${runId} novalidate onSubmit=${submit}>
    <fieldset disabled=${refusal !== null}>
      <legend><span class="action-name">${spec.name}</span> <span class="action-run">${runId}</span></legend>
      ${spec.description ? html`<p class="action-description">${spec.description}</p>` : null}
      ${fields.map(
        (field) => html`<label key=${field.name} class="action-param" data-kind=${field.kind}>
          <span>${field.name}</span>
          <${FieldInput} field=${field} value=${values[field.name]}
            onChange=${(/** @type {string | boolean} */ value) => setValues({ ...values, [field.name]: value })} />
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

/**
 * One parameter's input: a checkbox for a boolean, a number input for a number, else text;
 * the default, when there is one, as the placeholder.
 * @param {{field: import("../action-args.js").FormField, value: string | boolean | undefined,
 *   onChange: (value: string | boolean) => void}} props
 */
function FieldInput({ field, value, onChange }) {
  if (field.kind === "boolean") {
    return html`<input type="checkbox" name=${field.name} checked=${value === true}
      onChange=${(/** @type {Event} */ event) => onChange(/** @type {HTMLInputElement} */ (event.currentTarget).checked)} />`;
  }
  const numeric = field.kind === "integer" || field.kind === "number";
  const placeholder =
    field.default !== null
      ? `default: ${JSON.stringify(field.default)}`
      : field.required
        ? field.kind === "json" ? "JSON or text" : field.kind
        : `${field.kind === "json" ? "JSON or text" : field.kind}; empty for the default`;
  return html`<input type=${numeric ? "number" : "text"} step=${field.kind === "integer" ? "1" : numeric ? "any" : undefined}
    name=${field.name} value=${typeof value === "string" ? value : ""} placeholder=${placeholder}
    onInput=${(/** @type {Event} */ event) => onChange(/** @type {HTMLInputElement} */ (event.currentTarget).value)} />`;
}

/** What a `call` event's outcome says, with the worker's error when there is one.
 * @param {Record<string, any>} payload @returns {string} */
export function outcomeText(payload) {
  const outcome = String(payload.outcome).replace("_", " ");
  return payload.error ? `${outcome}: ${payload.error.type}: ${payload.error.message ?? ""}` : outcome;
}

/** @param {{events: Array<Record<string, any>>}} props */
function CallHistory({ events }) {
  if (events.length === 0) {
    return null;
  }
  return html`<table class="call-history">
    <caption>Calls in this workspace</caption>
    <thead><tr><th>time</th><th>action</th><th>run</th><th>arguments</th><th>outcome</th><th>caller</th></tr></thead>
    <tbody>${events.map(
      (event) => html`<tr key=${event.offset} data-offset=${event.offset} data-outcome=${event.payload.outcome}>
        <td>${event.received_time}</td><td>${event.payload.action}</td><td>${event.payload.run_id}</td>
        <td>${JSON.stringify(event.payload.args ?? {})}</td><td>${outcomeText(event.payload)}</td>
        <td data-testid="caller">${event.payload.caller ?? ""}</td>
      </tr>`,
    )}</tbody>
  </table>`;
}
