// The paint meter (app/meter.js): an event counts once however many subscriptions deliver it,
// is drawn only after SETTLE_FRAMES painted frames, and lands in the histogram by its age.

import { HISTOGRAM_MS, PaintMeter, SETTLE_FRAMES } from "/app/meter.js";
import { firstDifference } from "./compare.js";

export async function run() {
  return [
    onceAcrossSubscriptions(),
    await drawnAfterTheFrames(),
    await latencyIsTheAgeOnScreen(),
    await resetKeepsTheOffsets(),
  ];
}

/** @param {string} name @param {unknown} actual @param {unknown} expected */
function check(name, actual, expected) {
  const difference = firstDifference(actual, expected);
  return { name, ok: difference === null, detail: difference ?? "" };
}

/** @param {number} count */
async function frames(count) {
  for (let frame = 0; frame < count; frame += 1) {
    await new Promise((resolve) => requestAnimationFrame(resolve));
  }
}

/** @param {number} offset @param {number} ageMs */
function event(offset, ageMs = 0) {
  return { workspace: "w", offset, create_time: new Date(Date.now() - ageMs).toISOString() };
}

/** A connection whose subscriptions are plain event targets, as BrokerConnection's are. */
function fakeConnection() {
  return { subscribe: () => new EventTarget() };
}

/** @param {EventTarget} subscription @param {unknown[]} events */
function deliver(subscription, events) {
  subscription.dispatchEvent(new CustomEvent("events", { detail: { events } }));
}

function onceAcrossSubscriptions() {
  const meter = new PaintMeter();
  const connection = fakeConnection();
  meter.watch(connection);
  const everything = connection.subscribe({ pattern: "*" });
  const runs = connection.subscribe({ pattern: "w", kinds: ["scalar"] });
  deliver(everything, [event(1), event(2)]);
  deliver(runs, [event(2)]);
  deliver(everything, [event(3)]);
  return check("an event delivered to two subscriptions counts once", meter.taken, 3);
}

async function drawnAfterTheFrames() {
  const meter = new PaintMeter();
  meter.take([event(1), event(2)]);
  await frames(SETTLE_FRAMES - 1);
  const early = meter.drawn;
  await frames(2);
  return check(
    `drawn only after ${SETTLE_FRAMES} painted frames`,
    [early, meter.drawn, meter.taken],
    [0, 2, 2],
  );
}

async function latencyIsTheAgeOnScreen() {
  const meter = new PaintMeter();
  meter.take([event(1, 1000), event(2, 10 * HISTOGRAM_MS)]);
  await frames(SETTLE_FRAMES + 1);
  const buckets = meter.read().latencyMs;
  return check(
    "latency counts from create_time; the oldest share the last bucket",
    [buckets.length, buckets[0][0] >= 1000, buckets[0][0] < HISTOGRAM_MS, buckets[1]],
    [2, true, true, [HISTOGRAM_MS, 1]],
  );
}

async function resetKeepsTheOffsets() {
  const meter = new PaintMeter();
  meter.take([event(1), event(2)]);
  await frames(SETTLE_FRAMES + 1);
  meter.reset();
  meter.take([event(2), event(3)]);
  await frames(SETTLE_FRAMES + 1);
  const { taken, drawn } = meter.read();
  return check("reset zeroes the counts and still skips offsets seen", [taken, drawn], [1, 1]);
}
