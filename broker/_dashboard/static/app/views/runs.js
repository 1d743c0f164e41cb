// The run views of a workspace, at /w/<workspace>/runs: scalar charts (several runs overlaid,
// EMA smoothing with the raw line faded, step or wall-clock x, log y), progress with rate and
// ETA, hyperparameters with a diff of two runs, hardware on the scalars' time axis, status,
// and the workspace's actions panel.
// The settings live in the URL (app/runs-query.js); the data comes from a RunFeed.

import { useEffect, useMemo, useState } from "../../vendor/preact/hooks.mjs";
import { html } from "../html.js";
import { RunFeed } from "../run-feed.js";
import { MAX_SMOOTHING, parseRunsQuery, runsQueryString } from "../runs-query.js";
import { LineChart, runColour } from "./chart.js";
import { HardwareCharts } from "./hardware.js";
import { HyperparamsTable } from "./hyperparams.js";
import { ActionsPanel } from "./actions.js";
import { ProgressList } from "./progress.js";


/** Charts on wall-clock time move their cursors together under this key. */
const TIME_SYNC_KEY = "pierhead-run-time";

/**
 * The run views page.
 * @param {{connection: any, store: any, workspace: string,
 *   query: URLSearchParams | string | Record<string, string>, navigate: (href: string) => void}} props
 */
export function RunsPage({ connection, store, workspace, query, navigate }) {
  const settings = parseRunsQuery(query);
  const feed = useMemo(() => new RunFeed({ connection, workspace }), [connection, workspace]);
  useEffect(() => {
    feed.start();
    return () => feed.close();
  }, [feed]);
  useFrameUpdates(feed);

  const runIds = settings.runs.length > 0 ? settings.runs : defaultRuns(feed);
  useEffect(() => feed.follow(runIds), [feed, runIds.join(",")]);

  /** @param {Partial<import("../runs-query.js").RunsQuery>} change */
  const change = (change) =>
    navigate(`/w/${encodeURIComponent(workspace)}/runs${runsQueryString({ ...settings, runs: runIds, ...change })}`);

  const known = [...new Set([...feed.runs, ...runIds])].sort();
  const timeRange = feed.model.timeRange(runIds);
  return html`<section class="runs-page" data-workspace=${workspace}>
    <header class="runs-header">
      <h1>${workspace} <span class="runs-subtitle">runs</span></h1>
      <a href=${`/w/${encodeURIComponent(workspace)}`} onClick=${(/** @type {MouseEvent} */ event) => {
        event.preventDefault();
        navigate(`/w/${encodeURIComponent(workspace)}`);
      }}>workspace</a>
    </header>
    ${feed.error === null ? null : html`<p class="runs-error" role="alert">${feed.error}</p>`}
    ${feed.gaps.map(
      (gap) => html`<p class="runs-gap" role="status">gap: events ${gap.from_offset}–${gap.to_offset} are no longer stored</p>`,
    )}
    <${RunPicker} known=${known} picked=${runIds} state=${feed.state}
      onPick=${(/** @type {string[]} */ runs) => change({ runs })} />
    <${ChartControls} settings=${settings} onChange=${change} />
    <section class="runs-section"><h2>Status</h2><${StatusTable} state=${feed.state} runIds=${runIds} /></section>
    <section class="runs-section"><h2>Progress</h2>
      <${ProgressList} bars=${feed.state?.progress ?? {}} paces=${feed.paces} />
    </section>
    <section class="runs-section"><h2>Scalars</h2>
      ${feed.loading.size > 0 ? html`<p class="runs-loading" role="status">loading history of ${[...feed.loading].join(", ")}</p>` : null}
      <${ScalarCharts} model=${feed.model} runIds=${runIds} settings=${settings}
        xRange=${settings.x === "time" ? timeRange : null} />
    </section>
    <section class="runs-section"><h2>Hardware</h2>
      <${HardwareCharts} model=${feed.model} runIds=${runIds} xRange=${timeRange} syncKey=${TIME_SYNC_KEY} />
    </section>
    <section class="runs-section"><h2>Hyperparameters</h2>
      <${HyperparamsTable} runIds=${runIds} params=${feed.params} />
    </section>
    <${ActionsPanel} connection=${connection} store=${store} workspace=${workspace} />
  </section>`;
}

/**
 * Re-render once per animation frame after the feed changed, however many events came in it.
 * @param {EventTarget} feed
 */
function useFrameUpdates(feed) {
  const [, setVersion] = useState(0);
  useEffect(() => {
    let scheduled = 0;
    const onChange = () => {
      if (scheduled === 0) {
        scheduled = requestAnimationFrame(() => {
          scheduled = 0;
          setVersion((version) => version + 1);
        });
      }
    };
    feed.addEventListener("change", onChange);
    return () => {
      feed.removeEventListener("change", onChange);
      cancelAnimationFrame(scheduled);
    };
  }, [feed]);
}

/** The runs shown when the URL picks none: the newest connected worker, else none. @param {RunFeed} feed */
function defaultRuns(feed) {
  const connected = (feed.state?.workers ?? []).filter((/** @type {any} */ worker) => worker.connected);
  const newest = connected.at(-1);
  return newest === undefined ? [] : [newest.run_id];
}

/**
 * @param {{known: string[], picked: string[], state: any, onPick: (runs: string[]) => void}} props
 */
function RunPicker({ known, picked, state, onPick }) {
  if (known.length === 0) {
    return html`<p class="runs-empty">No runs in this workspace yet.</p>`;
  }
  const connected = new Set(
    (state?.workers ?? []).filter((/** @type {any} */ worker) => worker.connected).map((/** @type {any} */ worker) => worker.run_id),
  );
  return html`<fieldset class="run-picker"><legend>Runs</legend>
    ${known.map((runId) => {
      const index = picked.indexOf(runId);
      return html`<label key=${runId} class="run-choice" data-run=${runId}>
        <input type="checkbox" checked=${index >= 0}
          onChange=${(/** @type {Event} */ event) => {
            const on = /** @type {HTMLInputElement} */ (event.currentTarget).checked;
            onPick(on ? [...picked, runId] : picked.filter((run) => run !== runId));
          }} />
        <span class="run-swatch" style=${index >= 0 ? { background: runColour(index) } : {}}></span>
        ${runId}
        <span class="run-state">${connected.has(runId) ? "online" : "offline"}</span>
      </label>`;
    })}
  </fieldset>`;
}

/**
 * @param {{settings: import("../runs-query.js").RunsQuery,
 *   onChange: (change: Partial<import("../runs-query.js").RunsQuery>) => void}} props
 */
function ChartControls({ settings, onChange }) {
  return html`<div class="chart-controls">
    <label>x axis
      <select name="x" value=${settings.x}
        onChange=${(/** @type {Event} */ event) => onChange({ x: /** @type {HTMLSelectElement} */ (event.currentTarget).value === "time" ? "time" : "step" })}>
        <option value="step">step</option>
        <option value="time">wall clock</option>
      </select>
    </label>
    <label><input type="checkbox" name="log" checked=${settings.log}
      onChange=${(/** @type {Event} */ event) => onChange({ log: /** @type {HTMLInputElement} */ (event.currentTarget).checked })} /> log y</label>
    <label>smoothing
      <input type="range" name="smooth" min="0" max=${MAX_SMOOTHING} step="0.01" value=${settings.smooth}
        onChange=${(/** @type {Event} */ event) => onChange({ smooth: Number(/** @type {HTMLInputElement} */ (event.currentTarget).value) })} />
      <output>${settings.smooth.toFixed(2)}</output>
    </label>
  </div>`;
}

/**
 * One chart per scalar series; in each, per run, the raw line (faded when smoothed) and its
 * smoothed line.
 * @param {{model: import("../series.js").RunSeries, runIds: string[],
 *   settings: import("../runs-query.js").RunsQuery, xRange: {min: number, max: number} | null}} props
 */
function ScalarCharts({ model, runIds, settings, xRange }) {
  const names = model.scalarNames(runIds);
  if (names.length === 0) {
    return html`<p class="runs-empty">No scalars for these runs yet.</p>`;
  }
  const smoothing = settings.smooth > 0;
  const lines = runIds.flatMap((runId, index) => {
    const raw = { label: runId, colour: runColour(index), faded: smoothing };
    return smoothing ? [raw, { label: `${runId} (smoothed)`, colour: runColour(index) }] : [raw];
  });
  return html`<div class="chart-grid">
    ${names.map((name) => {
      return html`<${LineChart}
        key=${name}
        name=${name}
        columns=${model.columnsOf("scalars", name, runIds, settings.x, settings.smooth, settings.log)}
        lines=${lines}
        time=${settings.x === "time"}
        logY=${settings.log}
        xRange=${xRange}
        syncKey=${settings.x === "time" ? TIME_SYNC_KEY : undefined}
      />`;
    })}
  </div>`;
}

/** @param {{state: any, runIds: string[]}} props */
function StatusTable({ state, runIds }) {
  if (state === null) {
    return html`<p class="runs-empty">Waiting for the workspace…</p>`;
  }
  const workers = new Map((state.workers ?? []).map((/** @type {any} */ worker) => [worker.run_id, worker]));
  const status = Object.entries(state.status ?? {}).sort(([a], [b]) => a.localeCompare(b));
  return html`<table class="status-table">
    <tbody>
      ${runIds.map((runId) => {
        const worker = workers.get(runId);
        const text = worker === undefined ? "gone" : worker.connected ? "online" : "offline (grace period)";
        return html`<tr key=${`run:${runId}`} data-run-status=${runId}><th>${runId}</th><td>${text}</td></tr>`;
      })}
      ${status.map(([key, value]) => html`<tr key=${`status:${key}`} data-status=${key}><th>${key}</th><td>${value}</td></tr>`)}
    </tbody>
  </table>`;
}
