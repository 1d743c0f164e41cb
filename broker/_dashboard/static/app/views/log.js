// The workspace's log view: every event of its stream as one line, virtualised with
// @tanstack/virtual-core so 100k lines cost no more DOM than a screenful. Level filter and
// search over the loaded window, follow-tail with "N new", older pages fetched as the user
// scrolls up, newer ones as they scroll down a window opened at a deep link.

import { html } from "../html.js";
import { useEffect, useLayoutEffect, useMemo, useReducer, useRef, useState } from "../../vendor/preact/hooks.mjs";
import {
  Virtualizer,
  elementScroll,
  observeElementOffset,
  observeElementRect,
} from "../../vendor/virtual-core/index.js";
import { LEVELS, atLeast, levelOf, payloadText } from "../event-lines.js";

/** Height of one line in pixels (fixed: lines are cut, not wrapped, so none is measured). */
export const ROW_PX = 20;
/** Rows from the top or bottom edge at which the next history page is fetched. */
const EDGE_ROWS = 10;

/**
 * @param {{feed: import("../workspace-feed.js").WorkspaceFeed, version: number,
 *   onSelect?: (offset: number) => void}} props
 */
export function LogView({ feed, version, onSelect }) {
  const log = feed.log;
  const [level, setLevel] = useState("debug");
  const [search, setSearch] = useState("");
  const [following, setFollowing] = useState(feed.anchor === null);
  const [seenCount, setSeenCount] = useState(log.liveCount);
  const [, rerender] = useReducer((count) => count + 1, 0);
  /** @type {{current: HTMLDivElement | null}} */
  const scrollRef = useRef(null);
  const rowsRef = useRef(/** @type {import("../log-model.js").Row[]} */ ([]));
  const topKeyRef = useRef(/** @type {{key: string, within: number} | null} */ (null));
  const jumpedRef = useRef(/** @type {number | null} */ (null));

  const needle = search.trim().toLowerCase();
  const rows = useMemo(() => {
    if (level === "debug" && needle === "") {
      return log.rows;
    }
    return log.filtered(
      (event) =>
        atLeast(event, level) &&
        (needle === "" || payloadText(event.payload).toLowerCase().includes(needle)),
    );
    // log.rows is changed in place; its version says when.
  }, [log.version, level, needle, log.rows]);
  rowsRef.current = rows;

  const [virtualizer] = useState(
    () =>
      new Virtualizer({
        count: rows.length,
        getScrollElement: () => scrollRef.current,
        estimateSize: () => ROW_PX,
        getItemKey: (index) => rowsRef.current[index]?.key ?? index,
        scrollToFn: elementScroll,
        observeElementRect,
        observeElementOffset,
        overscan: 20,
        onChange: () => rerender(undefined),
      }),
  );
  virtualizer.setOptions({
    ...virtualizer.options,
    count: rows.length,
  });
  useLayoutEffect(() => virtualizer._didMount(), []);
  useLayoutEffect(() => {
    virtualizer._willUpdate();
  });

  // Keep the line at the top of the view where it was when older rows come in above it.
  useLayoutEffect(() => {
    const element = scrollRef.current;
    if (element === null) {
      return;
    }
    const anchor = topKeyRef.current;
    if (following) {
      element.scrollTop = element.scrollHeight;
    } else if (anchor !== null) {
      const index = rows.findIndex((row) => row.key === anchor.key);
      if (index >= 0 && Math.abs(index * ROW_PX + anchor.within - element.scrollTop) >= 1) {
        element.scrollTop = index * ROW_PX + anchor.within;
      }
    }
  }, [rows, log.version, following]);

  // A deep link: bring its line into view once the window around it is loaded.
  useLayoutEffect(() => {
    const element = scrollRef.current;
    if (element === null || feed.anchor === null || jumpedRef.current === feed.anchor) {
      return;
    }
    const index = rows.findIndex((row) => row.type === "event" && row.offset >= /** @type {number} */ (feed.anchor));
    if (index >= 0) {
      jumpedRef.current = feed.anchor;
      element.scrollTop = Math.max(0, index * ROW_PX - element.clientHeight / 2);
    }
  }, [rows, log.version, feed.anchor]);

  const onScroll = () => {
    const element = scrollRef.current;
    if (element === null) {
      return;
    }
    const top = Math.floor(element.scrollTop / ROW_PX);
    const row = rowsRef.current[top];
    topKeyRef.current = row ? { key: row.key, within: element.scrollTop - top * ROW_PX } : null;
    const atBottom = element.scrollTop + element.clientHeight >= element.scrollHeight - ROW_PX;
    if (atBottom !== following) {
      setFollowing(atBottom && log.attached);
      setSeenCount(log.liveCount);
    }
    if (element.scrollTop < EDGE_ROWS * ROW_PX) {
      feed.loadOlder();
    }
    if (element.scrollTop + element.clientHeight > element.scrollHeight - EDGE_ROWS * ROW_PX) {
      feed.loadNewer();
    }
  };

  useEffect(() => {
    if (following) {
      setSeenCount(log.liveCount);
    }
  }, [version, following]);

  const unseen = following ? 0 : log.liveCount - seenCount;
  const toTail = () => {
    if (!log.attached || feed.anchor !== null) {
      feed.openTail();
    }
    setFollowing(true);
  };

  const items = virtualizer.getVirtualItems();
  return html`
    <section class="ws-log" aria-label="Log">
      <div class="ws-log-bar">
        <label>Level <select value=${level} onChange=${(/** @type {any} */ event) => setLevel(event.currentTarget.value)}>
          ${LEVELS.map((name) => html`<option value=${name}>${name === "debug" ? "all" : `${name}+`}</option>`)}
        </select></label>
        <label>Search <input type="search" value=${search} placeholder="in the loaded lines"
          onInput=${(/** @type {any} */ event) => setSearch(event.currentTarget.value)} /></label>
        <span class="ws-log-summary" data-testid="log-summary" data-count=${log.rows.length}
          data-first=${log.oldest} data-last=${log.newest} data-attached=${String(log.attached)}>
          ${rows.length} of ${log.rows.length} loaded lines, offsets ${log.oldest}–${log.newest}
          ${feed.loading.has("log") ? " · loading…" : ""}
        </span>
        ${following
          ? html`<span class="ws-follow" data-testid="following">following</span>`
          : html`<button type="button" data-testid="to-tail" onClick=${toTail}>${unseen > 0 ? `${unseen} new ↓` : "Follow ↓"}</button>`}
      </div>
      <div class="ws-log-scroll" ref=${scrollRef} onScroll=${onScroll} data-testid="log-scroll">
        <div class="ws-log-sizer" style=${{ height: `${virtualizer.getTotalSize()}px` }}>
          ${items.map((item) => {
            const row = rows[item.index];
            return row === undefined
              ? null
              : html`<${LogRow} key=${row.key} row=${row} index=${item.index} start=${item.start} onSelect=${onSelect} />`;
          })}
        </div>
      </div>
    </section>
  `;
}

/**
 * @param {{row: import("../log-model.js").Row, index: number, start: number,
 *   onSelect?: (offset: number) => void}} props
 */
function LogRow({ row, index, start, onSelect }) {
  const style = { transform: `translateY(${start}px)` };
  if (row.type === "gap") {
    return html`<div class="log-row log-gap" data-index=${index} data-gap=${`${row.from}-${row.to}`} style=${style}>
      offsets ${row.from}–${row.to} missing (removed by ${row.why})
    </div>`;
  }
  const event = row.event;
  const level = levelOf(event);
  return html`<div class=${`log-row level-${level}`} data-index=${index} data-offset=${row.offset}
      data-level=${level} style=${style} title=${event.received_time}>
    <button type="button" class="log-offset" onClick=${() => onSelect?.(row.offset)}
      title="Time travel to this offset">${row.offset}</button>
    <span class="log-time">${timeOfDay(event.received_time)}</span>
    <span class="log-level">${level}</span>
    <span class="log-kind">${event.payload.kind}</span>
    <span class="log-text">${payloadText(event.payload)}</span>
  </div>`;
}

/** @param {string} time RFC 3339 @returns {string} HH:MM:SS.mmm as written by the broker (UTC) */
function timeOfDay(time) {
  const at = time.indexOf("T");
  return at < 0 ? time : time.slice(at + 1, at + 13);
}
