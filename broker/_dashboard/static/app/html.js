// Preact with htm: `html` is the tagged template every view writes its markup with. Values
// interpolated into it are text or attributes, escaped by Preact; no view uses innerHTML.

import htm from "../vendor/htm/htm.module.js";
import { h } from "../vendor/preact/preact.mjs";

/** The tagged template of the views: html`<p>${text}</p>`. */
export const html = htm.bind(h);
