// Hyperparameters as rows of a table, and the difference between two runs' hyperparameters.
// Pure. Nested maps become dotted keys (`optimizer.lr`); every value is shown as JSON text.

/**
 * Flatten nested plain objects into dotted keys; arrays and scalars are leaves.
 * @param {Record<string, unknown>} values
 * @param {string} [prefix]
 * @returns {Map<string, unknown>}
 */
export function flattenParams(values, prefix = "") {
  /** @type {Map<string, unknown>} */
  const flat = new Map();
  for (const [key, value] of Object.entries(values)) {
    const path = prefix === "" ? key : `${prefix}.${key}`;
    if (value !== null && typeof value === "object" && !Array.isArray(value)) {
      for (const [inner, leaf] of flattenParams(/** @type {Record<string, unknown>} */ (value), path)) {
        flat.set(inner, leaf);
      }
    } else {
      flat.set(path, value);
    }
  }
  return flat;
}

/** A value as the table shows it: JSON text, "" for a key the run lacks. @param {unknown} value */
export function paramText(value) {
  return value === undefined ? "" : JSON.stringify(value);
}

/**
 * @typedef {{key: string, left: string, right: string, change: "same" | "changed" | "only_left" | "only_right"}} ParamRow
 */

/**
 * Rows comparing two runs' hyperparameters, sorted by key; `change` says how they differ.
 * Values compare by their JSON text, so 1 and 1.0 (the same number in JSON) are the same.
 * @param {Record<string, unknown>} left
 * @param {Record<string, unknown>} right
 * @returns {ParamRow[]}
 */
export function diffParams(left, right) {
  const a = flattenParams(left);
  const b = flattenParams(right);
  const keys = [...new Set([...a.keys(), ...b.keys()])].sort();
  return keys.map((key) => {
    const leftText = paramText(a.get(key));
    const rightText = paramText(b.get(key));
    /** @type {ParamRow["change"]} */
    let change = "same";
    if (!a.has(key)) {
      change = "only_right";
    } else if (!b.has(key)) {
      change = "only_left";
    } else if (leftText !== rightText) {
      change = "changed";
    }
    return { key, left: leftText, right: rightText, change };
  });
}
