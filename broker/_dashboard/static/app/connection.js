// The page's one websocket session with the broker, what the SDK's Watcher does in Python:
// hello (the token in `hello.token`, never in the URL), requests with ids and bounded replies,
// subscriptions that resume from their cursors after any drop or broker restart, reconnects
// with full-jitter backoff, `draining`, and the closes after which retrying cannot help.
//
// The decisions live in pure modules (requests.js, closes.js, cursors.js, backoff.js); this
// one moves frames between them and the socket.

import { Backoff } from "./backoff.js";
import { closeOutcome } from "./closes.js";
import { SubscriptionCursors } from "./cursors.js";
import { PendingRequests, RequestError } from "./requests.js";

export { RequestError } from "./requests.js";

/** Protocol version of every hello. */
export const PROTOCOL = 1;
/** Subprotocol offered: JSON, text frames. */
export const SUBPROTOCOL = "pierhead.v1.json";
/** Default bound on a request's reply, in milliseconds. */
export const REQUEST_TIMEOUT_MS = 15_000;
/** A session that lived at least this long starts the next backoff from its initial cap. */
const STABLE_SESSION_MS = 2_000;

/**
 * @typedef {"connecting" | "open" | "reconnecting" | "closed"} ConnectionState
 * @typedef {{state: ConnectionState, roles: string[], session: string | null,
 *   server: string | null, limits: Record<string, number> | null, draining: boolean,
 *   closeCode?: number, message?: string, needsToken?: boolean}} ConnectionStatus
 * @typedef {"latest" | "earliest" | Record<string, {epoch: number, offset: number}>} From
 */

/** The websocket URL of the broker that served this page. */
export function brokerUrlOf(location = window.location) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/`;
}

/**
 * The page's session with a broker.
 *
 * Events: `"status"` (detail: the new {@link ConnectionStatus}) on every change.
 */
export class BrokerConnection extends EventTarget {
  /**
   * @param {{url: string, token?: string | null, client?: string,
   *   requestTimeoutMs?: number, backoff?: Backoff}} options
   */
  constructor({
    url,
    token = null,
    client = "pierhead-dashboard",
    requestTimeoutMs = REQUEST_TIMEOUT_MS,
    backoff = new Backoff({ initialMs: 100, maximumMs: 10_000 }),
  }) {
    super();
    this.url = url;
    this.token = token;
    this.client = client;
    this.requestTimeoutMs = requestTimeoutMs;
    this.backoff = backoff;
    /** @type {ConnectionStatus} */
    this.status = {
      state: "connecting",
      roles: [],
      session: null,
      server: null,
      limits: null,
      draining: false,
    };
    /** @type {WebSocket | null} */
    this.socket = null;
    this.requests = new PendingRequests();
    /** @type {Map<number, ReturnType<typeof setTimeout>>} */
    this.timers = new Map();
    /** @type {Set<Subscription>} */
    this.subscriptions = new Set();
    /** Subscriptions of the current session by the broker's `sub` id. @type {Map<number, Subscription>} */
    this.bySub = new Map();
    /** The last `error` frame without an id: what a close right after it is about. */
    this.lastError = null;
    this.drainDelayMs = null;
    this.welcomedAt = null;
    this.started = false;
    this.stopped = false;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.retryTimer = null;
  }

  /** Open the session (and keep it open until close() or a final close). */
  start() {
    if (this.started) {
      return;
    }
    this.started = true;
    this.open("connecting");
  }

  /** Close the session for good; every waiting request fails. */
  close() {
    this.stopped = true;
    this.clearRetry();
    this.socket?.close(1000, "page closed");
    this.clearTimers(this.requests.failAll("connection_lost", "the connection was closed"));
    this.setStatus({ state: "closed", message: "closed", draining: false });
  }

  /**
   * Use another token (the login box) and start a fresh session with it. Subscriptions resume
   * from their cursors on the new session.
   * @param {string | null} token
   */
  setToken(token) {
    this.token = token || null;
    this.stopped = false;
    this.clearRetry();
    this.backoff.reset();
    const old = this.socket;
    this.socket = null;
    if (old !== null) {
      detach(old);
      old.close(1000, "new token");
      this.sessionEnded();
    }
    this.started = true;
    this.open("connecting");
  }

  /**
   * Send a request and wait for its reply.
   * @param {Record<string, any>} frame a request frame without `id`
   * @param {{timeoutMs?: number}} [options]
   * @returns {Promise<Record<string, any>>} the reply frame
   * @throws {RequestError} with the broker's code, or `timeout` / `connection_lost`
   */
  request(frame, { timeoutMs } = {}) {
    if (this.stopped) {
      return Promise.reject(new RequestError("connection_lost", "the connection is closed"));
    }
    const bound = timeoutMs ?? defaultTimeoutMs(frame, this.requestTimeoutMs);
    return new Promise((resolve, reject) => {
      const sent = this.requests.add(frame, resolve, reject);
      const id = sent.id;
      this.timers.set(
        id,
        setTimeout(() => {
          this.timers.delete(id);
          this.requests.expire(id);
        }, bound),
      );
      if (this.status.state === "open") {
        this.sendRequest(sent);
      }
    });
  }

  /**
   * Follow the workspaces matching `pattern`.
   * @param {{pattern: string, from?: From, kinds?: string[]}} options
   * @returns {Subscription}
   */
  subscribe({ pattern, from = "latest", kinds }) {
    const subscription = new Subscription(this, { pattern, from, kinds });
    this.subscriptions.add(subscription);
    if (this.status.state === "open") {
      subscription.send();
    }
    return subscription;
  }

  /**
   * A page of a workspace's stored events (docs/protocol.md §6 `history`).
   * @param {{workspace: string, before?: number, after?: number, limit?: number,
   *   kinds?: string[], series?: string, run_id?: string}} query
   * @returns {Promise<{events: Record<string, any>[], more: boolean}>}
   */
  async history(query) {
    /** @type {Record<string, any>} */
    const frame = { type: "history" };
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined && value !== null) {
        frame[key] = value;
      }
    }
    const reply = await this.request(frame);
    return { events: reply.events, more: reply.more };
  }

  // The socket ------------------------------------------------------------------------------

  /** @param {ConnectionState} state */
  open(state) {
    this.retryTimer = null;
    this.setStatus({ state });
    this.lastError = null;
    const socket = new WebSocket(this.url, SUBPROTOCOL);
    this.socket = socket;
    socket.onopen = () => this.sendFrame(this.hello());
    socket.onmessage = (message) => this.received(message.data);
    socket.onclose = (event) => {
      if (this.socket === socket) {
        this.socket = null;
        this.closed(event.code, event.reason);
      }
    };
  }

  hello() {
    /** @type {Record<string, any>} */
    const hello = { type: "hello", protocol: PROTOCOL, role: "watcher", client: this.client };
    if (this.token) {
      hello.token = this.token;
    }
    return hello;
  }

  /** @param {Record<string, any>} frame */
  sendFrame(frame) {
    this.socket?.send(JSON.stringify(frame));
  }

  /** @param {Record<string, any>} frame a request with its id */
  sendRequest(frame) {
    this.requests.markSent(frame.id);
    this.sendFrame(frame);
  }

  /** @param {unknown} data */
  received(data) {
    let frame;
    try {
      frame = JSON.parse(String(data));
    } catch {
      console.warn("pierhead: a frame from the broker is not JSON; skipped");
      return;
    }
    if (frame === null || typeof frame !== "object") {
      return;
    }
    switch (frame.type) {
      case "welcome":
        this.welcomed(frame);
        return;
      case "subscribed":
        this.bySubscribeId(frame.id)?.subscribed(frame);
        break;
      case "events":
      case "gap":
      case "joined":
      case "removed":
        this.bySub.get(frame.sub)?.delivered(frame);
        return;
      case "draining":
        this.drainDelayMs = Math.max(0, Number(frame.reconnect_after_s) || 0) * 1000;
        this.setStatus({ draining: true, message: "the broker is draining; it will restart" });
        return;
      case "error":
        if (typeof frame.id !== "number") {
          this.lastError = frame;
          return;
        }
        break;
      default:
        break;
    }
    const settledId = frame.id;
    if (this.requests.settle(frame)) {
      this.clearTimers([settledId]);
    }
  }

  /** @param {Record<string, any>} welcome */
  welcomed(welcome) {
    this.welcomedAt = performance.now();
    this.drainDelayMs = null;
    this.setStatus({
      state: "open",
      roles: welcome.roles ?? [],
      session: welcome.session ?? null,
      server: welcome.server ?? null,
      limits: welcome.limits ?? null,
      draining: false,
      closeCode: undefined,
      message: undefined,
      needsToken: false,
    });
    for (const subscription of this.subscriptions) {
      subscription.send();
    }
    for (const frame of this.requests.unsent()) {
      this.sendRequest(frame);
    }
  }

  /**
   * @param {number} code
   * @param {string} reason
   */
  closed(code, reason) {
    const lived = this.welcomedAt === null ? 0 : performance.now() - this.welcomedAt;
    this.sessionEnded();
    if (this.stopped) {
      return;
    }
    const outcome = closeOutcome(code, reason, this.lastError);
    if (outcome.final) {
      this.stopped = true;
      this.clearTimers(this.requests.failAll("connection_lost", outcome.message));
      this.setStatus({
        state: "closed",
        closeCode: code,
        message: outcome.message,
        needsToken: outcome.needsToken,
        draining: false,
      });
      return;
    }
    if (lived >= STABLE_SESSION_MS) {
      this.backoff.reset();
    }
    const jitter = this.backoff.nextDelayMs();
    const delay = this.drainDelayMs === null ? jitter : this.drainDelayMs + jitter;
    this.drainDelayMs = null;
    this.setStatus({ state: "reconnecting", closeCode: code, message: outcome.message });
    this.retryTimer = setTimeout(() => this.open("reconnecting"), delay);
  }

  /** What ends with every session: its requests, its subscriptions' ids. */
  sessionEnded() {
    this.welcomedAt = null;
    this.clearTimers(this.requests.dropSent());
    this.bySub.clear();
    for (const subscription of this.subscriptions) {
      subscription.sessionEnded();
    }
  }

  /** @param {number} id */
  bySubscribeId(id) {
    for (const subscription of this.subscriptions) {
      if (subscription.requestId === id) {
        return subscription;
      }
    }
    return null;
  }

  /** @param {number[]} ids */
  clearTimers(ids) {
    for (const id of ids) {
      clearTimeout(this.timers.get(id));
      this.timers.delete(id);
    }
  }

  clearRetry() {
    if (this.retryTimer !== null) {
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
    }
  }

  /** @param {Partial<ConnectionStatus>} change */
  setStatus(change) {
    this.status = { ...this.status, ...change };
    this.dispatchEvent(new CustomEvent("status", { detail: this.status }));
  }
}

/**
 * One subscription, kept across sessions: after a drop it subscribes again from its cursors,
 * so the page gets exactly what it missed (no duplicates, no holes).
 *
 * Events: `"snapshot"` (detail: {states, resumed, recovered}) after every `subscribed`;
 * `"resumed"` (detail: {recovered, cursors}) after a re-subscribe, `cursors` being where it
 * resumed from; `"events"` (detail: {events}) with only the events new to the page;
 * `"gap"` (detail: {workspace, from_offset, to_offset}); `"joined"` (detail: {state});
 * `"removed"` (detail: {workspace, epoch}); `"error"` (detail: {error}) when the broker
 * refused the subscribe.
 */
export class Subscription extends EventTarget {
  /**
   * @param {BrokerConnection} connection
   * @param {{pattern: string, from: From, kinds?: string[]}} options
   */
  constructor(connection, { pattern, from, kinds }) {
    super();
    this.connection = connection;
    this.pattern = pattern;
    this.kinds = kinds;
    this.position = new SubscriptionCursors(from);
    /** The broker's id of this subscription in the current session. @type {number | null} */
    this.sub = null;
    /** @type {number | null} */
    this.requestId = null;
    this.closed = false;
    this.resubscribing = false;
  }

  /** Where the page has got to: per workspace, its epoch and the last offset it has. */
  get cursors() {
    /** @type {Record<string, {epoch: number, offset: number}>} */
    const cursors = {};
    for (const [name, epoch] of this.position.epochs) {
      cursors[name] = { epoch, offset: this.position.offsets.get(name) ?? 0 };
    }
    return cursors;
  }

  /** Every gap the broker named, in order. */
  get gaps() {
    return this.position.gaps;
  }

  /** Stop following; the broker is told if the session is open. */
  close() {
    if (this.closed) {
      return;
    }
    this.closed = true;
    this.connection.subscriptions.delete(this);
    const sub = this.sub;
    this.sessionEnded();
    if (sub !== null && this.connection.status.state === "open") {
      this.connection.request({ type: "unsubscribe", sub }).catch(() => {
        // The session ended first: the subscription ended with it.
      });
    }
  }

  /** Subscribe on the current session, from the cursors. */
  send() {
    this.resubscribing = this.position.subscribedOnce;
    const resumedFrom = this.cursors;
    /** @type {Record<string, any>} */
    const frame = { type: "subscribe", pattern: this.pattern, from: this.position.start() };
    if (this.kinds !== undefined) {
      frame.kinds = this.kinds;
    }
    const reply = this.connection.request(frame);
    this.requestId = this.connection.requests.lastId;
    this.resumedFrom = resumedFrom;
    reply.catch((error) => {
      if (error instanceof RequestError && error.code !== "connection_lost") {
        this.dispatchEvent(new CustomEvent("error", { detail: { error } }));
      }
    });
  }

  sessionEnded() {
    if (this.sub !== null) {
      this.connection.bySub.delete(this.sub);
    }
    this.sub = null;
    this.requestId = null;
  }

  /** @param {Record<string, any>} frame the `subscribed` reply */
  subscribed(frame) {
    if (this.closed) {
      return;
    }
    this.sub = frame.sub;
    this.connection.bySub.set(frame.sub, this);
    const snapshot = frame.snapshot ?? [];
    this.position.subscribed(snapshot);
    const resumed = this.resubscribing;
    this.dispatchEvent(
      new CustomEvent("snapshot", {
        detail: { states: snapshot, resumed, recovered: Boolean(frame.recovered) },
      }),
    );
    if (resumed) {
      this.dispatchEvent(
        new CustomEvent("resumed", {
          detail: { recovered: Boolean(frame.recovered), cursors: this.resumedFrom },
        }),
      );
    }
  }

  /** @param {Record<string, any>} frame `events`, `gap`, `joined` or `removed` */
  delivered(frame) {
    switch (frame.type) {
      case "events": {
        const fresh = (frame.events ?? []).filter((event) => this.position.accept(event));
        if (fresh.length > 0) {
          this.dispatchEvent(new CustomEvent("events", { detail: { events: fresh } }));
        }
        return;
      }
      case "gap": {
        const gap = {
          workspace: frame.workspace,
          from_offset: frame.from_offset,
          to_offset: frame.to_offset,
        };
        this.position.gap(gap);
        this.dispatchEvent(new CustomEvent("gap", { detail: gap }));
        return;
      }
      case "joined":
        this.position.joined(frame.snapshot);
        this.dispatchEvent(new CustomEvent("joined", { detail: { state: frame.snapshot } }));
        return;
      case "removed":
        this.position.removed(frame.workspace);
        this.dispatchEvent(
          new CustomEvent("removed", { detail: { workspace: frame.workspace, epoch: frame.epoch } }),
        );
        return;
      default:
        return;
    }
  }
}

/**
 * A `call` waits for the worker as long as it asks the broker to; other requests get the
 * connection's bound.
 * @param {Record<string, any>} frame
 * @param {number} fallbackMs
 */
function defaultTimeoutMs(frame, fallbackMs) {
  if (frame.type === "call") {
    return (Number(frame.timeout_s) || 30) * 1000 + fallbackMs;
  }
  if (frame.type === "mutex_acquire" && frame.wait) {
    return frame.timeout_s ? frame.timeout_s * 1000 + fallbackMs : 86_400_000;
  }
  return fallbackMs;
}

/** @param {WebSocket} socket */
function detach(socket) {
  socket.onopen = null;
  socket.onmessage = null;
  socket.onclose = null;
}
