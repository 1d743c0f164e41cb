// The dashboard benchmark's baseline: the least a page does with the stream. It opens the
// broker's socket, says hello as a watcher, subscribes to the workspace named in the query
// (`?workspace=NAME`) and counts the events of each frame, metered by the dashboard's own
// PaintMeter (/app/meter.js) so both pages count "on screen" the same way. It shows one number.
// It also tells where an event's latency goes: from its create_time to the broker's
// received_time, and to its arrival on the page (histograms of whole milliseconds, as the meter's).

import { HISTOGRAM_MS, PaintMeter } from "/app/meter.js";

const meter = new PaintMeter();
const workspace = new URLSearchParams(window.location.search).get("workspace") ?? "*";
const counter = document.getElementById("count");
const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
const socket = new WebSocket(`${scheme}//${window.location.host}/`, "pierhead.v1.json");
const toBroker = new Uint32Array(HISTOGRAM_MS + 1);
const toPage = new Uint32Array(HISTOGRAM_MS + 1);

/** @param {Uint32Array} histogram */
function buckets(histogram) {
  const found = [];
  histogram.forEach((count, ms) => count > 0 && found.push([ms, count]));
  return found;
}

/** @param {number} ms */
function bucket(ms) {
  return Math.min(HISTOGRAM_MS, Math.max(0, Math.round(ms)));
}

const bench = {
  meter,
  subscribedAt: null,
  events: 0,
  stages: () => ({ toBrokerMs: buckets(toBroker), toPageMs: buckets(toPage) }),
  resetStages: () => {
    toBroker.fill(0);
    toPage.fill(0);
  },
};
window.pierhead = bench;

socket.onopen = () => {
  socket.send(JSON.stringify({ type: "hello", protocol: 1, role: "watcher", client: "pierhead-bench-counter" }));
  socket.send(JSON.stringify({ type: "subscribe", id: 1, pattern: workspace, from: "latest" }));
};
socket.onmessage = (message) => {
  const frame = JSON.parse(message.data);
  if (frame.type === "subscribed") {
    bench.subscribedAt = performance.now();
  } else if (frame.type === "events") {
    const now = performance.timeOrigin + performance.now();
    for (const event of frame.events) {
      const created = Date.parse(event.create_time);
      toBroker[bucket(Date.parse(event.received_time) - created)] += 1;
      toPage[bucket(now - created)] += 1;
    }
    meter.take(frame.events);
    bench.events += frame.events.length;
    counter.textContent = String(bench.events);
  } else if (frame.type === "error") {
    console.error(`pierhead bench counter: ${frame.code}: ${frame.message}`);
  }
};
