// The JavaScript fold against the cases the Python fold computed
// (tests/schema/fixtures/fold_cases.json): the state after every step, the error for another
// workspace's event, inputs never mutated, and foldEvents equal to folding one by one.

import { foldEvent, foldEvents, stateFromWire } from "/app/fold.js";
import { deepFreeze, firstDifference } from "./compare.js";

export async function run() {
  const response = await fetch("/__fixtures__/schema/fold_cases.json");
  const { cases } = await response.json();
  return cases.map(runCase);
}

/** @param {{name: string, initial: object, steps: Array<Record<string, any>>}} fixture */
function runCase(fixture) {
  try {
    return { name: fixture.name, ok: true, detail: checkCase(fixture) };
  } catch (error) {
    return { name: fixture.name, ok: false, detail: String(error) };
  }
}

/** @param {{name: string, initial: object, steps: Array<Record<string, any>>}} fixture */
function checkCase(fixture) {
  const initial = deepFreeze(stateFromWire(fixture.initial));
  let state = initial;
  fixture.steps.forEach((step, index) => {
    const event = deepFreeze(step.event);
    const where = `step ${index + 1} (offset ${event.offset}, ${event.payload.kind})`;
    if (step.error !== undefined) {
      let threw = false;
      try {
        foldEvent(state, event);
      } catch {
        threw = true;
      }
      if (!threw) {
        throw new Error(`${where}: folded an event the Python fold refuses (${step.error})`);
      }
      return;
    }
    state = deepFreeze(foldEvent(state, event));
    const difference = firstDifference(state, stateFromWire(step.state));
    if (difference !== null) {
      throw new Error(`${where}: ${difference}`);
    }
  });
  const foldable = fixture.steps.filter((step) => step.error === undefined);
  const together = foldEvents(initial, foldable.map((step) => step.event));
  const difference = firstDifference(together, state);
  if (difference !== null) {
    throw new Error(`foldEvents differs from foldEvent one by one: ${difference}`);
  }
  return `${fixture.steps.length} steps`;
}
