// Time travel (app/timetravel.js) against the Python fold: for every shared fold case that
// starts from an empty workspace with offsets 1..n, the state rebuilt at offset k from pages
// of history equals the state the Python fold computed after step k, whatever order the
// offsets are asked in (so checkpoints are used and never change the answer). Retention
// before an offset is reported, never hidden.

import { stateFromWire } from "/app/fold.js";
import { StateRebuilder } from "/app/timetravel.js";
import { firstDifference } from "./compare.js";

/** @param {any[]} events */
function pagesOf(events) {
  /** @param {{after: number, before: number, limit: number}} query */
  return async ({ after, before, limit }) => {
    const matching = events.filter((event) => event.offset > after && event.offset < before);
    return { events: matching.slice(0, limit), more: matching.length > limit };
  };
}

/** @param {any} fixture */
function rebuildable(fixture) {
  const initialKeys = Object.keys(fixture.initial).sort().join(",");
  return (
    initialKeys === "created,epoch,name" &&
    fixture.steps.every((/** @type {any} */ step, /** @type {number} */ index) =>
      step.error === undefined && step.event.offset === index + 1)
  );
}

/** @param {any} fixture */
async function checkCase(fixture) {
  const events = fixture.steps.map((/** @type {any} */ step) => step.event);
  const rebuilder = new StateRebuilder({
    ...fixture.initial,
    fetchPage: pagesOf(events),
    pageLimit: 2,
  });
  const count = events.length;
  const order = [count, 1, Math.ceil(count / 2), ...events.map((/** @type {any} */ e) => e.offset).reverse()];
  for (const offset of order) {
    const rebuilt = await rebuilder.stateAt(offset);
    const difference = firstDifference(rebuilt.state, stateFromWire(fixture.steps[offset - 1].state));
    if (difference !== null) {
      throw new Error(`at offset ${offset}: ${difference}`);
    }
    if (!rebuilt.exact || rebuilt.event?.offset !== offset) {
      throw new Error(`at offset ${offset}: exact ${rebuilt.exact}, event ${rebuilt.event?.offset}`);
    }
  }
  return `${order.length} offsets`;
}

/** @param {any} fixture */
async function checkRetention(fixture) {
  const events = fixture.steps.map((/** @type {any} */ step) => step.event).slice(2);
  const rebuilder = new StateRebuilder({ ...fixture.initial, fetchPage: pagesOf(events), pageLimit: 3 });
  const rebuilt = await rebuilder.stateAt(events.length + 2);
  if (rebuilt.exact || rebuilt.lost?.from !== 1 || rebuilt.lost?.to !== 2) {
    throw new Error(`retention not reported: ${JSON.stringify(rebuilt.lost)}`);
  }
  return "offsets 1-2 reported lost";
}

export async function run() {
  const response = await fetch("/__fixtures__/schema/fold_cases.json");
  const { cases } = await response.json();
  const usable = cases.filter(rebuildable);
  const results = [];
  for (const fixture of usable) {
    try {
      results.push({ name: fixture.name, ok: true, detail: await checkCase(fixture) });
    } catch (error) {
      results.push({ name: fixture.name, ok: false, detail: String(error) });
    }
  }
  try {
    results.push({ name: "retention is named", ok: true, detail: await checkRetention(usable[0]) });
  } catch (error) {
    results.push({ name: "retention is named", ok: false, detail: String(error) });
  }
  results.push({ name: "cases used", ok: usable.length >= 10, detail: `${usable.length} of ${cases.length}` });
  return results;
}
