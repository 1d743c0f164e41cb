// How one stored event reads as a single line of the workspace's log view: its level and its
// text. Pure: no DOM. Every string here is data for a text node, never markup.

/** The levels of the log view's filter, least to most severe (protocol §8 `log.level`). */
export const LEVELS = Object.freeze(["debug", "info", "warning", "error", "critical"]);

/** @type {Record<string, string>} an `event` severity as a log level */
const SEVERITY_LEVEL = { info: "info", success: "info", warning: "warning", error: "error" };

/** Kinds that are measurements rather than messages: shown at level debug. */
const METRIC_KINDS = new Set(["scalar", "progress", "hardware"]);

/**
 * The log level of an event: a log record's own level, an `event`'s severity, debug for
 * measurements, info for the rest.
 * @param {{payload: Record<string, any>}} event
 * @returns {string}
 */
export function levelOf(event) {
  const payload = event.payload;
  if (payload.kind === "log") {
    return LEVELS.includes(payload.level) ? payload.level : "info";
  }
  if (payload.kind === "event") {
    return SEVERITY_LEVEL[payload.severity] ?? "info";
  }
  if (payload.kind === "presence" && payload.state !== "connected") {
    return "warning";
  }
  return METRIC_KINDS.has(payload.kind) ? "debug" : "info";
}

/**
 * Whether an event's level is at or above `minimum`.
 * @param {{payload: Record<string, any>}} event
 * @param {string} minimum one of LEVELS
 * @returns {boolean}
 */
export function atLeast(event, minimum) {
  return LEVELS.indexOf(levelOf(event)) >= LEVELS.indexOf(minimum);
}

/**
 * One line of text describing a payload, e.g. `status phase = deploying`.
 * @param {Record<string, any>} payload
 * @returns {string}
 */
export function payloadText(payload) {
  switch (payload.kind) {
    case "log":
      return payload.logger ? `${payload.logger}: ${payload.message}` : String(payload.message);
    case "event":
      return String(payload.message);
    case "status":
      return `${payload.key} = ${payload.value}`;
    case "progress":
      return `${payload.name} ${payload.current}${payload.total === undefined ? "" : `/${payload.total}`}`;
    case "scalar":
      return `${payload.name} = ${payload.value}${payload.step === undefined ? "" : ` @ step ${payload.step}`}`;
    case "details":
      return `details: ${Object.entries(payload.details ?? {})
        .map(([key, value]) => `${key}=${value}`)
        .join(", ")}`;
    case "semaphores":
      return semaphoresText(payload);
    case "presence":
      return `${payload.run_id} ${payload.state}${payload.client ? ` (${payload.client})` : ""}`;
    case "hyperparameters":
      return `hyperparameters: ${compactJson(payload.values)}`;
    case "hardware":
      return `hardware: cpu ${payload.cpu_percent ?? "?"}%, ${(payload.gpus ?? []).length} GPU(s)`;
    case "custom":
      return `${payload.name}: ${compactJson(payload.data)}`;
    default:
      return compactJson(payload);
  }
}

/**
 * The semaphores of a `semaphores` payload in words.
 * @param {Record<string, any>} payload
 * @returns {string}
 */
export function semaphoresText(payload) {
  const parts = [payload.caught ? "caught" : "not caught"];
  if (payload.by) {
    parts.push(`by ${payload.by}`);
  }
  if (payload.reason) {
    parts.push(`(${payload.reason})`);
  }
  parts.push(payload.has_mutex ? `mutex held by ${payload.holder} fence ${payload.fence ?? 0}` : "mutex free");
  return parts.join(" ");
}

/** Longest JSON shown inline before it is cut. */
const INLINE_JSON_CHARS = 500;

/** @param {unknown} value @returns {string} */
function compactJson(value) {
  const text = JSON.stringify(value) ?? "null";
  return text.length > INLINE_JSON_CHARS ? `${text.slice(0, INLINE_JSON_CHARS)}…` : text;
}

/**
 * `text` as a URL fit for a link, or null: only absolute http and https URLs qualify, so a
 * `javascript:` or `data:` URL from the stream never becomes a link.
 * @param {unknown} text
 * @returns {string | null}
 */
export function safeHref(text) {
  if (typeof text !== "string") {
    return null;
  }
  let url;
  try {
    url = new URL(text);
  } catch {
    return null;
  }
  return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
}
