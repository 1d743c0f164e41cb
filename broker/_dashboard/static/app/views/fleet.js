// The fleet: every workspace the token may see. (The lanes come with app/lanes.js.)

import { html } from "../html.js";

/** @param {{store: import("../store.js").FleetStore}} props */
export function FleetView({ store }) {
  const names = [...store.states.keys()].sort();
  return html`<section class="fleet" data-testid="fleet">
    <ul>
      ${names.map((name) => html`<li key=${name} data-workspace=${name}><a href=${`/w/${encodeURIComponent(name)}`}>${name}</a></li>`)}
    </ul>
  </section>`;
}
