// The dashboard benchmark's baseline: the least a page does with the stream. It opens the
// broker's socket, says hello as a watcher, subscribes to the workspace named in the query
// (`?workspace=NAME`) and counts the events of each frame, metered by the dashboard's own
// PaintMeter (/app/meter.js) so both pages count "on screen" the same way. It shows one number.

import { PaintMeter } from "/app/meter.js";

const meter = new PaintMeter();
const workspace = new URLSearchParams(window.location.search).get("workspace") ?? "*";
const counter = document.getElementById("count");
const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
const socket = new WebSocket(`${scheme}//${window.location.host}/`, "pierhead.v1.json");
const bench = { meter, subscribedAt: null, events: 0 };
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
    meter.take(frame.events);
    bench.events += frame.events.length;
    counter.textContent = String(bench.events);
  } else if (frame.type === "error") {
    console.error(`pierhead bench counter: ${frame.code}: ${frame.message}`);
  }
};
