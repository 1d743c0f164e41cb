// The fleet (the page at `/`): every workspace in its lane (Needs attention, Active, Quiet)
// with counts, search and lane filter kept in the URL (`?q=<filter>&lane=<lane>`), and per row
// the workers and host, progress, the mutex, the last event and Catch / Release. Keys as in
// `pierhead watch`: ↑/↓ (or k/j) select, c catch, r release, / search, Esc clears.
//
// Buttons follow the stream: "pending…" from the click until the `semaphores` event arrives;
// a refusal (e.g. `forbidden`) is shown in the row. Every string is rendered as text.

import { useEffect, useRef, useState } from "../../vendor/preact/hooks.mjs";
import { html } from "../html.js";
import {
  LANES,
  LANE_TITLES,
  age,
  attentionReasons,
  fleetLanes,
  fraction,
  moveSelection,
  rowCells,
  selectedOf,
} from "../lanes.js";
import { useStore } from "../store.js";

/** The role a token needs to catch or release (docs/protocol.md §6). */
export const OPERATOR = "operator";

/**
 * @param {{connection: import("../connection.js").BrokerConnection,
 *   store: import("../store.js").FleetStore, query: Record<string, string>,
 *   navigate: (url: string, options?: {replace?: boolean}) => void}} props
 */
export function FleetView({ connection, store, query, navigate }) {
  useStore(store);
  const now = useNow();
  const filter = query.q ?? "";
  const onlyLane = LANES.includes(/** @type {any} */ (query.lane)) ? query.lane : null;
  const [chosen, setChosen] = useState(/** @type {string | null} */ (null));
  const [catching, setCatching] = useState(/** @type {string | null} */ (null));
  const search = useRef(/** @type {HTMLInputElement | null} */ (null));

  const lanes = fleetLanes(store.states.values(), { filter, failures: store.failures });
  const shownLanes = onlyLane === null ? LANES : [onlyLane];
  const visible = shownLanes.flatMap((lane) => lanes[lane].map((state) => state.name));
  const selected = selectedOf(visible, chosen);
  const permission = operatePermission(connection.status);

  const setQuery = (/** @type {Record<string, string>} */ change) => {
    const params = new URLSearchParams({ ...query, ...change });
    for (const [key, value] of [...params]) {
      if (!value) {
        params.delete(key);
      }
    }
    const text = params.toString();
    navigate(text ? `/?${text}` : "/", { replace: true });
  };

  const release = (/** @type {string} */ name) => {
    store.releaseWorkspace(name).catch(() => {
      // Kept in store.failures and shown in the row.
    });
  };

  // The handler of this render, read by one listener: a listener added in an effect would run
  // with the previous render's selection until the effect catches up, after the paint.
  const onKey = (/** @type {KeyboardEvent} */ event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) {
      return;
    }
    const target = /** @type {HTMLElement | null} */ (event.target);
    const typing = target !== null && ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName);
    if (typing) {
      if (event.key === "Escape") {
        target.blur();
        if (target === search.current) {
          setQuery({ q: "" });
        } else {
          setCatching(null);
        }
      }
      return;
    }
    switch (event.key) {
      case "ArrowUp":
      case "k":
        setChosen(moveSelection(visible, selected, -1));
        break;
      case "ArrowDown":
      case "j":
        setChosen(moveSelection(visible, selected, 1));
        break;
      case "c":
        if (selected !== null && permission.allowed) {
          setCatching(selected);
        }
        break;
      case "r":
        if (selected !== null && permission.allowed) {
          release(selected);
        }
        break;
      case "/":
        search.current?.focus();
        break;
      case "Escape":
        setQuery({ q: "" });
        break;
      default:
        return;
    }
    event.preventDefault();
  };
  const keyHandler = useRef(onKey);
  keyHandler.current = onKey;
  useEffect(() => {
    const listener = (/** @type {KeyboardEvent} */ event) => keyHandler.current(event);
    document.addEventListener("keydown", listener);
    return () => document.removeEventListener("keydown", listener);
  }, []);

  return html`
    <section class="fleet" data-testid="fleet">
      <div class="fleet-controls">
        <input
          ref=${search}
          type="search"
          data-testid="fleet-search"
          placeholder="filter workspaces (/)"
          aria-label="filter workspaces"
          value=${filter}
          onInput=${(/** @type {any} */ event) => setQuery({ q: event.currentTarget.value })}
        />
        <nav class="lane-filter" aria-label="lanes">
          <a href=${laneHref(query, null)} aria-current=${onlyLane === null ? "page" : null}>all</a>
          ${LANES.map(
            (lane) =>
              html`<a href=${laneHref(query, lane)} aria-current=${onlyLane === lane ? "page" : null}
                >${LANE_TITLES[lane]}</a
              >`,
          )}
        </nav>
        <span class="muted keys">↑/↓ select · c catch · r release · / search · Esc clear</span>
      </div>
      ${!store.loaded && html`<p class="muted">waiting for the broker…</p>`}
      ${shownLanes.map(
        (lane) => html`
          <section class="lane lane-${lane}" data-testid=${`lane-${lane}`} key=${lane}>
            <h2>
              ${LANE_TITLES[lane]}
              <span class="count" data-testid=${`count-${lane}`}>${lanes[lane].length}</span>
            </h2>
            ${lanes[lane].length === 0
              ? html`<p class="muted">none</p>`
              : html`<table class="rows">
                  <thead>
                    <tr>
                      <th>workspace</th>
                      <th>workers · host</th>
                      <th>progress</th>
                      <th>mutex</th>
                      <th>last event</th>
                      <th>age</th>
                      <th></th>
                    </tr>
                  </thead>
                  <tbody>
                    ${lanes[lane].map(
                      (state) =>
                        html`<${FleetRow}
                          key=${state.name}
                          state=${state}
                          lane=${lane}
                          now=${now}
                          store=${store}
                          selected=${state.name === selected}
                          catching=${catching === state.name}
                          permission=${permission}
                          onSelect=${() => setChosen(state.name)}
                          onCatch=${() => setCatching(state.name)}
                          onCancelCatch=${() => setCatching(null)}
                          onRelease=${() => release(state.name)}
                        />`,
                    )}
                  </tbody>
                </table>`}
          </section>
        `,
      )}
    </section>
  `;
}

/**
 * One workspace's row.
 * @param {{state: import("../fold.js").WorkspaceState, lane: string, now: number, store: any,
 *   selected: boolean, catching: boolean, permission: {allowed: boolean, reason: string},
 *   onSelect: () => void, onCatch: () => void, onCancelCatch: () => void,
 *   onRelease: () => void}} props
 */
function FleetRow(props) {
  const { state, lane, now, store, selected, catching, permission } = props;
  const cells = rowCells(state);
  const failure = store.failures.get(state.name);
  const reasons = attentionReasons(state, failure);
  const pending = store.pending.get(state.name);
  const moment = Date.parse(state.updated ?? state.created);
  return html`
    <tr
      class=${selected ? "row selected" : "row"}
      data-workspace=${state.name}
      data-lane=${lane}
      aria-selected=${selected ? "true" : "false"}
      onClick=${props.onSelect}
    >
      <td class="name">
        <a href=${`/w/${encodeURIComponent(state.name)}`}>${state.name}</a>
        ${reasons.length > 0 && html`<div class="why" data-testid="attention">${reasons.join(" · ")}</div>`}
        ${cells.caught && html`<div class="caught" data-testid="caught">caught: ${cells.caught}</div>`}
      </td>
      <td class="workers">
        <div data-testid="workers">${cells.workers || "-"}</div>
        ${cells.host && html`<div class="muted" data-testid="host">${cells.host}</div>`}
      </td>
      <td class="progress">
        ${cells.progress !== null &&
        html`<progress
            max=${cells.progress.total ?? undefined}
            value=${cells.progress.current}
            aria-label=${cells.progress.label}
          ></progress>
          <span data-testid="progress">
            ${`${cells.progress.label} ${fraction(cells.progress.current, cells.progress.total)}`}
          </span>`}
      </td>
      <td class="mutex" data-testid="mutex">${cells.mutex}</td>
      <td class=${`event severity-${cells.severity}`} data-testid="last-event" data-severity=${cells.severity}>
        ${cells.event}
      </td>
      <td class="age muted" data-testid="age">${Number.isNaN(moment) ? "" : age(moment, now)}</td>
      <td class="actions">
        <${RowActions}
          state=${state}
          store=${store}
          pending=${pending}
          catching=${catching}
          permission=${permission}
          onCatch=${props.onCatch}
          onCancelCatch=${props.onCancelCatch}
          onRelease=${props.onRelease}
        />
        ${failure !== undefined &&
        html`<div class="failure" role="alert" data-testid="failure">${failure.message}</div>`}
      </td>
    </tr>
  `;
}

/** @param {any} props */
function RowActions({ state, store, pending, catching, permission, onCatch, onCancelCatch, onRelease }) {
  const [reason, setReason] = useState("");
  if (pending !== undefined) {
    return html`<button type="button" disabled data-testid=${pending.action}>pending…</button>`;
  }
  const disabled = !permission.allowed;
  const title = disabled ? permission.reason : undefined;
  if (state.semaphores.caught) {
    return html`<button type="button" data-testid="release" disabled=${disabled} title=${title}
        onClick=${onRelease}>Release</button>
      ${disabled && html`<span class="muted why" data-testid="disabled-reason">${permission.reason}</span>`}`;
  }
  if (catching && !disabled) {
    const submit = (/** @type {Event} */ event) => {
      event.preventDefault();
      onCancelCatch();
      store.catchWorkspace(state.name, reason.trim()).catch(() => {
        // Kept in store.failures and shown in the row.
      });
      setReason("");
    };
    return html`<form class="catch-form" data-testid="catch-form" onSubmit=${submit}>
      <input
        type="text"
        data-testid="catch-reason"
        placeholder="reason"
        aria-label="reason for the catch"
        autofocus
        ref=${(/** @type {HTMLInputElement | null} */ input) => input?.focus()}
        value=${reason}
        onInput=${(/** @type {any} */ event) => setReason(event.currentTarget.value)}
      />
      <button type="submit" data-testid="catch-confirm">Catch</button>
      <button type="button" onClick=${onCancelCatch}>cancel</button>
    </form>`;
  }
  return html`<button type="button" data-testid="catch" disabled=${disabled} title=${title}
      onClick=${onCatch}>Catch</button>
    ${disabled && html`<span class="muted why" data-testid="disabled-reason">${permission.reason}</span>`}`;
}

/**
 * Whether this session may catch and release, and why not.
 * @param {import("../connection.js").ConnectionStatus} status
 * @returns {{allowed: boolean, reason: string}}
 */
export function operatePermission(status) {
  if (status.state !== "open") {
    return { allowed: false, reason: "not connected to the broker" };
  }
  if (!status.roles.includes(OPERATOR)) {
    const held = status.roles.length > 0 ? status.roles.join(", ") : "none";
    return { allowed: false, reason: `needs the operator role (this token has: ${held})` };
  }
  return { allowed: true, reason: "" };
}

/** @param {Record<string, string>} query @param {string | null} lane */
function laneHref(query, lane) {
  const params = new URLSearchParams(query);
  if (lane === null) {
    params.delete("lane");
  } else {
    params.set("lane", lane);
  }
  const text = params.toString();
  return text ? `/?${text}` : "/";
}

/** The time, updated every second, for the ages. */
function useNow() {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);
  return now;
}
