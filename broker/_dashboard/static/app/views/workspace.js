// The workspace page, /w/<workspace>: details, semaphores and mutex, the integrity of the page's
// view of the stream (cursor, resumes, gaps), time travel (?at=<offset>), the timeline, the
// audit, the log, and the actions panel of app/views/actions.js.

import { html } from "../html.js";
import { useEffect, useReducer, useState } from "../../vendor/preact/hooks.mjs";
import { WorkspaceFeed } from "../workspace-feed.js";
import { ActionsPanel } from "./actions.js";
import { AuditLog } from "./audit.js";
import { LogView } from "./log.js";
import { MutexPanel, SemaphoresPanel } from "./mutex.js";
import { Timeline } from "./timeline.js";
import { TimeTravel } from "./timetravel.js";
import { StateView, WorkspaceDetails } from "./workspace-state.js";

/**
 * The `?at=` offset of the query (URLSearchParams or a plain object), or null.
 * @param {unknown} query
 * @returns {number | null}
 */
export function atOffset(query) {
  let raw = null;
  if (query instanceof URLSearchParams) {
    raw = query.get("at");
  } else if (typeof query === "object" && query !== null) {
    raw = /** @type {Record<string, unknown>} */ (query).at ?? null;
  }
  if (raw === null || raw === undefined || raw === "") {
    return null;
  }
  const offset = Number(raw);
  return Number.isSafeInteger(offset) && offset >= 0 ? offset : null;
}

/**
 * The connection's status, re-read on each "status" event.
 * @param {any} connection
 */
function useConnectionStatus(connection) {
  const [status, setStatus] = useState(connection.status);
  useEffect(() => {
    const update = () => setStatus({ ...connection.status });
    connection.addEventListener("status", update);
    update();
    return () => connection.removeEventListener("status", update);
  }, [connection]);
  return status;
}

/**
 * The workspace's feed, started for the page's life; the page re-renders at most once a frame
 * however fast events arrive.
 * @param {any} connection
 * @param {string} workspace
 * @param {number | null} at
 * @returns {[WorkspaceFeed | null, number]}
 */
function useWorkspaceFeed(connection, workspace, at) {
  const [version, bump] = useReducer((count) => count + 1, 0);
  const [feed, setFeed] = useState(/** @type {WorkspaceFeed | null} */ (null));
  useEffect(() => {
    const fresh = new WorkspaceFeed({ connection, workspace });
    let frame = 0;
    const onChange = () => {
      if (frame === 0) {
        frame = requestAnimationFrame(() => {
          frame = 0;
          bump(undefined);
        });
      }
    };
    fresh.addEventListener("change", onChange);
    fresh.start({ at });
    setFeed(fresh);
    return () => {
      fresh.removeEventListener("change", onChange);
      cancelAnimationFrame(frame);
      fresh.close();
    };
  }, [connection, workspace]);
  return [feed, version];
}

/**
 * The page at /w/<workspace>.
 * @param {{connection: any, store?: unknown, workspace: string, query?: unknown,
 *   navigate?: (path: string) => void}} props
 */
export function WorkspacePage({ connection, store, workspace, query, navigate }) {
  const queryAt = atOffset(query);
  const [at, setAt] = useState(queryAt);
  useEffect(() => setAt(queryAt), [queryAt]);
  const [feed, version] = useWorkspaceFeed(connection, workspace, queryAt);
  const status = useConnectionStatus(connection);
  const roles = status?.roles ?? [];
  if (feed === null) {
    return html`<article class="workspace-page" data-testid="workspace-page"><p>Loading…</p></article>`;
  }
  const select = (/** @type {number | null} */ offset) => {
    setAt(offset);
    const path = `/w/${encodeURIComponent(workspace)}${offset === null ? "" : `?at=${offset}`}`;
    if (navigate) {
      navigate(path);
    } else {
      history.replaceState(null, "", path);
    }
    if (offset === null) {
      feed.openTail();
    } else {
      feed.openAt(offset);
    }
  };
  const state = feed.state;
  return html`
    <article class="workspace-page" data-testid="workspace-page" data-workspace=${workspace}>
      <header class="ws-header">
        <h1 data-testid="workspace-name">${workspace}</h1>
        <${Integrity} feed=${feed} status=${status} />
      </header>
      ${feed.error !== null ? html`<p class="ws-error" role="alert" data-testid="feed-error">${feed.error}</p>` : null}
      ${state === null
        ? html`<p data-testid="workspace-loading">${feed.missing ? `No workspace named ${workspace}.` : "Loading…"}</p>`
        : html`
          <div class="ws-grid">
            <section class="ws-panel" aria-label="Details"><h2>Details</h2><${WorkspaceDetails} details=${state.details} /></section>
            <${SemaphoresPanel} connection=${connection} workspace=${workspace} state=${state} roles=${roles} />
            <${MutexPanel} connection=${connection} workspace=${workspace} state=${state} roles=${roles} />
            <${EmbeddedActions} connection=${connection} store=${store} workspace=${workspace} />
          </div>
          <${TimeTravel} feed=${feed} state=${state} at=${at} onSelect=${select} />
          <${LogView} key=${`log-${feed.anchor ?? "tail"}`} feed=${feed} version=${version} onSelect=${select} />
          <div class="ws-grid">
            <${Timeline} feed=${feed} onSelect=${select} />
            <${AuditLog} feed=${feed} onSelect=${select} />
          </div>
          <details class="ws-panel"><summary>Live state</summary><${StateView} state=${state} /></details>
        `}
    </article>
  `;
}

/**
 * What the page knows of its own view of the stream: the cursor, the last resume, the gaps.
 * @param {{feed: WorkspaceFeed, status: any}} props
 */
function Integrity({ feed, status }) {
  const state = feed.state;
  return html`<div class="ws-integrity" data-testid="integrity">
    <span data-testid="ws-connection-state">${status?.state ?? "unknown"}</span>
    ${state !== null
      ? html`<span data-testid="ws-cursor" data-epoch=${state.epoch} data-offset=${state.last_offset}>cursor: epoch ${state.epoch}, offset ${state.last_offset}</span>`
      : null}
    ${feed.resumed !== null
      ? html`<span data-testid="ws-resumed" data-offset=${feed.resumed.offset} data-recovered=${String(feed.resumed.recovered)}>
          resumed at offset ${feed.resumed.offset}${feed.resumed.recovered ? "" : " with loss"}</span>`
      : null}
    ${feed.gaps.map(
      (gap) => html`<span class="ws-gap" data-testid="ws-gap" data-from=${gap.from_offset} data-to=${gap.to_offset}>
        gap: offsets ${gap.from_offset}–${gap.to_offset} removed by retention</span>`,
    )}
  </div>`;
}

/**
 * The actions panel of app/views/actions.js, in the page's frame.
 * @param {{connection: any, store: any, workspace: string}} props
 */
function EmbeddedActions({ connection, store, workspace }) {
  return html`<section class="ws-panel ws-actions" aria-label="Actions" data-testid="actions">
    <${ActionsPanel} connection=${connection} store=${store} workspace=${workspace} />
  </section>`;
}
