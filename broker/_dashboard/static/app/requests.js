// Request bookkeeping of one connection, without I/O: ids, the reply each request waits for,
// and what becomes of requests that cannot be answered. The connection sends the frames and
// runs the clocks; this module decides which promise a reply settles and with what.
//
// Every request is bounded: the connection arms a timer per request and calls expire() when it
// fires, and a dropped connection fails every request that was sent on it (the broker may or
// may not have carried it out, so it is never silently resent).

/** The largest request id the protocol allows (2^53 − 1, exact in a double). */
export const MAX_REQUEST_ID = Number.MAX_SAFE_INTEGER;

/** Reply frame types that answer a request (docs/protocol.md §5). */
export const REPLY_TYPES = new Set([
  "ok",
  "error",
  "subscribed",
  "workspaces",
  "history_page",
  "result",
  "stats",
  "mutex_granted",
]);

/** A request the broker refused, or one that got no answer. */
export class RequestError extends Error {
  /**
   * @param {string} code the broker's error code (`forbidden`, `not_found`, ...), or
   *   `timeout` / `connection_lost` when no answer came
   * @param {string} message
   * @param {Record<string, unknown> | null} [detail]
   */
  constructor(code, message, detail = null) {
    super(`${code}: ${message}`);
    this.name = "RequestError";
    this.code = code;
    this.brokerMessage = message;
    this.detail = detail;
  }
}

/**
 * @typedef {{frame: Record<string, any>, resolve: (reply: any) => void,
 *   reject: (error: RequestError) => void, sent: boolean}} Pending
 */

export class PendingRequests {
  constructor() {
    this.lastId = 0;
    /** @type {Map<number, Pending>} */
    this.pending = new Map();
  }

  /**
   * Give `frame` a fresh id (a copy; the caller's object is left alone) and remember who
   * waits for its reply.
   * @param {Record<string, any>} frame
   * @param {(reply: any) => void} resolve
   * @param {(error: RequestError) => void} reject
   * @returns {Record<string, any>} the frame to send, with its `id`
   */
  add(frame, resolve, reject) {
    do {
      this.lastId = this.lastId >= MAX_REQUEST_ID ? 1 : this.lastId + 1;
    } while (this.pending.has(this.lastId));
    const withId = { ...frame, id: this.lastId };
    this.pending.set(this.lastId, { frame: withId, resolve, reject, sent: false });
    return withId;
  }

  /** @param {number} id */
  markSent(id) {
    const entry = this.pending.get(id);
    if (entry !== undefined) {
      entry.sent = true;
    }
  }

  /**
   * The frames added but not sent yet (waiting for the connection), oldest first.
   * @returns {Record<string, any>[]}
   */
  unsent() {
    return [...this.pending.values()].filter((entry) => !entry.sent).map((entry) => entry.frame);
  }

  /**
   * A frame from the broker: settles its request if it is a reply to one.
   * @param {Record<string, any>} frame
   * @returns {boolean} whether it was the reply to a pending request
   */
  settle(frame) {
    if (!REPLY_TYPES.has(frame.type) || typeof frame.id !== "number") {
      return false;
    }
    const entry = this.pending.get(frame.id);
    if (entry === undefined) {
      return false; // a reply after its request timed out
    }
    this.pending.delete(frame.id);
    if (frame.type === "error") {
      entry.reject(new RequestError(frame.code, frame.message ?? "", frame.detail ?? null));
    } else {
      entry.resolve(frame);
    }
    return true;
  }

  /**
   * The request's time is up.
   * @param {number} id
   */
  expire(id) {
    const entry = this.pending.get(id);
    if (entry !== undefined) {
      this.pending.delete(id);
      const what = entry.sent ? "no reply from the broker" : "not connected to the broker";
      entry.reject(new RequestError("timeout", `${entry.frame.type}: ${what} in time`));
    }
  }

  /**
   * The connection dropped: every request sent on it fails (its outcome is unknown); those
   * not sent yet wait for the next connection.
   * @returns {number[]} the ids that failed, for their timers to be cleared
   */
  dropSent() {
    const failed = [];
    for (const [id, entry] of this.pending) {
      if (entry.sent) {
        failed.push(id);
        this.pending.delete(id);
        entry.reject(
          new RequestError(
            "connection_lost",
            `${entry.frame.type}: the connection dropped before the broker answered`,
          ),
        );
      }
    }
    return failed;
  }

  /**
   * The connection is closed for good: every request fails.
   * @param {string} code
   * @param {string} message
   * @returns {number[]} the ids that failed
   */
  failAll(code, message) {
    const failed = [...this.pending.keys()];
    const entries = [...this.pending.values()];
    this.pending.clear();
    for (const entry of entries) {
      entry.reject(new RequestError(code, `${entry.frame.type}: ${message}`));
    }
    return failed;
  }
}
