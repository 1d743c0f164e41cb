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
  /** Where the view last scrolled the element to, or saw it in the scroll handler. */
  const placedTopRef = useRef(0);
  /** The deep link the view no longer holds in view: the reader scrolled away from it. */
  const linkLeftRef = useRef(/** @type {number | null} */ (null));

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

  // The element's size changes after the view was placed (its stylesheet arrives after the first
  // page, the window is resized): place it again then, or a view that was pinned or jumped while
  // it could not scroll yet stays at its top.
  useLayoutEffect(() => {
    const element = scrollRef.current;
    if (element === null) {
      return undefined;
    }
    const observer = new ResizeObserver(() => rerender(undefined));
    observer.observe(element);
    return () => observer.disconnect();
  }, []);

  // Place the view after every render: at the bottom while following, with the deep link's line
  // in view until the reader scrolls away from it, else with the line that was on top kept there
  // when older rows come in above it. Only while the element is where the view left it: a scroll
  // by anyone else is decided on by onScroll, and its event may not have come yet.
  useLayoutEffect(() => {
    const element = scrollRef.current;
    if (element === null || movedByOthers(element, placedTopRef.current)) {
      return;
    }
    const anchor = topKeyRef.current;
    const link = feed.anchor !== null && linkLeftRef.current !== feed.anchor
      ? rows.findIndex((row) => row.type === "event" && row.offset >= /** @type {number} */ (feed.anchor))
      : -1;
    if (following) {
      place(element, element.scrollHeight);
    } else if (link >= 0) {
      place(element, Math.max(0, link * ROW_PX - element.clientHeight / 2));
    } else if (anchor !== null) {
      const index = rows.findIndex((row) => row.key === anchor.key);
      if (index >= 0) {
        place(element, index * ROW_PX + anchor.within);
      }
    }
  });

  /**
   * Scroll to `top` and note where the element is now (the browser clamps) and its top line, so
   * that a render before the scroll event places it from there.
   * @param {HTMLDivElement} element
   * @param {number} top
   */
  const place = (element, top) => {
    if (Math.abs(element.scrollTop - top) >= 1) {
      element.scrollTop = top;
    }
    notePlace(element);
  };

  /** @param {HTMLDivElement} element */
  const notePlace = (element) => {
    placedTopRef.current = element.scrollTop;
    const top = Math.floor(element.scrollTop / ROW_PX);
    const row = rowsRef.current[top];
    topKeyRef.current = row ? { key: row.key, within: element.scrollTop - top * ROW_PX } : null;
  };

  const onScroll = () => {
    const element = scrollRef.current;
    if (element === null) {
      return;
    }
    if (feed.anchor !== null && movedByOthers(element, placedTopRef.current)) {
      linkLeftRef.current = feed.anchor;
    }
    notePlace(element);
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
 * Whether something other than the view scrolled the element since it was at `placedTop`: it is
 * elsewhere than there, as far down as its content now lets it be.
 * @param {HTMLElement} element
 * @param {number} placedTop
 * @returns {boolean}
 */
function movedByOthers(element, placedTop) {
  const expected = Math.min(placedTop, Math.max(0, element.scrollHeight - element.clientHeight));
  return Math.abs(element.scrollTop - expected) >= 1;
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
