// The page around every view: the status bar (connection, server, roles, where the stream
// resumed, the gaps), the login box, and the routes:
//   /                   the fleet (app/views/fleet.js)
//   /w/<name>           a workspace (app/views/workspace.js, WorkspacePage)
//   /w/<name>/runs      its runs (app/views/runs.js, RunsPage)
// Routing is preact-iso's router (vendored). Every page is imported with the shell, and every
// stylesheet is linked from index.html: a page loaded on demand while the broker happened to be
// down would stay unavailable until a reload, and a stylesheet arriving after the first rows
// were drawn would misplace them.

import { useState } from "../../vendor/preact/hooks.mjs";
import { LocationProvider, Route, Router, useLocation } from "../../vendor/preact-iso/router.js";
import { html } from "../html.js";
import { useStore } from "../store.js";
import { FleetView } from "./fleet.js";
import { RunsPage } from "./runs.js";
import { WorkspacePage } from "./workspace.js";

/** Where the token lives for the tab's life (never in the URL, never in localStorage). */
export const TOKEN_KEY = "pierhead.token";

/**
 * The whole page.
 * @param {{connection: import("../connection.js").BrokerConnection,
 *   store: import("../store.js").FleetStore}} props
 */
export function Shell({ connection, store }) {
  return html`
    <${LocationProvider}>
      <${Page} connection=${connection} store=${store} />
    <//>
  `;
}

/** @param {{connection: any, store: any}} props */
function Page({ connection, store }) {
  const location = useLocation();
  useStore(store);
  const navigate = (/** @type {string} */ url, { replace = false } = {}) =>
    location.route(url, replace);
  const common = { connection, store, query: location.query, navigate };
  return html`
    <header class="topbar">
      <a class="brand" href="/">pierhead</a>
      <${StatusBar} connection=${connection} store=${store} path=${location.path} />
    </header>
    <${LoginBox} connection=${connection} />
    <main class="page">
      <${Router}>
        <${Route} path="/" component=${FleetView} ...${common} />
        <${Route} path="/w/:workspace" component=${WorkspacePage} ...${common} />
        <${Route} path="/w/:workspace/runs" component=${RunsPage} ...${common} />
        <${Route} default component=${NotFound} />
      <//>
    </main>
  `;
}

function NotFound() {
  return html`<p>No such page. <a href="/">Back to the fleet</a>.</p>`;
}

const STATE_TEXT = {
  connecting: "connecting…",
  open: "connected",
  reconnecting: "reconnecting…",
  closed: "disconnected",
};

/**
 * Connection state, server, roles, where the stream resumed and every gap.
 * @param {{connection: any, store: any, path: string}} props
 */
export function StatusBar({ connection, store, path }) {
  const status = connection.status;
  const focus = workspaceOfPath(path);
  return html`
    <div class="status" data-testid="status" data-state=${status.state}>
      <span class="state state-${status.state}" data-testid="connection-state">
        ${STATE_TEXT[status.state] ?? status.state}
      </span>
      ${status.server && html`<span class="server" data-testid="server">${status.server}</span>`}
      ${status.state === "open" &&
      html`<span class="roles" data-testid="roles">
        roles: ${status.roles.length > 0 ? status.roles.join(", ") : "none"}
      </span>`}
      ${status.draining && html`<span class="draining">draining</span>`}
      ${store.resumed && html`<${Resumed} resumed=${store.resumed} focus=${focus} />`}
      ${status.message &&
      status.state !== "open" &&
      html`<span class="message" data-testid="connection-message">${status.message}</span>`}
      ${store.gaps.length > 0 &&
      html`<ul class="gaps" data-testid="gaps">
        ${store.gaps.map(
          (gap) =>
            html`<li>gap in ${gap.workspace}: offsets ${gap.from_offset}–${gap.to_offset} are gone</li>`,
        )}
      </ul>`}
    </div>
  `;
}

/** @param {{resumed: {recovered: boolean, cursors: Record<string, {offset: number}>}, focus: string | null}} props */
function Resumed({ resumed, focus }) {
  const entries = Object.entries(resumed.cursors);
  const shown = focus === null ? entries : entries.filter(([name]) => name === focus);
  const text =
    shown.length === 1
      ? `resumed at offset ${shown[0][1].offset}`
      : `resumed ${shown.length} workspaces at their offsets`;
  const title = entries.map(([name, cursor]) => `${name}: ${cursor.offset}`).join("\n");
  return html`<span class="resumed" data-testid="resumed" title=${title}>
    ${text}${resumed.recovered ? "" : " (with gaps)"}
  </span>`;
}

/** @param {string} path @returns {string | null} */
function workspaceOfPath(path) {
  const match = /^\/w\/([^/]+)/.exec(path);
  return match === null ? null : decodeURIComponent(match[1]);
}

/**
 * Asks for a token when the broker needs one (close 4001) or refused this one (4003); the
 * token is kept in sessionStorage for this tab only.
 * @param {{connection: any}} props
 */
export function LoginBox({ connection }) {
  const status = connection.status;
  const [draft, setDraft] = useState("");
  const refused = status.state === "closed" && (status.needsToken || status.closeCode === 4003);
  if (!refused) {
    return connection.token
      ? html`<div class="signed-in">
          <button type="button" data-testid="sign-out" onClick=${() => signIn(connection, "")}>
            sign out
          </button>
        </div>`
      : null;
  }
  const submit = (/** @type {Event} */ event) => {
    event.preventDefault();
    signIn(connection, draft.trim());
    setDraft("");
  };
  return html`
    <form class="login" data-testid="login" onSubmit=${submit}>
      <p>${status.message}</p>
      <label>
        token
        <input
          type="password"
          name="token"
          autocomplete="off"
          value=${draft}
          onInput=${(/** @type {any} */ event) => setDraft(event.currentTarget.value)}
        />
      </label>
      <button type="submit">sign in</button>
    </form>
  `;
}

/**
 * Keep the token for this tab and reconnect with it ("" signs out).
 * @param {any} connection
 * @param {string} token
 */
function signIn(connection, token) {
  if (token) {
    sessionStorage.setItem(TOKEN_KEY, token);
  } else {
    sessionStorage.removeItem(TOKEN_KEY);
  }
  connection.setToken(token || null);
}
