// Structural comparison for the browser-side tests.

/**
 * Where `actual` first differs from `expected` (a path and both values), or null when they
 * are equal: same own keys, same array lengths, primitives equal by ===.
 * @param {unknown} actual
 * @param {unknown} expected
 * @param {string} [path]
 * @returns {string | null}
 */
export function firstDifference(actual, expected, path = "$") {
  if (actual === expected) {
    return null;
  }
  const describe = () => `${path}: got ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`;
  if (
    typeof actual !== "object" ||
    typeof expected !== "object" ||
    actual === null ||
    expected === null ||
    Array.isArray(actual) !== Array.isArray(expected)
  ) {
    return describe();
  }
  if (Array.isArray(actual) && Array.isArray(expected)) {
    if (actual.length !== expected.length) {
      return `${path}: ${actual.length} items, expected ${expected.length}`;
    }
    for (let index = 0; index < actual.length; index += 1) {
      const difference = firstDifference(actual[index], expected[index], `${path}[${index}]`);
      if (difference !== null) {
        return difference;
      }
    }
    return null;
  }
  const actualKeys = Object.keys(actual).sort();
  const expectedKeys = Object.keys(expected).sort();
  const keysDiffer = firstDifference(actualKeys, expectedKeys, `${path} keys`);
  if (keysDiffer !== null) {
    return keysDiffer;
  }
  for (const key of expectedKeys) {
    const difference = firstDifference(
      /** @type {Record<string, unknown>} */ (actual)[key],
      /** @type {Record<string, unknown>} */ (expected)[key],
      `${path}.${key}`,
    );
    if (difference !== null) {
      return difference;
    }
  }
  return null;
}

/**
 * `value` frozen all the way down, so a function that mutates its input throws in a module
 * (strict mode) instead of passing.
 * @template T
 * @param {T} value
 * @returns {T}
 */
export function deepFreeze(value) {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) {
      deepFreeze(child);
    }
  }
  return value;
}
