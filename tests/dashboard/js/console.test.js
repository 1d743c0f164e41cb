// app/lanes.js against the fleet cases pierhead watch's ConsoleModel answered
// (fixtures/console_cases.json, from tests/dashboard/console_fixtures.py): the console lanes,
// every row's cells, and the selection after each key.

import { stateFromWire } from "/app/fold.js";
import {
  age,
  consoleLaneOf,
  fraction,
  matches,
  moveSelection,
  rowCells,
  selectedOf,
} from "/app/lanes.js";
import { firstDifference } from "./compare.js";

const CONSOLE_LANES = ["active", "caught", "idle"];
const MOVES = { up: -1, k: -1, down: 1, j: 1 };

export async function run() {
  const response = await fetch("/__tests__/fixtures/console_cases.json");
  const { cases } = await response.json();
  return cases.map(runCase);
}

/** @param {Record<string, any>} fixture */
function runCase(fixture) {
  try {
    const now = Date.parse(fixture.now);
    const states = fixture.states
      .map(stateFromWire)
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    /** @type {Record<string, string[]>} */
    const lanes = { active: [], caught: [], idle: [] };
    /** @type {Record<string, any>} */
    const rows = {};
    for (const state of states) {
      if (!matches(state.name, fixture.filter)) {
        continue;
      }
      lanes[consoleLaneOf(state)].push(state.name);
      const cells = rowCells(state);
      const where = [cells.host];
      if (cells.progress !== null) {
        const { current, total, label } = cells.progress;
        where.push(`${label} ${fraction(current, total)}`.trim());
      }
      rows[state.name] = {
        workers: cells.workers,
        host: cells.host,
        progress: cells.progress,
        where: where.filter(Boolean).join(" "),
        mutex: cells.mutex,
        caught: cells.caught,
        event: cells.event,
        severity: cells.severity,
        age: age(Date.parse(state.updated ?? state.created), now),
      };
    }
    const visible = CONSOLE_LANES.flatMap((lane) => lanes[lane]);
    let chosen = null;
    const selections = [selectedOf(visible, chosen)];
    for (const key of fixture.keys) {
      chosen = moveSelection(visible, selectedOf(visible, chosen), MOVES[key]);
      selections.push(selectedOf(visible, chosen));
    }
    const difference = firstDifference({ lanes, rows, selections }, fixture.expected);
    return { name: fixture.name, ok: difference === null, detail: difference ?? "" };
  } catch (error) {
    return { name: fixture.name, ok: false, detail: String(error) };
  }
}
