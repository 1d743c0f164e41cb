// The run views' settings as they live in the URL: `?runs=id1,id2&x=step|time&log=1&smooth=0.6`.
// Pure.

/** Smoothing weight when the URL names none. */
export const DEFAULT_SMOOTHING = 0.6;
/** The largest smoothing weight (at 1 the average would never move). */
export const MAX_SMOOTHING = 0.999;

/**
 * @typedef {{runs: string[], x: "step" | "time", log: boolean, smooth: number}} RunsQuery
 */

/**
 * The settings in a query string (URLSearchParams, a string, or a plain object of strings);
 * anything unreadable falls back to its default.
 * @param {URLSearchParams | string | Record<string, string | undefined> | null | undefined} query
 * @returns {RunsQuery}
 */
export function parseRunsQuery(query) {
  const params =
    query instanceof URLSearchParams
      ? query
      : typeof query === "string"
        ? new URLSearchParams(query)
        : new URLSearchParams(
            Object.entries(query ?? {}).filter((entry) => typeof entry[1] === "string"),
          );
  const runs = [...new Set((params.get("runs") ?? "").split(",").filter((run) => run !== ""))];
  const smoothText = params.get("smooth");
  const smooth = smoothText === null || smoothText === "" ? NaN : Number(smoothText);
  return {
    runs,
    x: params.get("x") === "time" ? "time" : "step",
    log: params.get("log") === "1",
    smooth: Number.isFinite(smooth) ? Math.min(Math.max(smooth, 0), MAX_SMOOTHING) : DEFAULT_SMOOTHING,
  };
}

/**
 * The query string for these settings, defaults left out ("" when all are defaults).
 * @param {RunsQuery} settings
 */
export function runsQueryString(settings) {
  const params = new URLSearchParams();
  if (settings.runs.length > 0) {
    params.set("runs", settings.runs.join(","));
  }
  if (settings.x === "time") {
    params.set("x", "time");
  }
  if (settings.log) {
    params.set("log", "1");
  }
  if (settings.smooth !== DEFAULT_SMOOTHING) {
    params.set("smooth", String(settings.smooth));
  }
  const text = params.toString().replaceAll("%2C", ",");
  return text === "" ? "" : `?${text}`;
}
