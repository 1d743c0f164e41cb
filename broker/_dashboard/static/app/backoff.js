// Full-jitter exponential backoff, as the SDK's sdk/_backoff.py: a uniform draw between 0 and
// a cap that doubles per failed attempt, so pages that lost the same broker at the same moment
// do not all come back at once.

export class Backoff {
  /**
   * @param {{initialMs?: number, maximumMs?: number, random?: () => number}} [options]
   *   `random` returns a number in [0, 1), as Math.random does (the default); tests pass
   *   their own.
   */
  constructor({ initialMs = 100, maximumMs = 10_000, random = Math.random } = {}) {
    if (!(initialMs > 0 && initialMs <= maximumMs)) {
      throw new RangeError("backoff needs 0 < initialMs <= maximumMs");
    }
    this.initialMs = initialMs;
    this.maximumMs = maximumMs;
    this.random = random;
    this.attempts = 0;
  }

  /**
   * The delay before the next attempt, in milliseconds.
   * @returns {number}
   */
  nextDelayMs() {
    const cap = Math.min(this.maximumMs, this.initialMs * 2 ** this.attempts);
    // Past the maximum the cap stays there (2 ** attempts only grows to Infinity).
    this.attempts += 1;
    return this.random() * cap;
  }

  /** After a success: the next failure starts from the initial cap again. */
  reset() {
    this.attempts = 0;
  }
}
