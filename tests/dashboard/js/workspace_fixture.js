// The workspace page rendered on a FakeConnection, for the Python tests to drive with
// Playwright: `window.fake` is the connection (tests append events through it), the scenario
// named by ?scenario= fills it first, and ?at= is passed to the page as its query.

import { h, render } from "/vendor/preact/preact.mjs";
import { WorkspacePage } from "/app/views/workspace.js";
import { FakeConnection } from "./fake_broker.js";
import { SCENARIOS } from "./workspace_scenarios.js";

// The page's stylesheet, added once the modules run: later than index.html links it, which is
// what the log view's placement tests hold back to see the view placed again when it arrives.
const stylesheet = document.createElement("link");
stylesheet.rel = "stylesheet";
stylesheet.href = "/app/workspace.css";
document.head.append(stylesheet);

const params = new URL(window.location.href).searchParams;
const roles = params.get("roles");
const fake = new FakeConnection(roles === null ? {} : { roles: roles.split(",").filter(Boolean) });
const scenario = SCENARIOS[params.get("scenario") ?? "basic"];
const workspace = scenario(fake, params);
Object.assign(window, { fake });
render(
  h(WorkspacePage, { connection: fake, store: null, workspace, query: params, navigate: () => {} }),
  /** @type {HTMLElement} */ (document.getElementById("app")),
);
