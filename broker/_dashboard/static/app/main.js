// The page's entry point: one connection to the broker that served the page, the fleet store
// on it, and the shell that renders whichever view the URL names.

import { render } from "../vendor/preact/preact.mjs";
import { BrokerConnection, brokerUrlOf } from "./connection.js";
import { html } from "./html.js";
import { PaintMeter } from "./meter.js";
import { FleetStore } from "./store.js";
import { Shell, TOKEN_KEY } from "./views/shell.js";

const connection = new BrokerConnection({
  url: brokerUrlOf(window.location),
  token: sessionStorage.getItem(TOKEN_KEY),
});
// Before any subscription, so it meters every one (docs/dashboard.md, "The paint meter and
// the dashboard benchmark").
const meter = new PaintMeter();
meter.watch(connection);
const store = new FleetStore(connection);
store.start();
connection.start();

// For the live tests and for anyone debugging from the console: the page's own session.
window.pierhead = { connection, store, meter };

const app = document.getElementById("app");
if (app !== null) {
  app.textContent = "";
  render(html`<${Shell} connection=${connection} store=${store} />`, app);
}
