// The vendored libraries load as plain ES modules under the dashboard's CSP (no import map,
// no inline script) and work together: htm templates rendered by Preact with hooks, and a
// uPlot chart holding the data it was given.

import { h, render } from "/vendor/preact/preact.mjs";
import { useState } from "/vendor/preact/hooks.mjs";
import htm from "/vendor/htm/htm.module.js";
import uPlot from "/vendor/uplot/uPlot.esm.js";

const html = htm.bind(h);

export async function run() {
  return [await preactWithHooks(), uplotChart()];
}

async function preactWithHooks() {
  const name = "preact with hooks and htm";
  const root = document.createElement("div");
  document.body.append(root);
  /** @type {(value: number) => void} */
  let setCount = () => {};
  function Counter() {
    const [count, set] = useState(0);
    setCount = set;
    return html`<p class="count">${count} <b>${"<script>alert(1)</script>"}</b></p>`;
  }
  render(html`<${Counter} />`, root);
  setCount(2);
  await new Promise((resolve) => setTimeout(resolve, 0));
  const text = root.querySelector(".count")?.textContent;
  const expected = "2 <script>alert(1)</script>";
  const ok = text === expected && root.querySelector("script") === null;
  root.remove();
  return { name, ok, detail: `rendered ${JSON.stringify(text)}` };
}

function uplotChart() {
  const name = "uplot draws a series";
  const root = document.createElement("div");
  document.body.append(root);
  const data = [
    [1, 2, 3],
    [0.5, 0.25, 0.125],
  ];
  const chart = new uPlot(
    { width: 300, height: 150, series: [{}, { label: "loss" }] },
    data,
    root,
  );
  const ok =
    chart.data[1].join(",") === "0.5,0.25,0.125" && root.querySelector("canvas") !== null;
  chart.destroy();
  root.remove();
  return { name, ok, detail: "" };
}
